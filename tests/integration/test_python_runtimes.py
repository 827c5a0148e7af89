"""Python runtimes as AWS ships them: the standard library, the function's code and layers,
the runtime's own boto3, and nothing the host installed (real runc sandboxes, boto3)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from lambdalet.api.validation import RUNTIMES
from lambdalet.runtimes.python import SearchPlaces, list_pythons, sdk_version
from tests.integration.harness import create, invoke

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
def test_host_packages_invisible_and_boto3_present(lam: Any, runtime: str) -> None:
    for module in HOST_ONLY:  # the test means something only if the host has them
        assert importlib.util.find_spec(module) is not None, module
    name = create(lam, {"app.py": PROBE}, runtime=runtime)
    result = invoke(lam, name, {"host_only": list(HOST_ONLY)})
    assert result.function_error is None, (result.payload, result.log)
    got = result.json()
    minor = runtime.removeprefix("python")
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
