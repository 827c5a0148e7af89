"""The agent link's decoder (agent -> host); the encoder is tested with the real agents
in test_agent_protocol.py."""

from __future__ import annotations

import pytest

from lambdalet.sandbox.runc.link import Reply, ReplyKind, decode


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"R", Reply(ReplyKind.READY, ())),
        (b"S 3 1234", Reply(ReplyKind.SPAWNED, (3, 1234))),
        (b"E 4 2", Reply(ReplyKind.EXEC_ERROR, (4, 2))),
        (b"K 5", Reply(ReplyKind.KILLED_ALL, (5,))),
        (b"X 1234 -1 9", Reply(ReplyKind.EXITED, (1234, -1, 9))),
    ],
)
def test_decode(data: bytes, reply: Reply) -> None:
    assert decode(data) == reply


@pytest.mark.parametrize("data", [b"", b"Q 1", b"S x", b"\xff", b"S 1.5"])
def test_garbage_is_ignored(data: bytes) -> None:
    assert decode(data) is None
