"""Python runtimes as AWS ships them: the standard library, the function's code and layers,
the runtime's own boto3, and nothing the host installed (real runc sandboxes, boto3)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.api.validation import RUNTIMES
from lambdalet.env.log_sink import function_log_path
from lambdalet.runtimes.python import SearchPlaces, list_pythons, sdk_version
from tests.integration.harness import (
    HOST_PY,
    ROOT,
    Server,
    create,
    free_port,
    invoke,
    unique,
)

pytestmark = pytest.mark.integration

#: installed on this host for lambdalet's own tests, never on Lambda
HOST_ONLY = ("pytest", "hypothesis")

PROBE = """
import importlib.util, sys

def handler(event, context):
    import boto3, botocore
    return {
        "version": "%d.%d" % sys.version_info[:2],
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "boto3_file": boto3.__file__,
        "host_only": {m: importlib.util.find_spec(m) is not None for m in event["host_only"]},
        "path": sys.path,
    }
"""


def _host_runtimes() -> list[str]:
    found = [f"python{p.minor_str}" for p in list_pythons(SearchPlaces.default())]
    return [r for r in found if r in RUNTIMES]


@pytest.mark.parametrize("runtime", _host_runtimes())
def test_host_packages_invisible_and_boto3_present(server: Server, lam: Any, runtime: str) -> None:
    for module in HOST_ONLY:  # the test means something only if the host has them
        assert importlib.util.find_spec(module) is not None, module
    minor = runtime.removeprefix("python")
    first_use = not (server.data_dir / "runtimes" / f"python{minor}.lang").exists()
    # importing boto3 takes a while on a loaded machine: time and CPU share to spare
    name = create(lam, {"app.py": PROBE}, runtime=runtime, Timeout=60, MemorySize=1024)
    result = invoke(lam, name, {"host_only": list(HOST_ONLY)})
    assert result.function_error is None, (result.payload, result.log)
    if first_use:  # the first Init waited for the install: its log says what and how long
        log = function_log_path(server.data_dir / "logs", name).read_text()
        assert f"lambdalet: installed the {runtime} runtime (awslambdaric " in log, log
    got = result.json()
    assert got["version"] == minor
    assert got["host_only"] == dict.fromkeys(HOST_ONLY, False), got["path"]
    wanted = sdk_version((3, int(minor.split(".")[1])))
    assert (got["boto3"], got["botocore"]) == (wanted, wanted)
    assert got["boto3_file"] == f"/var/lang/lib/python{minor}/site-packages/boto3/__init__.py"
    # Lambda's order: the task root, layers, the runtime's packages, then /var/runtime
    path = got["path"]
    assert path[0] == "/var/task"
    site = path.index(f"/var/lang/lib/python{minor}/site-packages")
    assert path.index("/opt/python") < site < path.index("/var/runtime")


# --------------------------------------------------------------------------- sam build


TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  DepsLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: {prefix}-deps
      ContentUri: layer/
      CompatibleRuntimes: [{runtime}]
    Metadata:
      BuildMethod: {runtime}
  TableFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {prefix}-table
      CodeUri: fn/
      Handler: app.handler
      Runtime: {runtime}
      Timeout: 60
      MemorySize: 1024
      Layers: [!Ref DepsLayer]
"""

APP = """
import idna, tabulate

def handler(event, context):
    return {
        "table": tabulate.tabulate([["a", 1]], tablefmt="plain"),
        "tabulate": tabulate.__file__,
        "idna": idna.__file__,
    }
"""


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=str(ROOT / "src"),
        NO_COLOR="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", *args, "--endpoint", server.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_requirements_are_built_into_the_package_and_cached(
    server: Server, lam: Any, tmp_path: Path
) -> None:
    prefix = unique("deps")
    proj = tmp_path / "proj"
    (proj / "fn").mkdir(parents=True)
    (proj / "layer").mkdir()
    (proj / "template.yaml").write_text(TEMPLATE.format(prefix=prefix, runtime=HOST_PY))
    (proj / "fn" / "app.py").write_text(APP)
    (proj / "fn" / "requirements.txt").write_text("tabulate==0.9.0\n")
    (proj / "layer" / "requirements.txt").write_text("idna==3.7\n")

    first = _cli(server, "deploy", str(proj))
    assert first.returncode == 0, first.stdout + first.stderr
    said = first.stdout + first.stderr
    assert "TableFunction: installing requirements.txt with pip" in said, said
    assert "DepsLayer: installing requirements.txt with pip" in said, said
    result = invoke(lam, f"{prefix}-table")
    assert result.function_error is None, (result.payload, result.log)
    got = result.json()
    assert got["table"] == "a  1"
    assert got["tabulate"] == "/var/task/tabulate/__init__.py"  # next to the handler
    assert got["idna"] == "/opt/python/idna/__init__.py"  # the layer's python/

    built = sorted(p.name for p in (proj / ".lambdalet-build" / "deps").iterdir())
    again = _cli(server, "deploy", str(proj))
    assert again.returncode == 0, again.stdout + again.stderr
    said = again.stdout + again.stderr
    assert "TableFunction: dependencies unchanged, using the build cache" in said, said
    assert "DepsLayer: dependencies unchanged, using the build cache" in said, said
    assert "installing requirements.txt" not in said
    assert sorted(p.name for p in (proj / ".lambdalet-build" / "deps").iterdir()) == built
    assert "unchanged" in said.split("KIND", 1)[1]


def test_a_requirement_that_does_not_exist_is_named(server: Server, tmp_path: Path) -> None:
    prefix = unique("nodeps")
    proj = tmp_path / "proj"
    (proj / "fn").mkdir(parents=True)
    (proj / "layer").mkdir()
    (proj / "template.yaml").write_text(TEMPLATE.format(prefix=prefix, runtime=HOST_PY))
    (proj / "fn" / "app.py").write_text(APP)
    (proj / "fn" / "requirements.txt").write_text("lambdalet-no-such-package-4711==1.0\n")
    done = _cli(server, "deploy", str(proj))
    assert done.returncode == 1
    assert "TableFunction: building dependencies: pip could not install " in done.stderr
    assert "'lambdalet-no-such-package-4711==1.0'" in done.stderr, done.stderr
    assert "No matching distribution" in done.stderr  # pip's own words follow


def _missing_python() -> str:
    missing = [r for r in RUNTIMES if r.startswith("python") and r not in _host_runtimes()]
    if not missing:
        pytest.skip("this host has every Python runtime")
    return missing[-1]


def test_a_fallback_is_the_functions_state_reason(lam: Any) -> None:
    missing = _missing_python()
    name = create(lam, {"app.py": PROBE}, runtime=missing)
    config = lam.get_function_configuration(FunctionName=name)
    assert config["State"] == "Active"
    assert config["StateReason"].startswith(f"lambdalet: {missing} is not installed on this host")
    assert (
        lam.get_function(FunctionName=name)["Configuration"]["StateReason"]
        == (config["StateReason"])
    )
    exact = create(lam, {"app.py": PROBE}, runtime=HOST_PY)
    assert "StateReason" not in lam.get_function_configuration(FunctionName=exact)


def test_refuse_policy_rejects_a_python_the_host_lacks(tmp_path: Path) -> None:
    missing = _missing_python()
    srv = Server(tmp_path / "data", free_port(), ("--python-fallback", "refuse"))
    srv.start()
    try:
        lam = srv.client()
        with pytest.raises(ClientError) as info:
            create(lam, {"app.py": PROBE}, runtime=missing)
        err = info.value.response["Error"]
        assert err["Code"] == "InvalidParameterValueException"
        assert f"The runtime parameter of {missing} is not available" in err["Message"]
        assert "--python-fallback refuse" in err["Message"]
        assert create(lam, {"app.py": PROBE}, runtime=HOST_PY)  # the host has that one
    finally:
        srv.stop()


def test_process_backend_still_has_the_runtimes_boto3(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", free_port(), ("--backend", "process"))
    srv.start()
    try:
        lam = srv.client()
        name = create(lam, {"app.py": PROBE}, runtime=HOST_PY, Timeout=60)
        result = invoke(lam, name, {"host_only": []})
        assert result.function_error is None, (result.payload, result.log)
        got = result.json()
        layer = tmp_path / "data" / "runtimes" / f"{HOST_PY}.lang"
        assert got["boto3_file"].startswith(str(layer)), got["boto3_file"]
    finally:
        srv.stop()


def test_runtimes_install_then_list(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lambdalet.cli", "runtimes", *args, "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=600,
        )

    before = json.loads(run("--json").stdout)["Runtimes"]
    assert {r["Runtime"]: r["Status"] for r in before}[HOST_PY] == "not installed"
    done = run("install", HOST_PY)
    assert done.returncode == 0, done.stderr
    assert f"{HOST_PY}: installing awslambdaric" in done.stdout
    assert f"{HOST_PY}: installed in {data / 'runtimes' / HOST_PY}" in done.stdout
    again = run("install", HOST_PY)
    assert f"{HOST_PY}: up to date" in again.stdout
    after = {r["Runtime"]: r for r in json.loads(run("--json").stdout)["Runtimes"]}
    mine = after[HOST_PY]
    assert mine["Status"] == "installed" and mine["Exact"] is True
    assert mine["Components"]["boto3"] == sdk_version(sys.version_info[:2])
    table = run().stdout
    assert HOST_PY in table and "installed" in table
