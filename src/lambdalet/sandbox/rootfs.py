"""The shared read-only base root file system and the sandbox's /etc.

The base rootfs is a nearly empty directory, built once under the data
directory and shared read-only by every sandbox: symlinks ``bin -> usr/bin``
etc. (so the host's ``/usr`` bind-mounted read-only is the "runtime image"),
empty mount points, and a small ``/etc`` written by us.  No other host file is
visible inside: not ``/root``, ``/home``, the data directory, nor the host's
``/etc`` beyond the few files copied here.

Everything in ``/etc`` is the same for every sandbox (each has its own network
namespace, so the same addresses are used everywhere), so it lives in the
shared base too.  The directory name is a hash of its contents: changing the
contents builds a new base without disturbing running sandboxes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 993
SANDBOX_GID = 990
SANDBOX_USER = "sbx_user1051"
SANDBOX_GROUP = "sbx_user1051"

#: the address of the in-sandbox APIs and of ``sandbox.localdomain`` (on lo)
SANDBOX_ADDR = "169.254.100.1"
RUNTIME_API_PORT = 9001

#: where the agent's interpreter (the host's Python prefix) and script are mounted
RAPID_DIR = "/var/rapid"
AGENT_PYTHON_PREFIX = RAPID_DIR + "/python"
AGENT_DIR = RAPID_DIR + "/agent"
#: the compiled agent (agent.c), when the host could build it
AGENT_BINARY = AGENT_DIR + "/agent"
AGENT_SCRIPT = AGENT_DIR + "/agent.py"

TOP_SYMLINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
MOUNT_POINTS = (
    "usr",
    "proc",
    "dev",
    "sys",
    "tmp",
    "opt",
    "etc",
    "var/task",
    "var/runtime",
    "var/lang",
    "var/rapid",
    "var/rapid/python",
    "var/rapid/agent",
    "var/tmp",
    "run",
)
#: host files copied into /etc when they exist (CA bundles, the loader cache)
HOST_ETC_COPIES = (
    "ld.so.cache",
    "ssl/certs/ca-certificates.crt",
    "ssl/openssl.cnf",
    "mime.types",
    "protocols",
    "services",
)


@dataclass(frozen=True)
class NetworkNames:
    """What the names in /etc/hosts and resolv.conf point to."""

    #: address of the host's loopback as seen inside, or None without host access
    host_addr: str | None
    #: DNS server inside, or None (then resolv.conf lists none)
    dns: str | None


def etc_files(net: NetworkNames, hostname: str = "sandbox") -> dict[str, str]:
    """The text files of the sandbox's /etc, by path relative to /etc."""
    hosts = [
        "127.0.0.1\tlocalhost localhost.localdomain",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{SANDBOX_ADDR}\t{hostname} {hostname}.localdomain",
    ]
    if hostname != "sandbox":
        hosts[-1] += " sandbox sandbox.localdomain"
    if net.host_addr is not None:
        hosts.append(f"{net.host_addr}\thost.lambdalet.internal")
    resolv = "options timeout:2 attempts:2\n"
    if net.dns is not None:
        resolv = f"nameserver {net.dns}\n" + resolv
    return {
        "passwd": (
            "root:x:0:0:root:/root:/sbin/nologin\n"
            f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/{SANDBOX_USER}:/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        ),
        "group": (f"root:x:0:\n{SANDBOX_GROUP}:x:{SANDBOX_GID}:\nnogroup:x:65534:\n"),
        "hosts": "\n".join(hosts) + "\n",
        "hostname": hostname + "\n",
        "resolv.conf": resolv,
        "nsswitch.conf": (
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\n"
        ),
        "os-release": 'NAME="lambdalet"\nID=lambdalet\nPRETTY_NAME="lambdalet sandbox"\n',
    }


def _digest(files: Mapping[str, str], host_etc: Path) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(sorted(files.items())).encode())
    h.update(json.dumps([TOP_SYMLINKS, MOUNT_POINTS, HOST_ETC_COPIES]).encode())
    for rel in HOST_ETC_COPIES:
        with contextlib.suppress(OSError):
            st = (host_etc / rel).stat()
            h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def ensure_base_rootfs(
    base_dir: Path, net: NetworkNames, hostname: str = "sandbox", host_etc: Path = Path("/etc")
) -> Path:
    """Build (once) and return the shared base rootfs for these settings."""
    files = etc_files(net, hostname)
    root = base_dir / _digest(files, host_etc)
    if root.is_dir():
        return root
    base_dir.mkdir(parents=True, exist_ok=True)
    tmp = base_dir / f".build-{os.getpid()}-{root.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    for name, target in TOP_SYMLINKS.items():
        os.symlink(target, tmp / name)
    for mp in MOUNT_POINTS:
        (tmp / mp).mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").chmod(0o1777)
    (tmp / "var/tmp").chmod(0o1777)
    etc = tmp / "etc"
    for rel, text in files.items():
        (etc / rel).write_text(text)
    for rel in HOST_ETC_COPIES:
        src = host_etc / rel
        if src.is_file():
            (etc / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, etc / rel)
    # The CA bundle under the names other distributions use (Amazon Linux: pki).
    bundle = etc / "ssl/certs/ca-certificates.crt"
    if bundle.is_file():
        (etc / "pki/tls/certs").mkdir(parents=True, exist_ok=True)
        os.symlink("/etc/ssl/certs/ca-certificates.crt", etc / "pki/tls/certs/ca-bundle.crt")
        os.symlink("certs/ca-certificates.crt", etc / "ssl/cert.pem")
    os.symlink("/usr/share/zoneinfo/UTC", etc / "localtime")
    (etc / "timezone").write_text("UTC\n")
    for dirpath, dirnames, filenames in os.walk(tmp):
        for d in dirnames:
            p = Path(dirpath, d)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode & 0o7777 | 0o755)
        for f in filenames:
            p = Path(dirpath, f)
            if not p.is_symlink():
                p.chmod(0o644)
    try:
        tmp.rename(root)
    except OSError:
        # another process built it at the same time
        shutil.rmtree(tmp, ignore_errors=True)
        if not root.is_dir():
            raise
    return root
