"""One network namespace per sandbox (pyroute2), plus optional host access.

Inside each namespace ``lo`` is up and carries ``169.254.100.1/32``; the
platform owns a listening socket bound there (created by a short-lived thread
that entered the namespace), which is how one host process serves the
Runtime API inside every sandbox with no proxy.  The same address is
``sandbox``/``sandbox.localdomain`` in the sandbox's /etc/hosts.

Host access (the internet, and the host's loopback services under
``host.lambdalet.internal``) goes through ``slirp4netns`` attached to the
namespace, with link-local addresses only: the sandbox is ``169.254.1.100``,
the host's loopback is ``169.254.1.2`` and DNS is ``169.254.1.3``.
Measured here: ~6 ms to start, ~1.6 MB PSS (0.3 MB private) per sandbox.

slirp4netns runs as its own uid (``peers.HOST_ACCESS_UID``, through util-linux's
``setpriv``, keeping only the two capabilities it needs to enter the namespace and
make its tap device): every connection a sandbox makes to the host is then owned by
that uid, which is how the server tells them apart and refuses them (api/guard.py).
The host's own services still see them come from 127.0.0.1.  slirp4netns also runs
under its own seccomp filter (``--enable-seccomp``) where it was built with libseccomp.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute, netns

from . import spawn
from .peers import HOST_ACCESS_UID
from .rootfs import RUNTIME_API_PORT, SANDBOX_ADDR

NETNS_DIR = Path("/run/netns")
#: every namespace we create is named with this prefix (so that sweep() finds them)
PREFIX = "lambdalet-"
SLIRP_CIDR = "169.254.1.0/24"
SLIRP_HOST = "169.254.1.2"
SLIRP_DNS = "169.254.1.3"

T = TypeVar("T")

#: capabilities slirp4netns needs: setns into the namespace, create its tap device
SLIRP_CAPS = "+sys_admin,+net_admin"


@functools.cache
def slirp_seccomp() -> tuple[str, ...]:
    """``--enable-seccomp`` when this slirp4netns was built with libseccomp: it parses
    what sandboxes send, so it runs under a filter of its own (its authors' list)."""
    try:
        out = subprocess.run(
            ["slirp4netns", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return ("--enable-seccomp",) if "libseccomp:" in out else ()


def slirp_prefix() -> list[str] | None:
    """The command that runs slirp4netns as :data:`HOST_ACCESS_UID`; None without setpriv."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    uid = str(HOST_ACCESS_UID)
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        f"--inh-caps=-all,{SLIRP_CAPS}",
        f"--ambient-caps=-all,{SLIRP_CAPS}",
        f"--bounding-set=-all,{SLIRP_CAPS}",
        "--",
    ]


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has entered namespace ``name``.

    ``setns`` affects only the calling thread; the thread ends afterwards, so
    no thread of ours is ever left in a sandbox's namespace.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            netns.setns(name, flags=0)
            result.append(fn())
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=run, name=f"netns-{name}")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def _configure_inside() -> socket.socket:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=idx, state="up")
        ipr.addr("add", index=idx, address=SANDBOX_ADDR, prefixlen=32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((SANDBOX_ADDR, RUNTIME_API_PORT))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class NetNamespace:
    """A named network namespace with its Runtime API socket; one owner."""

    def __init__(self, env_id: str) -> None:
        self.name = PREFIX + env_id
        self.path = NETNS_DIR / self.name
        self.runtime_api_socket: socket.socket | None = None
        self._slirp: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"NetNamespace({self.name!r})"

    def create(self) -> socket.socket:
        """Create the namespace, bring up lo, return the Runtime API listening socket."""
        netns.create(self.name)
        try:
            self.runtime_api_socket = in_netns(self.name, _configure_inside)
        except BaseException:
            self.remove_sync()
            raise
        return self.runtime_api_socket

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        return in_netns(self.name, lambda: socket.socket(family, socket.SOCK_STREAM))

    async def start_host_access(self, run_dir: Path) -> None:
        """Attach slirp4netns; returns once the interface is configured.

        Its pid goes to ``run_dir/slirp4netns.pid`` (for sweep()), its messages
        to ``run_dir/slirp4netns.log``.
        """
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        log_path = run_dir / "slirp4netns.log"
        try:
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except BaseException:
            os.close(ready_r)
            os.close(ready_w)
            raise
        try:
            proc = await spawn.start(
                [
                    *(slirp_prefix() or []),
                    "slirp4netns",
                    *slirp_seccomp(),
                    "--configure",
                    "--mtu=65520",
                    f"--cidr={SLIRP_CIDR}",
                    "--netns-type=path",
                    f"--ready-fd={ready_w}",
                    str(self.path),
                    "tap0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(ready_w,),
                start_new_session=True,
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
            os.close(log)
        self._slirp = proc
        (run_dir / "slirp4netns.pid").write_text(str(proc.pid))
        try:
            ok = await _read_ready(ready_r, 5.0)
        finally:
            os.close(ready_r)
        if ok != b"1":
            await self.stop_host_access()
            err = log_path.read_text(errors="replace").strip()
            raise OSError(f"slirp4netns failed: {err}")

    async def stop_host_access(self) -> None:
        proc, self._slirp = self._slirp, None
        if proc is not None:
            await spawn.stop(proc, 1.0)

    def remove_sync(self) -> None:
        if self.runtime_api_socket is not None:
            self.runtime_api_socket.close()
            self.runtime_api_socket = None
        remove_netns(self.name)

    async def remove(self) -> None:
        await self.stop_host_access()
        self.remove_sync()


async def _read_ready(fd: int, limit_s: float) -> bytes:
    """The first byte written to the pipe ``fd`` (b"" at EOF or after ``limit_s``)."""
    try:
        await spawn.readable(fd, limit_s)
        return os.read(fd, 1)
    except (TimeoutError, OSError):
        return b""


def remove_netns(name: str) -> None:
    """Remove a named namespace (idempotent)."""
    path = NETNS_DIR / name
    if path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)


def list_ours() -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    return []


def works() -> str | None:
    """None if we can create a network namespace here, else the reason."""
    name = f"{PREFIX}probe-{os.getpid()}"
    try:
        netns.create(name)
    except Exception as e:
        return f"cannot create a network namespace: {e}"
    try:
        in_netns(name, lambda: None)
    except Exception as e:
        return f"cannot enter a network namespace: {e}"
    finally:
        with contextlib.suppress(Exception):
            remove_netns(name)
    return None
