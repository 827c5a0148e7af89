"""sock_diag lookups of the owner of a connection's client socket, on real sockets."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from lambdalet.sandbox import peers


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_the_owner_of_a_loopback_client_socket_is_found(family: int, host: str) -> None:
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()[:2]) as client:
            conn, peer = srv.accept()
            with conn:
                local = conn.getsockname()[:2]
                assert peers.socket_uid(peer[:2], local) == os.geteuid()
                # a port no socket of this host uses
                assert peers.socket_uid((peer[0], 1), local) is None
                # the server's own end is not the client's
                assert peers.socket_uid(local, (peer[0], client.getsockname()[1] ^ 1)) is None
                assert peers.from_sandbox(peer[:2], local) is (
                    os.geteuid() == peers.HOST_ACCESS_UID
                )


def test_an_ipv4_client_of_a_dual_stack_server_is_found() -> None:
    with socket.socket(socket.AF_INET6) as srv:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        srv.bind(("::", 0))
        srv.listen()
        with socket.create_connection(("127.0.0.1", srv.getsockname()[1])):
            conn, peer = srv.accept()
            with conn:
                assert peer[0] == "::ffff:127.0.0.1"
                assert peers.socket_uid(peer[:2], conn.getsockname()[:2]) == os.geteuid()


def test_the_request_names_one_socket() -> None:
    msg = peers.diag_request(("127.0.0.1", 40000), ("127.0.0.2", 9000), seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), peers.SOCK_DIAG_BY_FAMILY, 1, 7)
    family, proto = msg[16], msg[17]
    assert (family, proto) == (socket.AF_INET, socket.IPPROTO_TCP)
    sport, dport = struct.unpack_from("!HH", msg, 24)
    assert (sport, dport) == (40000, 9000)
    assert msg[28:32] == bytes([127, 0, 0, 1]) and msg[44:48] == bytes([127, 0, 0, 2])
    with pytest.raises(ValueError):
        peers.diag_request(("127.0.0.1", 1), ("::1", 2))


def test_an_error_reply_means_no_such_socket() -> None:
    error = struct.pack("=IHHII", 36, peers.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -2)
    assert peers.parse_uid(error + bytes(80)) is None
    assert peers.parse_uid(b"") is None
    header = struct.pack("=IHHII", 88, peers.SOCK_DIAG_BY_FAMILY, 0, 1, 0)
    uid = struct.pack("=I", 64993)
    established = header + bytes([socket.AF_INET, 1]) + bytes(62) + uid + bytes(4)
    assert peers.parse_uid(established) == 64993
    listening = header + bytes([socket.AF_INET, peers.TCP_LISTEN]) + bytes(62) + uid + bytes(4)
    assert peers.parse_uid(listening) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="making a socket as another uid needs root")
def test_a_socket_made_as_the_host_access_uid_is_a_sandbox_s() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        os.seteuid(peers.HOST_ACCESS_UID)  # sockets belong to the uid that made them
        try:
            client = socket.socket()
        finally:
            os.seteuid(0)
        with client:
            client.connect(srv.getsockname())
            conn, peer = srv.accept()
            with conn:
                assert peers.socket_uid(peer, conn.getsockname()) == peers.HOST_ACCESS_UID
                assert peers.from_sandbox(peer, conn.getsockname()) is True
