"""Run inside a rootless sandbox's user and network namespaces: hands the server sockets.

A thread of a multi-threaded process cannot enter a user namespace (``setns`` refuses),
so the server cannot make a socket inside a rootless sandbox's network namespace
itself.  This small process, started through ``nsenter --user --net`` (as uid 0 of the
sandbox's user namespace: the server's own user outside), makes them and passes them
back over the SOCK_SEQPACKET socket whose descriptor is its one argument:

1. first the Runtime API's listening socket, bound to ``ADDR:PORT`` (argv 2 and 3);
2. then, for every byte ``4`` or ``6`` received, a new TCP socket of that family
   (``Sandbox.socket_inside``), until the server closes its end.

Run with ``python -I -S``: standard library only, nothing imported from lambdalet.
"""

from __future__ import annotations

import array
import socket
import sys


def _send(ctl: socket.socket, sock: socket.socket) -> None:
    ctl.sendmsg([b"s"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))])
    sock.close()


def main(argv: list[str]) -> int:
    ctl = socket.socket(fileno=int(argv[1]))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((argv[2], int(argv[3])))
    listener.listen(128)
    _send(ctl, listener)
    while True:
        want = ctl.recv(1)
        if not want:
            return 0
        family = socket.AF_INET6 if want == b"6" else socket.AF_INET
        _send(ctl, socket.socket(family, socket.SOCK_STREAM))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
