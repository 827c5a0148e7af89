"""lambdalet: runs the Runtime Interface Client as ``python -m awslambdaric`` does.

Started by ./bootstrap as ``python -m lambdalet_launch "$_HANDLER"`` (and called in place
by a pre-started runtime, lambdalet_zygote).  One addition: it tells the platform where
Runtime init ends and Function init begins, so the timeline shows Init's three parts.
awslambdaric imports the handler's module with ``importlib.import_module``; the first call
of it is that moment.  That function is wrapped until its first call, which puts the
original back, sends ``POST /2018-06-01/runtime/lambdalet/function-init`` to the Runtime
API (then closes the connection and forgets the modules the request needed) and goes on.
Afterwards nothing of this remains: the same ``__main__``, ``sys.argv``, modules and
descriptors as ``python -m awslambdaric``.  Stdlib only.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

FUNCTION_INIT_PATH = "/2018-06-01/runtime/lambdalet/function-init"


def _tell_platform() -> None:
    addr = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        return
    before = set(sys.modules)
    try:
        import _socket  # the C module alone: `socket` costs milliseconds of enum set-up

        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect((host, int(port)))
            s.sendall(
                f"POST {FUNCTION_INIT_PATH} HTTP/1.1\r\nHost: {addr}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            while s.recv(4096):  # the answer: the mark is in before Init can end
                pass
        finally:
            s.close()
    except Exception:  # a mark for the timeline: the function starts regardless
        pass
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def _mark_function_init() -> None:
    real = importlib.import_module
    told = False

    def import_module(name: str, package: str | None = None) -> Any:
        nonlocal told
        if not told:
            told = True
            importlib.import_module = real
            _tell_platform()
        return real(name, package)

    importlib.import_module = import_module


def _wait_for_debugger(port: str) -> None:
    """``LAMBDALET_DEBUG_PORT``: listen with debugpy and wait until a debugger attaches
    (``lambdalet invoke --debug-port``); the platform forwards the host's port here."""
    path = os.environ.get("LAMBDALET_DEBUGPY_PATH")
    if path and path not in sys.path:
        sys.path.insert(0, path)
    try:
        import debugpy  # type: ignore[import-not-found]
    except ImportError:
        print("lambdalet: debugpy is not installed; not waiting for a debugger", flush=True)
        return
    debugpy.listen(("127.0.0.1", int(port)))
    print(f"lambdalet: waiting for a debugger on port {port}", flush=True)
    debugpy.wait_for_client()
    print("lambdalet: debugger attached", flush=True)


def run_awslambdaric() -> None:
    """``python -m awslambdaric`` in this process: a fresh ``__main__``, ``runpy``."""
    port = os.environ.get("LAMBDALET_DEBUG_PORT", "")
    if port.isdigit():
        _wait_for_debugger(port)
    _mark_function_init()
    main_module = type(sys)("__main__")
    main_module.__builtins__ = sys.modules["builtins"]  # type: ignore[attr-defined]
    main_module.__annotations__ = {}
    sys.modules["__main__"] = main_module
    import runpy

    runpy._run_module_as_main("awslambdaric", alter_argv=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    run_awslambdaric()
