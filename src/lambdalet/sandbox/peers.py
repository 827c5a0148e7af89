"""Who owns the other end of a TCP connection made on this host (``sock_diag``).

Sandboxes reach the host's loopback through ``slirp4netns``, which runs as its own
uid (:data:`HOST_ACCESS_UID`, see netns.py).  A connection the server accepts whose
client socket belongs to that uid came from inside a sandbox, whatever address and
port it arrived on.  The kernel tells a socket's owner through a ``sock_diag``
netlink request for that one socket: a hash lookup, a few microseconds.  (pyroute2's
``DiagSocket`` only dumps every socket of the host, milliseconds on a busy machine,
and ``/proc/net/tcp`` is the same dump as text: ~15 ms with 700 sockets.)
"""

from __future__ import annotations

import ipaddress
import socket
import struct

#: the uid slirp4netns runs as: every host connection a sandbox makes belongs to it.
#: Chosen far above the ranges Debian gives users (1000-59999) and system accounts
#: (100-999); nothing else should run as it.
HOST_ACCESS_UID = 64993
#: every uid whose host connections are a sandbox's (the rootless backend adds the
#: subordinate uid its host-access helper runs as, see rootless.py)
_host_access_uids = {HOST_ACCESS_UID}


def add_host_access_uid(uid: int) -> None:
    _host_access_uids.add(uid)


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
TCP_LISTEN = 10
_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid
_REQ_HEAD = struct.Struct("=BBBxI")
_NOCOOKIE = struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)  # idiag_if, idiag_cookie[2]
#: inet_diag_msg: 4 bytes of header, the 48-byte sockid, expires, rqueue, wqueue, uid
_UID_OFFSET = _NLMSGHDR.size + 4 + 48 + 12

Address = tuple[str, int]


def _unmapped(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def diag_request(local: Address, remote: Address, seq: int = 1) -> bytes:
    """The netlink message asking for the TCP socket bound to ``local``, connected to
    ``remote`` (pure)."""
    src, dst = _unmapped(local[0]), _unmapped(remote[0])
    if src.version != dst.version:
        raise ValueError(f"{local} and {remote} are not of one address family")
    family = socket.AF_INET if src.version == 4 else socket.AF_INET6
    body = (
        _REQ_HEAD.pack(family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
        + struct.pack("!HH", local[1], remote[1])
        + src.packed.ljust(16, b"\0")
        + dst.packed.ljust(16, b"\0")
        + _NOCOOKIE
    )
    size = _NLMSGHDR.size + len(body)
    return _NLMSGHDR.pack(size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0) + body


def parse_uid(reply: bytes) -> int | None:
    """The socket owner's uid from the kernel's answer; None when there is no such socket."""
    if len(reply) < _NLMSGHDR.size:
        return None
    _, kind, _, _, _ = _NLMSGHDR.unpack_from(reply)
    if kind != SOCK_DIAG_BY_FAMILY or len(reply) < _UID_OFFSET + 4:
        return None  # NLMSG_ERROR: ENOENT (gone, or not on this host)
    if reply[_NLMSGHDR.size + 1] == TCP_LISTEN:
        return None  # the kernel falls back to a listener on that port: not a client
    uid: int = struct.unpack_from("=I", reply, _UID_OFFSET)[0]
    return uid


def socket_uid(local: Address, remote: Address) -> int | None:
    """The uid owning the TCP socket on this host bound to ``local`` and connected to
    ``remote``, or None (no such socket here, e.g. the client is on another machine)."""
    try:
        request = diag_request(local, remote)
    except ValueError:
        return None
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.sendto(request, (0, 0))
        return parse_uid(nl.recv(8192))


def from_sandbox(peer: Address, local: Address) -> bool:
    """Whether the client of the connection ``peer`` -> ``local`` (as the server sees it)
    is a sandbox's host-access helper.  Raises OSError when the kernel cannot be asked
    (e.g. out of descriptors): the caller must then not assume the answer is no."""
    return socket_uid(peer, local) in _host_access_uids


def usable() -> str | None:
    """None when this host answers socket-owner lookups, else why not."""
    try:
        socket_uid(("127.0.0.1", 1), ("127.0.0.1", 1))
    except OSError as e:
        return f"socket owner lookups (sock_diag) fail here: {e}"
    return None
