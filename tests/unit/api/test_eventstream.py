"""The event-stream encoder, read back with botocore's own decoder and parser."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer

from lambdalet.api import eventstream as es


def _decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return [(dict(m.headers), m.payload) for m in buf]


def test_payload_chunk_and_invoke_complete_decode_with_botocore() -> None:
    frames = [*es.payload_chunks(b"hello"), es.invoke_complete(log_result="dGFpbA==")]
    decoded = _decode(b"".join(frames))
    assert decoded == [
        (
            {
                ":event-type": "PayloadChunk",
                ":content-type": "application/octet-stream",
                ":message-type": "event",
            },
            b"hello",
        ),
        (
            {
                ":event-type": "InvokeComplete",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            b'{"LogResult": "dGFpbA=="}',
        ),
    ]


def test_large_payload_is_split_and_empty_payload_sends_nothing() -> None:
    data = bytes(range(256)) * 1000  # 256,000 bytes
    frames = es.payload_chunks(data)
    assert len(frames) == 4
    assert b"".join(p for _, p in _decode(b"".join(frames))) == data
    assert es.payload_chunks(b"") == []


def test_a_flipped_byte_fails_botocores_checksum() -> None:
    frame = bytearray(es.payload_chunks(b"abc")[0])
    frame[-6] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        _decode(bytes(frame))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self) -> list[bytes]:
        return [self._data[i : i + 7] for i in range(0, len(self._data), 7)]

    def close(self) -> None:
        pass


def test_botocore_parses_the_events_into_the_lambda_model() -> None:
    """What boto3's invoke_with_response_stream yields, from frames fed 7 bytes at a time."""
    session = botocore.session.get_session()
    model = session.get_service_model("lambda")
    op = model.operation_model("InvokeWithResponseStream")
    stream_shape = op.output_shape.members["EventStream"]
    from botocore.parsers import EventStreamJSONParser

    data = b"".join(
        es.payload_chunks(b"part-1")
        + es.payload_chunks(b"part-2")
        + [es.invoke_complete("Function.Boom", json.dumps({"errorMessage": "x"}))]
    )
    events = list(
        EventStream(_Raw(data), stream_shape, EventStreamJSONParser(), "InvokeWithResponseStream")
    )
    assert events == [
        {"PayloadChunk": {"Payload": b"part-1"}},
        {"PayloadChunk": {"Payload": b"part-2"}},
        {
            "InvokeComplete": {
                "ErrorCode": "Function.Boom",
                "ErrorDetails": '{"errorMessage": "x"}',
            }
        },
    ]
