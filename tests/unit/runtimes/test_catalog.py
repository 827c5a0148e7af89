"""The runtime catalog: descriptions, the fallback policy, and ``lambdalet runtimes``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdalet import cli
from lambdalet.config import ServerConfig
from lambdalet.runtimes import catalog
from lambdalet.runtimes import python as pyrt
from lambdalet.runtimes.description import INSTALLED, NOT_INSTALLED, UNAVAILABLE
from tests.unit.runtimes.test_python_discovery import fake_prefix, places


def test_descriptions_say_exact_fallback_or_refused(tmp_path: Path) -> None:
    current = fake_prefix(tmp_path / "current", "3.11.7")
    where = places(tmp_path, current=current)
    config = ServerConfig(data_dir=tmp_path / "data")
    by_id = {d.runtime: d for d in pyrt.describe(config, where)}
    assert set(by_id) == set(pyrt.PYTHON_RUNTIMES)
    exact = by_id["python3.11"]
    assert exact.exact and exact.status == NOT_INSTALLED
    assert exact.runs_on == "Python 3.11.7" and exact.path == str(current)
    assert exact.components == {
        "awslambdaric": pyrt.awslambdaric_version((3, 11)),
        "boto3": pyrt.SDK_VERSION,
        "botocore": pyrt.SDK_VERSION,
    }
    fallback = by_id["python3.12"]
    assert not fallback.exact and fallback.runs_on == "Python 3.11.7"
    assert any("no Python 3.12" in n and "--python-fallback host" in n for n in fallback.notes)

    strict = ServerConfig(data_dir=tmp_path / "data", python_fallback="refuse")
    refused = {d.runtime: d for d in pyrt.describe(strict, where)}["python3.12"]
    assert refused.status == UNAVAILABLE and not refused.exact
    assert "--python-fallback refuse" in refused.notes[0]


def test_installed_once_the_runtime_dir_and_layer_are(tmp_path: Path) -> None:
    from tests.unit.runtimes.test_python_discovery import fake_pip

    pip, _ = fake_pip(tmp_path)
    current = fake_prefix(tmp_path / "current", "3.11.7")
    where = places(tmp_path, current=current)
    config = ServerConfig(data_dir=tmp_path / "data")
    install = pyrt.select_python("python3.11", where).install
    pyrt.install_python_runtime(config.runtimes_dir, install, pip_python=pip)
    described = {d.runtime: d for d in pyrt.describe(config, where)}["python3.11"]
    assert described.status == INSTALLED


def test_fallback_problem_only_under_refuse(tmp_path: Path) -> None:
    where = places(tmp_path, current=fake_prefix(tmp_path / "current", "3.11.7"))
    assert pyrt.fallback_problem("python3.12", "host", where) is None
    assert pyrt.fallback_problem("python3.11", "refuse", where) is None
    assert pyrt.fallback_problem("provided.al2023", "refuse", where) is None
    problem = pyrt.fallback_problem("python3.12", "refuse", where)
    assert problem is not None
    assert problem.startswith("The runtime parameter of python3.12 is not available")
    assert "pyenv install 3.12" in problem


def test_families_own_their_ids() -> None:
    assert catalog.family_of("python3.12").name == "python"
    assert catalog.family_of("provided.al2023").name == "provided"
    with pytest.raises(catalog.UnknownRuntime) as info:
        catalog.family_of("cobol1.0")
    assert "'cobol1.0'" in str(info.value)


def test_runtimes_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["runtimes", "--json", "--data-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)["Runtimes"]
    ids = [r["Runtime"] for r in listed]
    assert ids[: len(pyrt.PYTHON_RUNTIMES)] == list(pyrt.PYTHON_RUNTIMES)
    assert {"provided", "provided.al2", "provided.al2023"} <= set(ids)
    assert all({"Status", "RunsOn", "Path", "Exact", "Components"} <= set(r) for r in listed)
    assert cli.main(["runtimes", "install", "--data-dir", str(tmp_path)]) == 2
    assert cli.main(["runtimes", "install", "cobol1.0", "--data-dir", str(tmp_path)]) == 1
    assert "unknown runtime 'cobol1.0'" in capsys.readouterr().err
    assert cli.main(["runtimes", "install", "provided.al2023", "--data-dir", str(tmp_path)]) == 0
    assert "nothing to install" in capsys.readouterr().out
