"""A SAM application with a Python and a Node.js function, each with dependencies from its
``requirements.txt`` / ``package.json``, and a Node.js layer built with ``BuildMethod``:
``lambdalet deploy`` builds and deploys it, boto3 invokes both functions (real runc
sandboxes, real pip and npm), and a redeploy that changed nothing uses the build cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lambdalet.ops import build
from tests.integration.harness import HOST_PY, ROOT, Server, invoke, unique
from tests.integration.node import ensure_node

pytestmark = pytest.mark.integration

NODE = "nodejs22.x"

TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 60
    MemorySize: 512
Resources:
  NodeDeps:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: {prefix}-node-deps
      ContentUri: layers/node/
      CompatibleRuntimes: [{node}]
    Metadata:
      BuildMethod: {node}
  PyFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {prefix}-py
      CodeUri: py/
      Handler: app.handler
      Runtime: {python}
  NodeFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {prefix}-node
      CodeUri: node/
      Handler: src/app.handler
      Runtime: {node}
      Layers: [!Ref NodeDeps]
"""

PY_APP = """
import tabulate

def handler(event, context):
    return {
        "table": tabulate.tabulate(event["rows"], tablefmt="plain"),
        "file": tabulate.__file__,
    }
"""

# CommonJS: is-number from the function's node_modules, camelcase from the layer's
# nodejs/node_modules (NODE_PATH); import() resolves the ES module way: the function's
# own from its node_modules, the layer's through NODE_PATH (as Lambda's Node 18+ does).
# Neither package is among the runtime's own modules, which NODE_PATH also reaches.
# built-with.txt is written by the package's postinstall script: the Node npm ran on.
NODE_APP = """
const fs = require("fs");
const isNumber = require("is-number");
const camelCase = require("camelcase");

exports.handler = async (event) => {
  const esm = await import("is-number");
  const esmLayer = await import("camelcase");
  return {
    numbers: event.values.map((v) => isNumber(v)),
    esm: esm.default === isNumber,
    esmLayer: esmLayer.default === camelCase,
    camel: camelCase(event.words),
    isNumber: require.resolve("is-number"),
    camelFile: require.resolve("camelcase"),
    builtWithMine: fs.readFileSync(__dirname + "/../built-with.txt", "utf8") === process.version,
  };
};
"""


def _package(name: str, deps: dict[str, str], **more: Any) -> str:
    package = {"name": name, "version": "1.0.0", "private": True, "dependencies": deps}
    return json.dumps(package | more)


#: an install script (as native addons have) records the Node that ran it
POSTINSTALL = "node -e \"require('fs').writeFileSync('built-with.txt', process.version)\""


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


def _deploy(server: Server, proj: Path) -> tuple[dict[str, Any], str]:
    """``lambdalet deploy --json``: the summary and the progress lines (stderr)."""
    cli = [sys.executable, "-m", "lambdalet.cli"]
    done = subprocess.run(
        [*cli, "deploy", str(proj), "--json", "--endpoint", server.url],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert done.returncode == 0, (
        f"stdout: {done.stdout}\nstderr: {done.stderr}\nserver: {server.log_tail()}"
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary, done.stderr


@pytest.fixture(scope="module")
def app(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The project, its function-name prefix and the first deploy's progress lines."""
    ensure_node(server, NODE)  # its Node's npm runs the builds: no host npm needed
    prefix = unique("mixed")
    proj = tmp_path_factory.mktemp("mixed") / "proj"
    for folder in ("py", "node/src", "layers/node"):
        (proj / folder).mkdir(parents=True)
    (proj / "template.yaml").write_text(TEMPLATE.format(prefix=prefix, python=HOST_PY, node=NODE))
    (proj / "py" / "app.py").write_text(PY_APP)
    (proj / "py" / "requirements.txt").write_text("tabulate==0.9.0\n")
    (proj / "node" / "src" / "app.js").write_text(NODE_APP)
    (proj / "node" / "package.json").write_text(
        _package("app", {"is-number": "7.0.0"}, scripts={"postinstall": POSTINSTALL})
    )
    layer = proj / "layers" / "node"
    (layer / "package.json").write_text(_package("deps", {"camelcase": "6.3.0"}))
    npm = build.runtime_npm(NODE)
    subprocess.run(  # the layer has a lockfile (npm ci), the function none (npm install)
        [*npm.argv, "install", "--package-lock-only", "--no-audit", "--no-fund"],
        cwd=layer,
        env=npm.env(os.environ),
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary, said = _deploy(server, proj)
    assert [x["action"] for x in summary["layers"]] == ["published"], summary
    assert {f["name"]: f["action"] for f in summary["functions"]} == {
        f"{prefix}-py": "created",
        f"{prefix}-node": "created",
    }, summary
    return proj, prefix, said


def test_both_functions_run_with_their_dependencies(lam: Any, app: tuple[Path, str, str]) -> None:
    _, prefix, said = app
    assert "PyFunction: installing requirements.txt with pip" in said, said
    assert f"NodeFunction: installing package.json with npm install ({NODE}, Node.js 22." in said
    assert f"NodeDeps: installing package.json with npm ci ({NODE}, Node.js 22." in said, said

    py = invoke(lam, f"{prefix}-py", {"rows": [["a", 1], ["bb", 22]]})
    assert py.function_error is None, (py.payload, py.log)
    assert py.json() == {
        "table": "a    1\nbb  22",
        "file": "/var/task/tabulate/__init__.py",
    }

    node = invoke(lam, f"{prefix}-node", {"values": [5, "5", "five"], "words": "sam-mixed_app"})
    assert node.function_error is None, (node.payload, node.log)
    assert node.json() == {
        "numbers": [True, True, False],
        "esm": True,
        "esmLayer": True,
        "camel": "samMixedApp",
        "isNumber": "/var/task/node_modules/is-number/index.js",
        "camelFile": "/opt/nodejs/node_modules/camelcase/index.js",
        "builtWithMine": True,  # npm ran on the function's Node version
    }


def test_redeploy_unchanged_uses_the_build_cache(
    server: Server, lam: Any, app: tuple[Path, str, str]
) -> None:
    proj, prefix, _ = app
    built = sorted(p.name for p in (proj / ".lambdalet-build" / "deps").iterdir())
    assert len(built) == 3, built  # one build each: the two functions and the layer
    summary, said = _deploy(server, proj)
    for label in ("PyFunction", "NodeFunction", "NodeDeps"):
        assert f"{label}: dependencies unchanged, using the build cache" in said, said
    assert "installing" not in said, said
    assert [x["action"] for x in summary["layers"]] == ["unchanged"], summary
    assert [f["action"] for f in summary["functions"]] == ["unchanged", "unchanged"], summary
    assert sorted(p.name for p in (proj / ".lambdalet-build" / "deps").iterdir()) == built
    node = invoke(lam, f"{prefix}-node", {"values": [1], "words": "build-cache"})
    assert node.function_error is None, (node.payload, node.log)
    assert node.json()["camel"] == "buildCache"
