"""TrailerScanner: the trailers of chunked request bodies, from raw connection bytes."""

from __future__ import annotations

import pytest

from lambdalet.env.http_trailers import TrailerScanner

STREAMED = (
    b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n"
    b"Host: x\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
    b"5\r\nhello\r\n"
    b"10;ext=1\r\n0123456789abcdef\r\n"
    b"0\r\n"
    b"Lambda-Runtime-Function-Error-Type: Error\r\n"
    b"Lambda-Runtime-Function-Error-Body: eyJ4IjoxfQ==\r\n\r\n"
)
NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
POSTED = b'POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{"a": 1234}'

WANTED = {
    "lambda-runtime-function-error-type": "Error",
    "lambda-runtime-function-error-body": "eyJ4IjoxfQ==",
}


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_trailers_are_read_whatever_the_packet_boundaries(step: int) -> None:
    data = NEXT + POSTED + STREAMED
    scanner = TrailerScanner()
    for i in range(0, len(data), step):
        scanner.feed(data[i : i + step])
    assert not scanner.broken
    assert scanner.completed == 3
    assert scanner.last_trailers == WANTED
    scanner.feed(NEXT)
    assert scanner.completed == 4
    assert scanner.last_trailers == {}  # the GET has none


def test_a_chunked_body_without_trailers_has_none() -> None:
    scanner = TrailerScanner()
    scanner.feed(STREAMED.split(b"0\r\nLambda")[0] + b"0\r\n\r\n")
    assert scanner.completed == 1 and scanner.last_trailers == {}


def test_large_bodies_are_counted_not_kept() -> None:
    scanner = TrailerScanner()
    body = b"x" * 1_000_000
    scanner.feed(b"POST /r HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body))
    scanner.feed(body[:500_000])
    scanner.feed(body[500_000:])
    assert scanner.completed == 1
    assert len(scanner._buf) == 0


def test_garbage_chunk_size_stops_the_scanner() -> None:
    scanner = TrailerScanner()
    scanner.feed(b"POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert scanner.broken
    scanner.feed(STREAMED)
    assert scanner.completed == 0
