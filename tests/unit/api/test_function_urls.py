"""The payload-2.0 event of a URL request, the mapping of answers to HTTP, CORS."""

from __future__ import annotations

import base64
import json

import pytest

from lambdalet.api import function_urls as urls
from lambdalet.errors import InvalidRequestContentException, ValidationException

ID = "a" * 32


def event(**kw: object) -> dict[str, object]:
    req = urls.HttpRequestData(
        method=str(kw.get("method", "POST")),
        path=str(kw.get("path", "/my/path")),
        raw_query=str(kw.get("query", "")),
        headers=kw.get("headers", [("Host", "h"), ("User-Agent", "ua")]),  # type: ignore[arg-type]
        body=kw.get("body", b""),  # type: ignore[arg-type]
        source_ip="127.0.0.1",
        epoch_s=1_583_348_638.39,
    )
    return urls.url_event(
        req,
        url_id=ID,
        domain=f"{ID}.lambda-url.us-east-1.localhost",
        request_id="rid",
        trace_id="Root=1-x",
        account_id="anonymous",
        authorizer=None,
        server_port=9000,
    )


def test_event_fields() -> None:
    e = event(
        query="a=1&a=2&b=",
        headers=[
            ("Host", "h"),
            ("User-Agent", "ua"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("Cookie", "c1=v1; c2=v2"),
            ("Content-Type", "application/json"),
        ],
        body=b'{"x": 1}',
    )
    assert e["version"] == "2.0" and e["routeKey"] == "$default"
    assert (e["rawPath"], e["rawQueryString"]) == ("/my/path", "a=1&a=2&b=")
    assert e["cookies"] == ["c1=v1", "c2=v2"]
    headers = e["headers"]
    assert isinstance(headers, dict)
    assert headers["x-multi"] == "1,2" and "cookie" not in headers
    assert headers["x-forwarded-port"] == "9000" and headers["x-amzn-trace-id"] == "Root=1-x"
    assert e["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert (e["body"], e["isBase64Encoded"]) == ('{"x": 1}', False)
    ctx = e["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["http"] == {
        "method": "POST",
        "path": "/my/path",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "ua",
    }
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000" and ctx["timeEpoch"] == 1583348638390
    assert (ctx["accountId"], ctx["apiId"], ctx["domainPrefix"]) == ("anonymous", ID, ID)
    assert (ctx["stage"], ctx["requestId"]) == ("$default", "rid")
    assert "authorizer" not in ctx


def test_absent_keys_when_empty() -> None:
    e = event(method="GET")
    for key in ("cookies", "queryStringParameters", "body"):
        assert key not in e
    assert e["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/plain; charset=utf-8", True),
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("application/x-www-form-urlencoded", False),
        ("image/png", False),
        (None, False),
    ],
)
def test_body_encoding(content_type: str | None, text: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    e = event(headers=headers, body=b"a=1")
    assert e["isBase64Encoded"] is (not text)
    assert e["body"] == ("a=1" if text else base64.b64encode(b"a=1").decode())


def test_structured_answer() -> None:
    a = urls.http_answer(
        json.dumps(
            {
                "statusCode": 201,
                "headers": {"X-A": "1", "content-type": "text/html"},
                "cookies": ["a=1", "b=2; Secure"],
                "body": base64.b64encode(b"\x00\x01").decode(),
                "isBase64Encoded": True,
            }
        ).encode()
    )
    assert a.status == 201 and a.body == b"\x00\x01"
    assert ("Set-Cookie", "a=1") in a.headers and ("Set-Cookie", "b=2; Secure") in a.headers
    assert ("content-type", "text/html") in a.headers
    assert not any(k == "Content-Type" for k, _ in a.headers)


@pytest.mark.parametrize(
    "payload", [b'{"message": "hi"}', b'"Hello, world!"', b"[1,2]", b"42", b"not json"]
)
def test_inferred_answer(payload: bytes) -> None:
    a = urls.http_answer(payload)
    assert (a.status, a.body) == (200, payload)
    assert a.headers == [("Content-Type", "application/json")]


def test_structured_defaults_and_object_body() -> None:
    a = urls.http_answer(b'{"statusCode": 204}')
    assert (a.status, a.body) == (204, b"")
    assert a.headers == [("Content-Type", "application/json")]
    b = urls.http_answer(b'{"statusCode": 200, "body": {"k": 1}}')
    assert b.body == b'{"k":1}'


@pytest.mark.parametrize(
    "payload",
    [b'{"statusCode": "200"}', b'{"statusCode": 99}', b'{"statusCode": 200, "headers": 1}'],
)
def test_malformed_answer(payload: bytes) -> None:
    with pytest.raises(urls.MalformedResponse):
        urls.http_answer(payload)


CORS = {
    "AllowOrigins": ["https://a.example"],
    "AllowMethods": ["GET", "POST"],
    "AllowHeaders": ["x-custom"],
    "ExposeHeaders": ["x-out"],
    "AllowCredentials": True,
    "MaxAge": 300,
}


def test_preflight_answered_without_invoke() -> None:
    a = urls.preflight(
        CORS,
        "OPTIONS",
        {"origin": "https://a.example", "access-control-request-method": "POST"},
    )
    assert a is not None and a.status == 200
    h = dict(a.headers)
    assert h["Access-Control-Allow-Origin"] == "https://a.example"
    assert h["Access-Control-Allow-Methods"] == "GET,POST"
    assert h["Access-Control-Allow-Headers"] == "x-custom"
    assert h["Access-Control-Max-Age"] == "300"
    assert h["Access-Control-Allow-Credentials"] == "true"
    # another origin gets no CORS headers; a plain OPTIONS is the function's
    other = urls.preflight(
        CORS, "OPTIONS", {"origin": "https://b.example", "access-control-request-method": "GET"}
    )
    assert other is not None and other.headers == []
    assert urls.preflight(CORS, "OPTIONS", {}) is None
    assert (
        urls.preflight(None, "OPTIONS", {"origin": "x", "access-control-request-method": "GET"})
        is None
    )


def test_configured_cors_headers_win() -> None:
    answer = urls.HttpAnswer(200, [("access-control-allow-origin", "*"), ("X-A", "1")])
    out = urls.with_cors(answer, urls.cors_headers(CORS, "https://a.example"))
    assert ("X-A", "1") in out.headers
    assert [v for k, v in out.headers if k.lower() == "access-control-allow-origin"] == [
        "https://a.example"
    ]
    assert ("Access-Control-Expose-Headers", "x-out") in out.headers
    assert urls.cors_headers({"AllowOrigins": ["*"]}, "https://z")[0] == (
        "Access-Control-Allow-Origin",
        "*",
    )


def test_settings_validation() -> None:
    s = urls.url_settings({"AuthType": "NONE", "Cors": CORS}, create=True)
    assert (s.auth_type, s.invoke_mode, s.cors) == ("NONE", None, CORS)
    with pytest.raises(ValidationException):
        urls.url_settings({}, create=True)
    with pytest.raises(ValidationException):
        urls.url_settings({"AuthType": "OPEN"}, create=True)
    with pytest.raises(ValidationException):
        urls.url_settings({"InvokeMode": "FAST"}, create=False)
    with pytest.raises(ValidationException):
        urls.url_settings({"Cors": {"AllowMethods": ["DELETEX"]}}, create=False)
    with pytest.raises(ValidationException):
        urls.url_settings({"Cors": {"MaxAge": 86401}}, create=False)
    with pytest.raises(InvalidRequestContentException):
        urls.url_settings({"Cors": {"Origins": []}}, create=False)
    assert urls.url_qualifier(None) == "" and urls.url_qualifier("$LATEST") == ""
    assert urls.url_qualifier("live") == "live"
    with pytest.raises(ValidationException):
        urls.url_qualifier("3")


def test_host_routing() -> None:
    assert urls.url_id_of_host(f"{ID}.lambda-url.us-east-1.localhost") == ID
    assert urls.url_id_of_host("127.0.0.1") is None
    assert urls.iso_time(1686230418.244654) == "2023-06-08T13:20:18.244654Z"


# ---------------------------------------------------------------- streamed answers

PRELUDE = json.dumps(
    {"statusCode": 201, "headers": {"X-A": "b", "Content-Length": "9"}, "cookies": ["c=1", "d=2"]}
).encode()


def test_prelude_split_across_chunks() -> None:
    reader = urls.PreludeReader()
    data = PRELUDE + b"\0" * 8 + b"hello"
    # the prelude, the delimiter and the body may be cut anywhere
    assert reader.feed(data[:5]) is None
    assert reader.feed(data[5 : len(PRELUDE) + 3]) is None
    got = reader.feed(data[len(PRELUDE) + 3 : -2])
    assert got is not None
    head, rest = got
    assert head.status == 201
    assert head.headers == [
        ("X-A", "b"),  # Content-Length belongs to the connection, not to the function
        ("Set-Cookie", "c=1"),
        ("Set-Cookie", "d=2"),
        ("Content-Type", "application/octet-stream"),
    ]
    assert rest == b"hel"


def test_prelude_defaults_and_body_nuls_kept() -> None:
    got = urls.PreludeReader().feed(
        b'{"headers":{"content-type":"text/html"}}' + b"\0" * 8 + b"\0" * 9 + b"x"
    )
    assert got is not None
    head, rest = got
    assert (head.status, head.headers) == (200, [("content-type", "text/html")])
    assert rest == b"\0" * 9 + b"x"


def test_a_stream_that_never_wrote_is_a_plain_200() -> None:
    reader = urls.PreludeReader()
    assert reader.finish().status == 200
    assert reader.finish().headers == [("Content-Type", "application/octet-stream")]


@pytest.mark.parametrize(
    "data",
    [
        b"not json" + b"\0" * 8,
        b"[1]" + b"\0" * 8,
        b'{"statusCode": "200"}' + b"\0" * 8,
        b'{"statusCode": 99}' + b"\0" * 8,
        b'{"headers": ["a"]}' + b"\0" * 8,
        b'{"cookies": "c=1"}' + b"\0" * 8,
        b"{" + b" " * urls.MAX_PRELUDE_BYTES + b"}" + b"\0" * 8,
    ],
)
def test_malformed_prelude(data: bytes) -> None:
    with pytest.raises(urls.MalformedResponse):
        urls.PreludeReader().feed(data)


def test_prelude_without_end() -> None:
    reader = urls.PreludeReader()
    assert reader.feed(b'{"statusCode": 200}') is None
    with pytest.raises(urls.MalformedResponse):
        reader.finish()
    with pytest.raises(urls.MalformedResponse):
        reader.feed(b" " * urls.MAX_PRELUDE_BYTES)


def test_stream_without_prelude() -> None:
    assert urls.stream_head("text/plain") == urls.HttpAnswer(200, [("Content-Type", "text/plain")])
    assert urls.stream_head(None).headers == [("Content-Type", "application/octet-stream")]
