"""lambdalet: a pre-started Python runtime (see python-prestart).  Stdlib only.

Started like the runtime itself (``python -m`` with cwd = task root and the platform's
default PYTHONPATH), it imports what ``python -m awslambdaric`` imports, forgets the
``awslambdaric`` modules themselves (they read the function's environment when
imported) and waits on fd 3 for ``marshal.dumps((argv, env, cwd))`` of the runtime's
bootstrap.  Then it becomes ``python -m lambdalet_launch "$_HANDLER"`` (which is ``python -m
awslambdaric`` plus a mark for the timeline) in this process when
that gives the function exactly what a plain start gives; otherwise (an exec wrapper, a
variable that changes how the interpreter starts) it execs the bootstrap itself.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

#: variables read while the interpreter starts (or by libc at exec): a difference from
#: the values this process started with means only a fresh start is exact
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")
_STARTUP_KEYS = ("LANG", "LANGUAGE", "GLIBC_TUNABLES", "HOME", "PATH", "TZ", "TMPDIR")


def _startup_view(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_PREFIXES) or k in _STARTUP_KEYS}


def _plain_env(
    env: Mapping[str, str], runtime_dir: str, launched: Mapping[str, str]
) -> dict[str, str]:
    """The environment ./bootstrap gives the interpreter for ``env``.

    It may append the runtime dir to PYTHONPATH, and its ``cd``s set PWD and OLDPWD the
    way python-prestart's identical ``cd``s set them in ``launched``.
    """
    out = dict(env)
    path = out.get("PYTHONPATH")
    if path is None:
        out["PYTHONPATH"] = runtime_dir
    elif runtime_dir not in path.split(":"):
        out["PYTHONPATH"] = path + ":" + runtime_dir
    for key in ("PWD", "OLDPWD"):
        if key in launched:
            out[key] = launched[key]
        else:
            out.pop(key, None)
    return out


def _exec_environ() -> dict[str, str]:
    """The environment this process was executed with (before the interpreter's changes)."""
    with open("/proc/self/environ", "rb") as f:
        raw = f.read()
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[os.fsdecode(key)] = os.fsdecode(value)
    return out


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _preimport() -> None:
    """Import what ``python -m awslambdaric`` imports, then forget awslambdaric itself.

    Its C client (``runtime_client``) stays imported, but its ``initialize_client`` is
    not called here: the real start calls it once, when awslambdaric is imported again.
    """
    try:
        client = __import__("runtime_client")
    except ImportError:
        client = None
    real_init = getattr(client, "initialize_client", None)
    if real_init is not None:
        setattr(client, "initialize_client", lambda *args, **kwargs: None)  # noqa: B010
    try:
        __import__("awslambdaric.__main__")  # its dependencies stay imported
    except Exception:
        pass
    finally:
        if real_init is not None:
            setattr(client, "initialize_client", real_init)  # noqa: B010
    for name in [m for m in sys.modules if m == "awslambdaric" or m.startswith("awslambdaric.")]:
        del sys.modules[name]


def main() -> None:
    launched = _exec_environ()
    started_with = _startup_view(launched)
    # what the interpreter changed while starting (e.g. LC_CTYPE by locale coercion); the
    # same start-up variables make a plain start change the same
    changed = {k: v for k, v in os.environ.items() if launched.get(k) != v}
    dropped = [k for k in launched if k not in os.environ]
    runtime_dir = os.path.dirname(os.path.abspath(__file__))
    _preimport()
    launch = __import__("lambdalet_launch")
    del sys.modules["lambdalet_launch"]  # a plain start runs it as __main__, not by name

    import marshal

    data = _read_all(3)
    if not data:
        os._exit(0)  # the platform dropped this spare
    argv: list[str]
    env: dict[str, str]
    cwd: str
    argv, env, cwd = marshal.loads(data)
    plain = _plain_env(env, runtime_dir, launched)
    if plain.get("AWS_LAMBDA_EXEC_WRAPPER") or _startup_view(plain) != started_with:
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    plain.update(changed)
    for key in dropped:
        plain.pop(key, None)

    # become `python -m awslambdaric "$_HANDLER"` started in cwd with this environment
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(plain)
    if "time" in sys.modules:
        sys.modules["time"].tzset()  # TZ is read when time is imported
    sys.path_importer_cache.clear()
    import importlib

    importlib.invalidate_caches()
    sys.argv[:] = ["-m", plain.get("_HANDLER", "")]
    # what ./bootstrap's `python -m lambdalet_launch` runs (a fresh __main__, runpy)
    launch.run_awslambdaric()


if __name__ == "__main__":
    main()
