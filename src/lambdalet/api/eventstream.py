"""The ``application/vnd.amazon.eventstream`` framing of InvokeWithResponseStream (pure).

Each message (all integers big-endian)::

    total length (4) | headers length (4) | prelude CRC-32 (4) | headers | payload | CRC-32 (4)

The prelude CRC covers the first 8 bytes, the message CRC every byte before it (zlib's
CRC-32).  Headers are ``[name length (1)][name][type (1)][value]``; Lambda's events use
only string values (type 7, 2-byte length).  botocore ships a decoder
(``botocore.eventstream``) but no encoder, and ``awscrt``'s event-stream module is a
client/RPC stack rather than a frame encoder; the format is small enough to write here
and the unit tests check every frame against botocore's decoder.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping

#: header value type of a UTF-8 string with a 2-byte length
_STRING = 7
#: botocore refuses payloads over 24 MiB; lambdalet splits chunks far below that
MAX_CHUNK_BYTES = 64 * 1024


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    if len(raw_name) > 255 or len(raw_value) > 0xFFFF:
        raise ValueError(f"event-stream header {name!r} too long")
    return (
        bytes([len(raw_name)])
        + raw_name
        + bytes([_STRING])
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One framed message."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _event(event_type: str, content_type: str, payload: bytes) -> bytes:
    return message(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"},
        payload,
    )


def payload_chunks(data: bytes) -> list[bytes]:
    """``PayloadChunk`` events carrying ``data`` (none for empty data), split at 64 KiB."""
    return [
        _event("PayloadChunk", "application/octet-stream", data[i : i + MAX_CHUNK_BYTES])
        for i in range(0, len(data), MAX_CHUNK_BYTES)
    ]


def invoke_complete(
    error_code: str | None = None, error_details: str | None = None, log_result: str | None = None
) -> bytes:
    """The closing ``InvokeComplete`` event; absent members are left out."""
    doc: dict[str, str] = {}
    if error_code is not None:
        doc["ErrorCode"] = error_code
    if error_details is not None:
        doc["ErrorDetails"] = error_details
    if log_result is not None:
        doc["LogResult"] = log_result
    return _event("InvokeComplete", "application/json", json.dumps(doc).encode())
