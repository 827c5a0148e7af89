"""``lambdalet deploy / invoke / ps`` end to end: the real CLI against the real server.

A SAM template with a layer and two functions is deployed with the CLI, the functions are
invoked with the CLI, ``ps --json`` lists their environments, and ``deploy --watch`` picks
up a code change and a layer change so the next invoke runs them.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lambdalet.env.log_sink import function_log_path
from tests.integration.harness import HOST_PY, ROOT, Server, create, unique

pytestmark = pytest.mark.integration

TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
Globals:
  Function:
    Runtime: {runtime}
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        STAGE: test
    Layers:
      - !Ref CommonLayer
Resources:
  CommonLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: !Sub '{prefix}-common'
      ContentUri: layers/common
      CompatibleRuntimes: [{runtime}]
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '{prefix}-hello'
      CodeUri: hello/
      Handler: app.handler
      Environment:
        Variables:
          GREETING: !Ref Greeting
          PEER: !Ref WorkerFunction
          PEER_ARN: !GetAtt WorkerFunction.Arn
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '{prefix}-worker'
      CodeUri: worker/
      Handler: work.main
      MemorySize: 512
      ReservedConcurrentExecutions: 3
      AutoPublishAlias: live
      ProvisionedConcurrencyConfig:
        ProvisionedConcurrentExecutions: 1
"""

HELLO = """
import os
from shared import decorate

def handler(event, context):
    print("hello from the handler")
    return {{
        "msg": decorate(os.environ["GREETING"]),
        "stage": os.environ["STAGE"],
        "peer": os.environ["PEER"],
        "peerArn": os.environ["PEER_ARN"],
        "codeVersion": {version},
    }}
"""

WORKER = """
from shared import decorate

def main(event, context):
    return {"work": decorate(event.get("job", "none")), "memory": context.memory_limit_in_mb}
"""

SHARED = """
def decorate(text):
    return "<" + text + ">"
"""


def _project(tmp: Path, prefix: str) -> Path:
    proj = tmp / "proj"
    (proj / "hello").mkdir(parents=True)
    (proj / "worker").mkdir()
    (proj / "layers" / "common" / "python").mkdir(parents=True)
    (proj / "template.yaml").write_text(TEMPLATE.format(runtime=HOST_PY, prefix=prefix))
    (proj / "hello" / "app.py").write_text(HELLO.format(version=1))
    (proj / "worker" / "work.py").write_text(WORKER)
    (proj / "layers" / "common" / "python" / "shared.py").write_text(SHARED)
    return proj


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_PROFILE", None)
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=str(ROOT / "src"),
        NO_COLOR="1",
    )
    return env


def cli(
    server: Server, *args: str, check: bool = True, endpoint: bool = True
) -> subprocess.CompletedProcess[str]:
    """``lambdalet ARGS``; with ``--endpoint`` of the server unless ``endpoint`` is false."""
    proc = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", *args, *(["--endpoint", server.url] * endpoint)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lambdalet {' '.join(args)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}\nserver: {server.log_tail()}"
        )
    return proc


def invoke_json(server: Server, name: str, payload: Any = None, *extra: str) -> dict[str, Any]:
    args = ["invoke", name, "--json", *extra]
    if payload is not None:
        args += ["--payload", json.dumps(payload)]
    out: dict[str, Any] = json.loads(cli(server, *args).stdout)
    return out


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    prefix = unique("ops")
    proj = _project(tmp_path_factory.mktemp("ops"), prefix)
    result = cli(server, "deploy", str(proj), "--json")
    summary = json.loads(result.stdout)
    assert [layer["action"] for layer in summary["layers"]] == ["published"]
    assert {f["name"]: f["action"] for f in summary["functions"]} == {
        f"{prefix}-hello": "created",
        f"{prefix}-worker": "created",
    }
    assert "creating function" in result.stderr  # progress lines
    return proj, prefix


def test_deployed_functions_run_with_layer_globals_and_intrinsics(
    server: Server, deployed: tuple[Path, str], lam: Any
) -> None:
    _, prefix = deployed
    out = invoke_json(server, f"{prefix}-hello", {}, "--tail")
    assert out["StatusCode"] == 200 and out["FunctionError"] is None
    assert out["Payload"] == {
        "msg": "<hello>",
        "stage": "test",
        "peer": f"{prefix}-worker",
        "peerArn": f"arn:aws:lambda:us-east-1:123456789012:function:{prefix}-worker",
        "codeVersion": 1,
    }
    assert "hello from the handler" in out["Log"]
    assert "REPORT RequestId" in out["Log"]

    worker = invoke_json(server, f"{prefix}-worker", {"job": "j1"}, "--qualifier", "live")
    assert worker["Payload"] == {"work": "<j1>", "memory": "512"}
    assert worker["ExecutedVersion"] == "1"

    cfg = lam.get_function(FunctionName=f"{prefix}-worker")
    assert cfg["Concurrency"]["ReservedConcurrentExecutions"] == 3
    assert cfg["Configuration"]["MemorySize"] == 512
    pc = lam.get_provisioned_concurrency_config(FunctionName=f"{prefix}-worker", Qualifier="live")
    assert pc["Status"] == "READY"


def test_invoke_plain_output_and_errors(server: Server, deployed: tuple[Path, str]) -> None:
    _, prefix = deployed
    plain = cli(server, "invoke", f"{prefix}-worker", "--payload", '{"job": "x"}', "--tail")
    assert json.loads(plain.stdout) == {"work": "<x>", "memory": "512"}
    assert "REPORT RequestId" in plain.stderr
    missing = cli(server, "invoke", f"{prefix}-nope", check=False)
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
    bad = cli(server, "invoke", f"{prefix}-worker", "--payload", "{nope", check=False)
    assert bad.returncode == 1 and "not JSON" in bad.stderr
    as_json = cli(server, "invoke", f"{prefix}-nope", "--json", check=False)
    assert as_json.returncode == 1
    assert "ResourceNotFoundException" in json.loads(as_json.stdout)["error"]


def test_redeploy_without_changes_changes_nothing(
    server: Server, deployed: tuple[Path, str]
) -> None:
    proj, _ = deployed
    summary = json.loads(cli(server, "deploy", str(proj), "--json").stdout)
    assert [layer["action"] for layer in summary["layers"]] == ["unchanged"]
    assert [f["action"] for f in summary["functions"]] == ["unchanged", "unchanged"]
    table = cli(server, "deploy", str(proj)).stdout
    assert table.splitlines()[0].split() == ["KIND", "NAME", "ACTION", "ARN"]
    assert "\x1b[" not in table


def test_ps_lists_every_environment(server: Server, deployed: tuple[Path, str]) -> None:
    _, prefix = deployed
    invoke_json(server, f"{prefix}-hello")
    envs = json.loads(cli(server, "ps", "--json").stdout)["Environments"]
    mine = {(e["function"], e["version"]): e for e in envs if e["function"].startswith(prefix)}
    assert (f"{prefix}-hello", "$LATEST") in mine
    assert (f"{prefix}-worker", "1") in mine  # the provisioned environment of alias live
    hello = mine[(f"{prefix}-hello", "$LATEST")]
    assert hello["memoryMB"] == 256 and hello["invocations"] >= 1
    for e in mine.values():
        assert {"state", "frozen", "ageSeconds", "id"} <= set(e)
    text = cli(server, "ps", f"{prefix}-hello").stdout.splitlines()
    assert text[0].split() == ["FUNCTION", "VERSION", "STATE", "MEMORY", "AGE", "INVOKES", "ID"]
    assert all(line.startswith(f"{prefix}-hello") for line in text[1:]) and len(text) >= 2


def test_errors_name_the_resource_and_field(server: Server, tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Broken:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: .\n      Handler: a.b\n      Runtime: python3.11\n      MemorySize: 12\n"
    )
    out = cli(server, "deploy", str(tmp_path), check=False)
    assert out.returncode == 1
    assert "Broken.MemorySize" in out.stderr
    as_json = cli(server, "deploy", str(tmp_path), "--json", check=False)
    assert json.loads(as_json.stdout)["resource"] == "Broken"
    assert json.loads(as_json.stdout)["field"] == "MemorySize"


def test_deploy_a_function_folder_with_lambdalet_toml(server: Server, tmp_path: Path) -> None:
    name = unique("folder")
    fn = tmp_path / "fn"
    (fn / "vendor" / "python").mkdir(parents=True)
    (fn / "vendor" / "python" / "helper.py").write_text("def value():\n    return 41\n")
    (fn / "main.py").write_text(
        "import os\nfrom helper import value\n\n"
        "def go(event, context):\n"
        "    return {'v': value() + event['n'], 'mode': os.environ['MODE'],\n"
        "            'files': sorted(os.listdir(os.environ['LAMBDA_TASK_ROOT']))}\n"
    )
    (fn / "lambdalet.toml").write_text(
        f'name = "{name}"\nruntime = "{HOST_PY}"\nhandler = "main.go"\nmemory = 192\n'
        'layers = ["vendor"]\n\n[environment]\nMODE = "folder"\n'
    )
    summary = json.loads(cli(server, "deploy", str(fn), "--json").stdout)
    assert summary["source"] == "lambdalet.toml"
    assert [f["action"] for f in summary["functions"]] == ["created"]
    out = invoke_json(server, name, {"n": 1})
    # the layer folder is not zipped into the function's code
    assert out["Payload"] == {"v": 42, "mode": "folder", "files": ["lambdalet.toml", "main.py"]}


def interrupt(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Ctrl-C, as a user would; killed if it has not exited after ``timeout`` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Watcher:
    """A running ``lambdalet deploy --watch --json``: one JSON line per deploy on stdout."""

    def __init__(self, server: Server, path: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lambdalet.cli",
                "deploy",
                str(path),
                "--watch",
                "--json",
                "--interval",
                "0.1",
                "--endpoint",
                server.url,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.pumps = [threading.Thread(target=f, daemon=True) for f in (self._out, self._err)]
        for t in self.pumps:
            t.start()

    def _out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _err(self) -> None:
        assert self.proc.stderr is not None
        self.errors.extend(self.proc.stderr)

    def next_deploy(self) -> dict[str, Any]:
        try:
            out: dict[str, Any] = json.loads(self.lines.get(timeout=90))
        except queue.Empty:
            raise AssertionError(f"no redeploy; stderr: {''.join(self.errors)}") from None
        return out

    def wait_watching(self) -> None:
        deadline = time.monotonic() + 30
        while not any("watching" in line for line in self.errors) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit status."""
        proc = self.proc
        try:
            interrupt(proc)
        finally:
            for t in self.pumps:
                t.join(10)
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            proc.stderr.close()
        return proc.returncode


def test_watch_redeploys_code_and_layer_changes(server: Server, deployed: tuple[Path, str]) -> None:
    proj, prefix = deployed
    assert invoke_json(server, f"{prefix}-hello")["Payload"]["codeVersion"] == 1
    watcher = Watcher(server, proj)
    next_deploy = watcher.next_deploy
    try:
        first = next_deploy()  # the initial deploy: nothing changed since the fixture's
        assert [f["action"] for f in first["functions"]] == ["unchanged", "unchanged"]
        watcher.wait_watching()

        (proj / "hello" / "app.py").write_text(HELLO.format(version=2))
        second = next_deploy()
        actions = {f["name"]: f["action"] for f in second["functions"]}
        assert actions == {f"{prefix}-hello": "updated", f"{prefix}-worker": "unchanged"}
        assert invoke_json(server, f"{prefix}-hello")["Payload"]["codeVersion"] == 2

        (proj / "layers" / "common" / "python" / "shared.py").write_text(
            SHARED.replace('"<"', '"["').replace('">"', '"]"')
        )
        third = next_deploy()
        assert [layer["action"] for layer in third["layers"]] == ["published"]
        assert invoke_json(server, f"{prefix}-hello")["Payload"]["msg"] == "[hello]"
        worker = invoke_json(server, f"{prefix}-worker", {"job": "j"}, "--qualifier", "live")
        assert worker["Payload"]["work"] == "[j]"
        assert worker["ExecutedVersion"] == "2"  # AutoPublishAlias moved to the new version

        # a broken template is reported and watching goes on
        template = (proj / "template.yaml").read_text()
        (proj / "template.yaml").write_text(template.replace("MemorySize: 512", "MemorySize: 1"))
        broken = next_deploy()
        assert (broken["resource"], broken["field"]) == ("WorkerFunction", "MemorySize")
        assert watcher.proc.poll() is None
        (proj / "template.yaml").write_text(template.replace("STAGE: test", "STAGE: fixed"))
        fixed = next_deploy()
        assert {f["action"] for f in fixed["functions"]} == {"updated"}
        assert invoke_json(server, f"{prefix}-hello")["Payload"]["stage"] == "fixed"
    finally:
        status = watcher.stop()
    assert status == 0, "".join(watcher.errors)


# --------------------------------------------------------------------------- stacks

STACK_TEMPLATE = """
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: {runtime}
    CodeUri: src
    Handler: app.handler
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref Stage
  Keep:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '${{AWS::StackName}}-keep'
      Environment:
        Variables:
          STAGE: !Ref Stage
          WHERE: !Sub '${{AWS::Region}}:${{AWS::AccountId}}:${{AWS::Partition}}'
          ONLY_PROD: !If [IsProd, 'yes', !Ref AWS::NoValue]
  Drop:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '${{AWS::StackName}}-drop'
  ProdOnly:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      FunctionName: !Sub '${{AWS::StackName}}-prodonly'
"""

ENV_APP = """
import os

def handler(event, context):
    return {k: v for k, v in os.environ.items() if k in ("STAGE", "WHERE", "ONLY_PROD")}
"""


def _stack_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(ENV_APP)
    (root / "template.yaml").write_text(STACK_TEMPLATE.format(runtime=HOST_PY))
    return root


def _exists(lam: Any, name: str) -> bool:
    try:
        lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return False
    return True


def test_stack_conditions_parameters_and_pruning(server: Server, lam: Any, tmp_path: Path) -> None:
    stack = unique("stk")
    proj = _stack_project(tmp_path / "proj")
    # bystanders: not created by this stack, so never deleted by it
    manual = create(lam, {"app.py": ENV_APP}, name=f"{stack}-manual")
    other = create(
        lam, {"app.py": ENV_APP}, name=f"{stack}-other", Tags={"lambdalet:stack": "someone-else"}
    )

    prod = cli(
        server, "deploy", str(proj), "--stack-name", stack, "--json",
        "--parameter-overrides", "Stage=prod",
    )  # fmt: skip
    summary = json.loads(prod.stdout)
    assert summary["stack"] == stack
    assert {f["name"]: f["action"] for f in summary["functions"]} == {
        f"{stack}-keep": "created",
        f"{stack}-drop": "created",
        f"{stack}-prodonly": "created",
    }
    assert summary["skipped"] == [
        {"logicalId": "Bucket", "type": "AWS::S3::Bucket"},
        {"logicalId": "Api", "type": "AWS::Serverless::Api"},
    ]
    assert prod.stderr.count("skipped: Bucket (AWS::S3::Bucket) is not deployed by lambdalet") == 1
    assert prod.stderr.count("skipped: Api (AWS::Serverless::Api) is not deployed") == 1
    keep_arn = lam.get_function(FunctionName=f"{stack}-keep")["Configuration"]["FunctionArn"]
    assert lam.list_tags(Resource=keep_arn)["Tags"] == {
        "lambdalet:stack": stack,
        "lambdalet:logical-id": "Keep",
        "lambdalet:source": str(proj / "template.yaml"),
    }
    assert invoke_json(server, f"{stack}-keep")["Payload"] == {
        "STAGE": "prod",
        "WHERE": "us-east-1:123456789012:aws",
        "ONLY_PROD": "yes",
    }

    # back to the default Stage: ProdOnly's Condition is false, so it goes
    dev = cli(server, "deploy", str(proj), "--stack-name", stack, "--json")
    summary = json.loads(dev.stdout)
    assert summary["deleted"] == [f"{stack}-prodonly"]
    assert f"deleting function {stack}-prodonly" in dev.stderr
    assert not _exists(lam, f"{stack}-prodonly")
    assert invoke_json(server, f"{stack}-keep")["Payload"] == {
        "STAGE": "dev",
        "WHERE": "us-east-1:123456789012:aws",
    }

    # Drop leaves the template: kept with --no-prune, deleted by the next plain deploy
    template = (proj / "template.yaml").read_text()
    drop = template[template.index("  Drop:") : template.index("  ProdOnly:")]
    (proj / "template.yaml").write_text(template.replace(drop, ""))
    kept = cli(server, "deploy", str(proj), "--stack-name", stack, "--no-prune", "--json")
    assert json.loads(kept.stdout)["deleted"] == [] and _exists(lam, f"{stack}-drop")
    pruned = cli(server, "deploy", str(proj), "--stack-name", stack)
    assert f"deleting function {stack}-drop" in pruned.stderr
    assert any(
        line.split()[:3] == ["function", f"{stack}-drop", "deleted"]
        for line in pruned.stdout.splitlines()
    ), pruned.stdout
    assert not _exists(lam, f"{stack}-drop")

    # what this stack did not create is still there; and it cannot take over another's
    assert _exists(lam, manual) and _exists(lam, other) and _exists(lam, f"{stack}-keep")
    # (a new function comes first in the template: the refusal comes before it is created)
    fresh = drop.replace("Drop:", "Fresh:").replace("-drop", "-fresh")
    taker = drop.replace("${AWS::StackName}-drop", other)
    (proj / "template.yaml").write_text(template.replace(drop, fresh + taker))
    taken = cli(server, "deploy", str(proj), "--stack-name", stack, "--json", check=False)
    assert taken.returncode == 1
    error = json.loads(taken.stdout)
    assert (error["resource"], error["step"]) == ("Drop", "stack")
    assert "belongs to stack 'someone-else'" in error["error"]
    assert not _exists(lam, f"{stack}-fresh")


def test_references_to_a_skipped_bucket_and_mappings_reach_the_function(
    server: Server, lam: Any, tmp_path: Path
) -> None:
    stack = unique("refs")
    proj = _stack_project(tmp_path / "refs")
    text = (proj / "template.yaml").read_text()
    text = (
        text.replace(
            "Conditions:",
            "Mappings:\n  Sizes:\n    dev: {Memory: 320}\n    prod: {Memory: 640}\n"
            "  Regions:\n    us-east-1: {Short: use1}\nConditions:",
        )
        .replace(
            "    Handler: app.handler\n",
            "    Handler: app.handler\n    MemorySize: !FindInMap [Sizes, !Ref Stage, Memory]\n",
        )
        .replace(
            "          STAGE: !Ref Stage\n",
            "          STAGE: !Ref Stage\n"
            "          BUCKET: !Ref Bucket\n"
            "          BUCKET_ARN: !GetAtt Bucket.Arn\n"
            "          SHORT: !FindInMap [Regions, !Ref AWS::Region, Short]\n",
        )
    )
    (proj / "template.yaml").write_text(text)
    out = cli(server, "deploy", str(proj), "--stack-name", stack, "--json")
    warning = (
        "Keep.Environment.Variables.BUCKET refers to Bucket (AWS::S3::Bucket), which lambdalet "
        f"does not deploy; using '{stack}-bucket'"
    )
    assert out.stderr.count(warning) == 1, out.stderr
    assert "Keep.Environment.Variables.BUCKET_ARN refers to Bucket" in out.stderr
    summary = json.loads(out.stdout)
    assert {(r["logicalId"], r["field"], r["value"]) for r in summary["references"]} == {
        ("Keep", "Environment.Variables.BUCKET", f"{stack}-bucket"),
        ("Keep", "Environment.Variables.BUCKET_ARN", f"arn:aws:s3:::{stack}-bucket"),
    }
    config = lam.get_function_configuration(FunctionName=f"{stack}-keep")
    assert config["MemorySize"] == 320
    assert config["Environment"]["Variables"] == {
        "STAGE": "dev",
        "WHERE": "us-east-1:123456789012:aws",
        "BUCKET": f"{stack}-bucket",
        "BUCKET_ARN": f"arn:aws:s3:::{stack}-bucket",
        "SHORT": "use1",
    }
    prod = cli(
        server, "deploy", str(proj), "--stack-name", stack, "--parameter-overrides", "Stage=prod"
    )
    assert "warning: Keep.Environment.Variables.BUCKET refers to Bucket" in prod.stderr
    assert lam.get_function_configuration(FunctionName=f"{stack}-keep")["MemorySize"] == 640

    # any other attribute of a skipped resource is still an error naming resource and field
    (proj / "template.yaml").write_text(
        text.replace("!GetAtt Bucket.Arn", "!GetAtt Bucket.DomainName")
    )
    bad = cli(server, "deploy", str(proj), "--stack-name", stack, "--json", check=False)
    assert bad.returncode == 1
    error = json.loads(bad.stdout)
    assert (error["resource"], error["field"]) == ("Keep", "Environment.Variables.BUCKET_ARN")
    assert "Bucket (AWS::S3::Bucket) is not deployed by lambdalet" in error["error"]


def test_watch_deletes_a_function_removed_from_the_template(
    server: Server, lam: Any, tmp_path: Path
) -> None:
    stack = unique("watched")  # the folder's name is the stack's
    proj = _stack_project(tmp_path / stack)
    watcher = Watcher(server, proj)
    try:
        first = watcher.next_deploy()
        assert first["stack"] == stack
        assert {f["name"] for f in first["functions"]} == {f"{stack}-keep", f"{stack}-drop"}
        watcher.wait_watching()
        template = (proj / "template.yaml").read_text()
        drop = template[template.index("  Drop:") : template.index("  ProdOnly:")]
        (proj / "template.yaml").write_text(template.replace(drop, ""))
        second = watcher.next_deploy()
        assert second["deleted"] == [f"{stack}-drop"]
        assert not _exists(lam, f"{stack}-drop") and _exists(lam, f"{stack}-keep")
    finally:
        status = watcher.stop()
    assert status == 0, "".join(watcher.errors)
    # said once for the whole watch, not once per redeploy
    assert "".join(watcher.errors).count("skipped: Bucket (AWS::S3::Bucket)") == 1


# --------------------------------------------------------------------------- logs


class LogFollower:
    """A running ``lambdalet logs NAME --follow [...]``, its stdout read line by line."""

    def __init__(self, server: Server, name: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "lambdalet.cli", "logs", name, "--follow",
                "--endpoint", server.url, *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.pumper = threading.Thread(target=self._pump, daemon=True)
        self.pumper.start()
        # --follow alone starts at the end: the test goes on once it follows
        assert self.proc.stderr is not None
        said = self.proc.stderr.readline()
        assert said.startswith("following /aws/lambda/"), said

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> list[str]:
        """The lines printed up to the first holding ``text``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return seen
        raise AssertionError(f"logs --follow never printed {text!r}; printed {seen}")

    def stop(self) -> str:
        """Ctrl-C; checks it exits 0 without a traceback; returns its stderr."""
        try:
            interrupt(self.proc, 15)
        finally:
            self.pumper.join(10)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            stderr = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        assert self.proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        return stderr


def test_logs_follow_prints_new_lines_until_ctrl_c(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": "def handler(event, context):\n    print(event['say'])\n"})
    follow = LogFollower(server, name)
    try:
        # started before the function has a log file: it waits for one
        invoke_json(server, name, {"say": "first-marker"})
        follow.wait_for("first-marker")
        invoke_json(server, name, {"say": "second-marker"})
        follow.wait_for("second-marker")
        # emptied by hand (log rotation): read again from the start
        os.truncate(function_log_path(server.data_dir / "logs", name), 0)
        invoke_json(server, name, {"say": "third-marker"})
        follow.wait_for("third-marker")
        assert follow.proc.poll() is None
    finally:
        follow.stop()


def test_logs_json_gives_one_object_per_line_with_platform_fields(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": "def handler(event, context):\n    print(event['say'])\n"})
    follow = LogFollower(server, name, "--json")
    try:
        cold = invoke_json(server, name, {"say": "cold-marker"})["RequestId"]
        warm = invoke_json(server, name, {"say": "warm-marker"})["RequestId"]
        followed = [json.loads(line) for line in follow.wait_for(f"REPORT RequestId: {warm}")]
    finally:
        follow.stop()
    whole = cli(server, "logs", name, "--json")
    records = [json.loads(line) for line in whole.stdout.splitlines()]
    assert records[: len(followed)] == followed  # --follow prints the same objects
    by_type: dict[str, list[dict[str, Any]]] = {}
    stream = records[0]["logStream"]
    for r in records:
        assert isinstance(r["message"], str) and "\n" not in r["message"]
        # every event has its time (epoch ms) and its environment's log stream
        assert r.pop("time") > 1e12 and r.pop("logStream") == stream
        by_type.setdefault(r["type"], []).append(r)
    assert len(by_type["platform.initStart"]) == 1
    assert [r["requestId"] for r in by_type["platform.start"]] == [cold, warm]
    assert [r["requestId"] for r in by_type["platform.end"]] == [cold, warm]
    first, second = by_type["platform.report"]
    assert (first["requestId"], second["requestId"]) == (cold, warm)
    assert first["initDurationMs"] > 0 and "initDurationMs" not in second
    for report in (first, second):
        assert report["durationMs"] > 0 and report["billedDurationMs"] >= 1
        assert report["memorySizeMB"] == 128 and report["maxMemoryUsedMB"] > 0
    assert {"message": "cold-marker", "type": "function"} in by_type["function"]
    order = [r["type"] for r in records if r["type"] != "function"]
    assert order.index("platform.initStart") < order.index("platform.start")

    missing = cli(server, "logs", f"{name}-nope", "--json", check=False)
    assert missing.returncode == 1 and "no logs for function" in json.loads(missing.stdout)["error"]


def test_logs_since_tail_and_filter_print_a_traceback_as_lines(server: Server, lam: Any) -> None:
    code = "def handler(event, context):\n    print('hi')\n    raise ValueError('nope')\n"
    name = create(lam, {"app.py": code})
    failed = cli(server, "invoke", name, "--json", check=False)
    rid = json.loads(failed.stdout)["RequestId"]
    deadline = time.monotonic() + 30
    # the caller hears of the error before the runtime's next ends the invoke and its REPORT
    while f"REPORT RequestId: {rid}" not in (whole := cli(server, "logs", name).stdout):
        assert time.monotonic() < deadline, whole
    assert "\r" not in whole
    # the traceback: its first line and the following ones each on a line of their own
    lines = whole.splitlines()
    at = next(i for i, line in enumerate(lines) if "[ERROR] ValueError: nope" in line)
    assert lines[at + 1].strip() == "Traceback (most recent call last):"
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} ", lines[at])  # each event with its time

    last = cli(server, "logs", name, "--tail", "2").stdout.splitlines()
    assert len(last) == 2 and last[0].split(" ", 1)[1].startswith(f"END RequestId: {rid}")
    errors = cli(server, "logs", name, "--filter", "ERROR").stdout
    assert "ValueError: nope" in errors and "START" not in errors and "hi" not in errors
    assert "START RequestId" in cli(server, "logs", name, "--since", "1h").stdout
    assert cli(server, "logs", name, "--since", "2999-01-01T00:00:00").stdout == ""
    bad = cli(server, "logs", name, "--since", "yesterday", check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr


SAM_APP = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: {timeout}
Resources:
  HelloWorldFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello/
      Handler: app.handler
      Runtime: {runtime}
{extra}"""

BROKEN = """\
  Broken:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello/
      Handler: app.handler
      Runtime: {runtime}
      Layers: [arn:aws:lambda:us-east-1:123456789012:layer:no-such-layer:1]
"""


def _sam_app(root: Path, folder: str, says: str, timeout: int = 3, extra: str = "") -> Path:
    app = root / folder
    (app / "hello").mkdir(parents=True, exist_ok=True)
    (app / "hello" / "app.py").write_text(f"def handler(e, c):\n    return {says!r}\n")
    (app / "template.yaml").write_text(
        SAM_APP.format(timeout=timeout, runtime=HOST_PY, extra=extra)
    )
    return app


def _in(folder: Path, server: Server, *args: str, check: bool = True) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", *args, "--endpoint", server.url],
        capture_output=True, text=True, env=_env(), timeout=180, cwd=folder,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_stacks_names_rollback_and_delete(
    server: Server, lam: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("stacks")
    one = _sam_app(root, f"{unique('one')}", "from one")
    two = _sam_app(root, f"{unique('two')}", "from two")
    names = {}
    for app in (one, two):
        out = json.loads(_in(app, server, "deploy", "--json").stdout)
        names[app] = out["functions"][0]["name"]
    # SAM's default logical ID in two apps: two functions, named as CloudFormation does
    assert names[one] != names[two]
    assert re.fullmatch(rf"{one.name}-HelloWorldFunction-[A-Z2-7]{{12}}", names[one])
    # the logical ID names the function from the stack's folder
    assert _in(one, server, "invoke", "HelloWorldFunction").stdout.strip() == '"from one"'
    assert _in(two, server, "invoke", "HelloWorldFunction").stdout.strip() == '"from two"'

    # a deploy that fails half-way rolls back: the update is undone, the creation too
    before = lam.get_function(FunctionName=names[one])["Configuration"]
    _sam_app(root, one.name, "changed", timeout=9, extra=BROKEN.format(runtime=HOST_PY))
    failed = _in(one, server, "deploy", check=False)
    assert failed.returncode == 1 and "Broken" in failed.stderr, failed.stderr
    assert "rolling back" in failed.stderr
    after = lam.get_function(FunctionName=names[one])["Configuration"]
    assert (after["Timeout"], after["CodeSha256"]) == (before["Timeout"], before["CodeSha256"])
    assert _in(one, server, "invoke", "HelloWorldFunction").stdout.strip() == '"from one"'
    stacks = {s["name"]: s for s in json.loads(_in(root, server, "stacks", "--json").stdout)}
    assert list(stacks[one.name]["functions"]) == [names[one]]  # no Broken left behind
    assert stacks[two.name]["functions"] == {names[two]: "HelloWorldFunction"}

    # delete: no question when stdin is not a terminal
    gone = _in(root, server, "delete", two.name)
    assert f"deleted stack {two.name}: 1 function(s)" in gone.stdout
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=names[two])
    assert two.name not in json.loads(_in(root, server, "stacks", "--json").stdout)
    missing = _in(root, server, "delete", two.name, check=False)
    assert missing.returncode == 1 and "no stack" in missing.stderr
