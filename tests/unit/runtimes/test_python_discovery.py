from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.runtimes import python as pyrt
from lambdalet.runtimes.python import (
    AWSLAMBDARIC_VERSION,
    PythonInstall,
    PythonRuntime,
    SearchPlaces,
    awslambdaric_version,
    ensure_python_runtime,
    find_python,
    install_of,
    install_python_runtime,
    parse_python_runtime,
    pip_command,
    select_python,
)
from lambdalet.sandbox.base import SandboxView

VIEW = SandboxView("/var/task", "/opt", "/var/runtime", "/var/lang", "/tmp", "169.254.100.1:9001")


def fake_prefix(
    root: Path, version: str, *, names: tuple[str, ...] = ("python", "python3"), works: bool = True
) -> Path:
    """A Python-looking prefix whose interpreter is a script printing ``version``."""
    minor = ".".join(version.split(".")[:2])
    exe = root / "bin" / f"python{minor}"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text(f"#!/bin/sh\necho {version}\n" if works else "#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    for name in names:
        os.symlink(exe.name, exe.parent / name)
    stdlib = root / "lib" / f"python{minor}"
    stdlib.mkdir(parents=True, exist_ok=True)
    (stdlib / "os.py").write_text("")
    return exe


def places(
    tmp_path: Path, current: Path | None = None, bin_dirs: tuple[Path, ...] = ()
) -> SearchPlaces:
    return SearchPlaces(current=current, pyenv_versions=tmp_path / "pyenv", bin_dirs=bin_dirs)


def test_parse_runtime_ids() -> None:
    assert parse_python_runtime("python3.12") == (3, 12)
    assert parse_python_runtime("python3.9") == (3, 9)
    for bad in ("python2.7", "python3", "nodejs20.x", "python3.12x"):
        with pytest.raises(ValueError):
            parse_python_runtime(bad)


def test_install_of_a_pyenv_like_prefix(tmp_path: Path) -> None:
    exe = fake_prefix(tmp_path / "p", "3.12.4")
    install = install_of(exe)
    assert install == PythonInstall(tmp_path / "p", "bin/python3.12", "3.12.4")
    assert install.minor == (3, 12)
    assert install.minor_str == "3.12"
    assert install.executable == exe
    assert install.has_own_python_names()
    # through a symlink (like sys.executable of a venv) the real prefix is found
    os.symlink(exe, tmp_path / "venv-python")
    assert install_of(tmp_path / "venv-python") == install


def test_install_of_rejects_broken_or_incomplete(tmp_path: Path) -> None:
    assert install_of(fake_prefix(tmp_path / "broken", "3.12.4", works=False)) is None
    exe = fake_prefix(tmp_path / "nolib", "3.12.4")
    (tmp_path / "nolib" / "lib" / "python3.12" / "os.py").unlink()
    assert install_of(exe) is None
    assert install_of(tmp_path / "missing") is None


def test_debian_layout(tmp_path: Path) -> None:
    """/usr/bin/python3.11 with the stdlib in /usr/lib/python3.11 and no bin/python."""
    usr = tmp_path / "usr"
    fake_prefix(usr, "3.11.2", names=("python3",))
    found = find_python((3, 11), places(tmp_path, bin_dirs=(usr / "bin",)))
    assert found == PythonInstall(usr, "bin/python3.11", "3.11.2")
    assert not found.has_own_python_names()
    runtime = PythonRuntime("python3.11", found, tmp_path / "rt", None)
    assert runtime.extra_path(VIEW) == ("/var/runtime/bin",)
    assert runtime.lang_dir == usr


def test_current_interpreter_first_then_pyenv_then_bin_dirs(tmp_path: Path) -> None:
    current = fake_prefix(tmp_path / "current", "3.11.9")
    fake_prefix(tmp_path / "pyenv" / "3.11.1", "3.11.1")
    fake_prefix(tmp_path / "pyenv" / "3.12.1", "3.12.1")
    fake_prefix(tmp_path / "pyenv" / "3.12.4", "3.12.4")
    fake_prefix(tmp_path / "pyenv" / "3.12.10", "3.12.10", works=False)
    fake_prefix(tmp_path / "pyenv" / "3.12.9t", "3.12.9")
    usr = tmp_path / "usr"
    fake_prefix(usr, "3.10.5", names=())
    fake_prefix(usr, "3.12.0", names=())
    where = places(tmp_path, current=current, bin_dirs=(usr / "bin",))
    found_311 = find_python((3, 11), where)
    assert found_311 is not None and found_311.prefix == tmp_path / "current"
    found_312 = find_python((3, 12), where)
    assert found_312 is not None and found_312.version == "3.12.4"  # 3.12.10 is broken
    found_310 = find_python((3, 10), where)
    assert found_310 is not None and found_310.prefix == usr
    assert find_python((3, 9), where) is None


def test_select_exact_version_has_no_note(tmp_path: Path) -> None:
    current = fake_prefix(tmp_path / "current", "3.11.7")
    fake_prefix(tmp_path / "pyenv" / "3.12.1", "3.12.1")
    sel = select_python("python3.12", places(tmp_path, current=current))
    assert sel.install.version == "3.12.1"
    assert sel.note is None


def test_missing_version_falls_back_to_the_host_python(tmp_path: Path) -> None:
    current = fake_prefix(tmp_path / "current", "3.11.7")
    sel = select_python("python3.9", places(tmp_path, current=current))
    assert sel.install.prefix == tmp_path / "current"
    assert (
        sel.note == "lambdalet: python3.9 is not installed on this host; running on Python 3.11.7"
    )
    old = select_python("python3.7", places(tmp_path, current=current))
    assert (
        old.note == "lambdalet: python3.7 is not installed on this host; running on Python 3.11.7"
    )


def test_no_usable_host_python(tmp_path: Path) -> None:
    with pytest.raises(pyrt.RuntimeInstallError):
        select_python("python3.9", places(tmp_path, current=tmp_path / "nothing"))


def test_awslambdaric_pins() -> None:
    assert awslambdaric_version((3, 12)) == AWSLAMBDARIC_VERSION
    assert awslambdaric_version((3, 13)) == AWSLAMBDARIC_VERSION
    assert awslambdaric_version((3, 9)) != AWSLAMBDARIC_VERSION


def test_pip_command_same_and_other_minor(tmp_path: Path) -> None:
    here = sys.version_info[:2]
    same = PythonInstall(tmp_path, "bin/python", f"{here[0]}.{here[1]}.0")
    cmd = pip_command(same, tmp_path / "t", "/venv/bin/python")
    assert cmd[:4] == ["/venv/bin/python", "-m", "pip", "install"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "t")
    assert "--python-version" not in cmd
    assert cmd[-1] == f"awslambdaric=={AWSLAMBDARIC_VERSION}"
    other = PythonInstall(tmp_path, "bin/python3.13", "3.13.0")
    cmd = pip_command(other, tmp_path / "t", "/venv/bin/python")
    assert cmd[cmd.index("--python-version") + 1] == "3.13"
    platform_tag = cmd[cmd.index("--platform") + 1]
    assert platform_tag.startswith("manylinux2014_")


FAKE_PIP = """#!/bin/sh
# records each call, then creates what pip --target would
echo "call $*" >> "{log}"
while [ "$#" -gt 0 ]; do
    if [ "$1" = --target ]; then target=$2; fi
    shift
done
mkdir -p "$target/awslambdaric"
echo > "$target/awslambdaric/__init__.py"
"""


def fake_pip(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "pip-calls"
    pip = tmp_path / "fake-pip-python"
    pip.write_text(FAKE_PIP.format(log=log))
    pip.chmod(0o755)
    return str(pip), log


def test_install_layout_and_idempotence(tmp_path: Path) -> None:
    pip, log = fake_pip(tmp_path)
    install = install_of(fake_prefix(tmp_path / "py", "3.12.4", names=("python3",)))
    assert install is not None
    runtimes = tmp_path / "runtimes"
    runtime_dir = install_python_runtime(runtimes, install, pip_python=pip)
    assert runtime_dir == runtimes / "python3.12"
    assert (runtime_dir / "awslambdaric" / "__init__.py").is_file()
    bootstrap = runtime_dir / "bootstrap"
    assert os.access(bootstrap, os.X_OK)
    text = bootstrap.read_text()
    assert "@INTERPRETER@" not in text and "../lang" in text and "bin/python3.12" in text
    for name in ("python", "python3", "python3.12"):
        assert os.readlink(runtime_dir / "bin" / name) == "../../lang/bin/python3.12"
        # resolves on the host through <runtimes>/lang (the process backend's view)
        assert (runtime_dir / "bin" / name).resolve() == install.executable
    assert os.readlink(runtimes / "lang" / "bin" / "python3.12") == str(install.executable)
    stamp = json.loads((runtime_dir / ".lambdalet-runtime.json").read_text())
    assert stamp["python"] == "3.12.4" and stamp["awslambdaric"] == AWSLAMBDARIC_VERSION
    assert log.read_text().count("call") == 2  # the client, then the SDK of the language layer
    assert log.read_text().count("awslambdaric==") == 1
    assert log.read_text().count(f"boto3=={pyrt.sdk_version((3, 12))}") == 1
    assert pyrt.is_installed(runtimes, install)
    layer = runtimes / "python3.12.lang"
    stamp = json.loads((layer / ".lambdalet-layer.json").read_text())
    assert stamp["site"] == ["lib/python3.12/site-packages"]  # the fake cannot say: Lambda's
    assert stamp["boto3"] == pyrt.sdk_version((3, 12))

    install_python_runtime(runtimes, install, pip_python=pip)
    assert log.read_text().count("call") == 2  # nothing to do

    # Same minor version, another patch release elsewhere: the client is relinked, not
    # reinstalled; the language layer (built from that install's site dirs) is redone.
    moved = install_of(fake_prefix(tmp_path / "py2", "3.12.7"))
    assert moved is not None
    install_python_runtime(runtimes, moved, pip_python=pip)
    assert log.read_text().count("awslambdaric==") == 1
    assert os.readlink(runtimes / "lang" / "bin" / "python3.12") == str(moved.executable)
    assert pyrt.is_installed(runtimes, moved)
    assert not list(runtimes.glob(".python3.12.tmp-*"))
    assert not list(runtimes.glob(".python3.12.lang.tmp-*"))


def test_pip_failure_is_a_clear_error(tmp_path: Path) -> None:
    failing = tmp_path / "failing-pip"
    failing.write_text(
        "#!/bin/sh\necho 'Could not fetch URL https://pypi.org/simple/' >&2\nexit 1\n"
    )
    failing.chmod(0o755)
    install = install_of(fake_prefix(tmp_path / "py", "3.12.4"))
    assert install is not None
    with pytest.raises(pyrt.RuntimeInstallError) as info:
        install_python_runtime(tmp_path / "runtimes", install, pip_python=str(failing))
    message = str(info.value)
    assert "awslambdaric" in message and "https://pypi.org" in message
    assert "Could not fetch URL" in message
    assert not (tmp_path / "runtimes" / "python3.12").exists()


async def test_ensure_python_runtime_once_under_concurrency(tmp_path: Path) -> None:
    import asyncio

    pip, log = fake_pip(tmp_path)
    current = fake_prefix(tmp_path / "current", "3.11.7")
    where = places(tmp_path, current=current)
    config = ServerConfig(data_dir=tmp_path / "data")
    results = await asyncio.gather(
        *(
            ensure_python_runtime(config, "python3.9", places=where, pip_python=pip)
            for _ in range(5)
        )
    )
    assert log.read_text().count("call") == 2  # the client and the language layer, once
    rt = results[0]
    assert rt.lang_layers == ((tmp_path / "data" / "runtimes" / "python3.11.lang").absolute(),)
    assert rt.runtime_dir == (tmp_path / "data" / "runtimes" / "python3.11").absolute()
    assert rt.lang_dir == tmp_path / "current"
    assert rt.python_version == "3.11"
    assert rt.note == "lambdalet: python3.9 is not installed on this host; running on Python 3.11.7"
    assert rt.argv(VIEW) == ["/var/runtime/bootstrap"]
    assert rt.extra_path(VIEW) == ()
    again = await ensure_python_runtime(config, "python3.9", places=where, pip_python=pip)
    assert again == rt


def test_sdk_goes_where_lambda_keeps_it() -> None:
    install = PythonInstall(Path("/usr"), "bin/python3.11", "3.11.2")
    assert pyrt.sdk_site_dir(["lib/python3.11/site-packages"], install) == (
        "lib/python3.11/site-packages"
    )
    # Debian's /usr: no lib/python3.11/site-packages on its path: the first site dir
    debian = ["local/lib/python3.11/dist-packages", "lib/python3/dist-packages"]
    assert pyrt.sdk_site_dir(debian, install) == "local/lib/python3.11/dist-packages"
    assert pyrt.sdk_packages((3, 12)) == [
        f"boto3=={pyrt.SDK_VERSION}",
        f"botocore=={pyrt.SDK_VERSION}",
    ]
    assert pyrt.sdk_version((3, 8)) != pyrt.SDK_VERSION  # the newest that supports 3.8


def test_site_dirs_of_the_running_python() -> None:
    install = install_of(Path(sys.executable))
    assert install is not None
    sites = pyrt.site_dirs(install)
    assert sites and all(not os.path.isabs(s) for s in sites)
    assert any((install.prefix / s).is_dir() for s in sites)


def test_sdk_cache_serves_the_next_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDALET_CACHE_DIR", str(tmp_path / "cache"))
    pip, log = fake_pip(tmp_path)
    install = install_of(fake_prefix(tmp_path / "py", "3.12.4"))
    assert install is not None
    first = pyrt.install_lang_layer(tmp_path / "a", install, pip_python=pip, use_cache=True)
    assert log.read_text().count("call") == 1
    key = pyrt.package_cache_key(install, pyrt.sdk_packages((3, 12)))
    assert key.startswith(f"python3.12-boto3-{pyrt.SDK_VERSION}-botocore-")
    cached = tmp_path / "cache" / "python-packages" / key
    assert (cached / "awslambdaric" / "__init__.py").is_file()  # what the fake pip made
    second = pyrt.install_lang_layer(tmp_path / "b", install, pip_python=pip, use_cache=True)
    assert log.read_text().count("call") == 1  # no pip: from the cache
    rel = "lib/python3.12/site-packages/awslambdaric/__init__.py"
    assert (first / rel).is_file() and (second / rel).is_file()
    assert not (second / "lib/python3.12/site-packages" / pyrt.CACHE_COMPLETE).exists()


def test_sdk_dir_inside_a_sandbox_and_on_the_host(tmp_path: Path) -> None:
    install = PythonInstall(tmp_path / "py", "bin/python3.11", "3.11.7")
    layer = tmp_path / "runtimes" / "python3.11.lang"
    rt = PythonRuntime(
        "python3.11", install, tmp_path / "rt", None, layer, "lib/python3.11/site-packages"
    )
    assert rt.sdk_dir(VIEW) == "/var/lang/lib/python3.11/site-packages"
    host_view = SandboxView(
        "/code", "/opt-dir", str(tmp_path / "rt"), str(install.prefix), "/tmp", "127.0.0.1:1"
    )
    # no mounts (the process backend): the layer is not over the prefix, its own dir is used
    assert rt.sdk_dir(host_view) == str(layer / "lib/python3.11/site-packages")
