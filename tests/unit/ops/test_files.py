"""Loading PATH, zipping folders, noticing changes: small files in tmp_path, no server."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from lambdalet.ops.loader import find_source, load
from lambdalet.ops.packaging import sha256_b64, zip_dir, zip_inline
from lambdalet.ops.template import PlanError
from lambdalet.ops.watch import changed, snapshot, watch


def test_find_source_prefers_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources: {}")
    assert find_source(tmp_path) == tmp_path / "template.yaml"
    (tmp_path / "lambdalet.toml").write_text("")
    assert find_source(tmp_path) == tmp_path / "lambdalet.toml"
    assert find_source(tmp_path / "template.yaml") == tmp_path / "template.yaml"
    with pytest.raises(PlanError, match="no such file"):
        find_source(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlanError, match="holds none"):
        find_source(tmp_path / "empty")


def test_load_a_folder_with_lambdalet_toml(tmp_path: Path) -> None:
    (tmp_path / "lambdalet.toml").write_text(
        'name = "f"\nruntime = "python3.11"\nhandler = "app.h"\n'
    )
    source, t = load(tmp_path)
    assert source.name == "lambdalet.toml"
    (fn,) = t.functions({})
    assert fn.code_dir == tmp_path / "."


def test_load_json_config_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "lambdalet.json").write_text(
        '{"name": "f", "runtime": "python3.11", "handler": "a.b"}'
    )
    assert load(tmp_path)[1].functions({})[0].name == "f"
    (tmp_path / "lambdalet.json").write_text("{nope")
    with pytest.raises(PlanError, match="cannot be parsed"):
        load(tmp_path)


def test_load_template_stack_name_is_the_folder(tmp_path: Path) -> None:
    d = tmp_path / "my_app"
    d.mkdir()
    (d / "template.yml").write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      FunctionName: !Sub '${AWS::StackName}-f'\n      CodeUri: .\n"
        "      Handler: a.b\n      Runtime: python3.11\n"
    )
    (fn,) = load(d)[1].functions({})
    assert fn.name == "my-app-f"


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources: [unclosed")
    with pytest.raises(PlanError, match=r"template\.yaml"):
        load(tmp_path)


def _tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("x = 1\n")
    (root / "bootstrap").write_text("#!/bin/sh\n")
    (root / "bootstrap").chmod(0o755)
    (root / "pkg" / "m.py").write_text("")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    (root / "layer").mkdir()
    (root / "layer" / "l.py").write_text("")


def test_zip_keeps_exec_bits_skips_caches_and_excluded(tmp_path: Path) -> None:
    _tree(tmp_path)
    data = zip_dir(tmp_path, exclude=[tmp_path / "layer"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert names == ["app.py", "bootstrap", "pkg/m.py"]
    assert modes == {"app.py": 0o644, "bootstrap": 0o755, "pkg/m.py": 0o644}


def test_zip_is_deterministic(tmp_path: Path) -> None:
    _tree(tmp_path)
    first = zip_dir(tmp_path)
    os.utime(tmp_path / "app.py", (1, 1))
    assert sha256_b64(zip_dir(tmp_path)) == sha256_b64(first)
    (tmp_path / "app.py").write_text("x = 2\n")
    assert zip_dir(tmp_path) != first


def test_inline_code_zip() -> None:
    with zipfile.ZipFile(io.BytesIO(zip_inline("print(1)", "python3.11"))) as zf:
        assert zf.read("index.py") == b"print(1)"


def test_snapshot_notices_edits_new_files_and_chmod(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = snapshot([tmp_path])
    assert str(tmp_path / "__pycache__" / "app.cpython-311.pyc") not in before
    (tmp_path / "app.py").write_text("x = 22\n")
    (tmp_path / "new.py").write_text("")
    (tmp_path / "pkg" / "m.py").chmod(0o755)
    assert changed(before, snapshot([tmp_path])) == sorted(
        str(tmp_path / p) for p in ("app.py", "new.py", "pkg/m.py")
    )


def test_watch_calls_redeploy_once_per_change(tmp_path: Path) -> None:
    _tree(tmp_path)
    seen: list[list[str]] = []
    done = threading.Event()

    def redeploy(files: list[str]) -> None:
        seen.append(files)
        done.set()

    t = threading.Thread(
        target=watch,
        args=(lambda: [tmp_path], redeploy),
        kwargs={"interval": 0.02, "settle": 0.05, "stop": lambda: bool(seen)},
        daemon=True,
    )
    t.start()
    import time

    time.sleep(0.1)
    (tmp_path / "app.py").write_text("x = 3\n")
    assert done.wait(10)
    t.join(10)
    assert seen == [[str(tmp_path / "app.py")]]
