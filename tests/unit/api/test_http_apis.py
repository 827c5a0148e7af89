"""Template HTTP APIs: routing, the payload-1.0 and 2.0 events, answers."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lambdalet.api import function_urls as urls
from lambdalet.api import http_apis

REST = http_apis.api_from_json(
    "shop",
    {
        "Id": "ServerlessRestApi",
        "Kind": "Api",
        "StageVariables": {"env": "dev"},
        "BinaryMediaTypes": ["image~1png"],
        "Routes": [
            {"Path": "/{proxy+}", "Method": "ANY", "FunctionName": "any"},
            {"Path": "/items/{id}", "Method": "get", "FunctionName": "item"},
            {"Path": "/items/special", "Method": "GET", "FunctionName": "special"},
            {"Path": "/items", "Method": "POST", "FunctionName": "create", "Qualifier": "live"},
        ],
    },
)
HTTP = http_apis.api_from_json(
    "shop",
    {
        "Id": "Api2",
        "Kind": "HttpApi",
        "Routes": [
            {"Path": "/users/{user}/posts/{post}", "Method": "GET", "FunctionName": "post"},
            {"Path": "$default", "Method": "ANY", "FunctionName": "fallback"},
        ],
    },
)


def hit(api: http_apis.HttpApi, method: str, path: str) -> tuple[str, dict[str, str]] | str | None:
    m = http_apis.match(api, method, path)
    if isinstance(m, http_apis.Match):
        return m.route.function_name, m.path_parameters
    return m


def test_routing() -> None:
    assert (
        REST.stage == "Prod" and REST.base_path == "/lambdalet/stacks/shop/ServerlessRestApi/Prod"
    )
    assert HTTP.base_path == "/lambdalet/stacks/shop/Api2"
    assert hit(REST, "GET", "/items/special") == ("special", {})
    assert hit(REST, "GET", "/items/7") == ("item", {"id": "7"})
    assert hit(REST, "GET", "/items/7/") == ("item", {"id": "7"})
    assert hit(REST, "POST", "/items") == ("create", {})
    assert hit(REST, "DELETE", "/a/b/c") == ("any", {"proxy": "a/b/c"})
    assert hit(HTTP, "GET", "/users/u1/posts/p2") == ("post", {"user": "u1", "post": "p2"})
    assert hit(HTTP, "DELETE", "/users/u1/posts/p2") == ("fallback", {})
    assert hit(HTTP, "GET", "/nothing") == ("fallback", {})
    only = http_apis.api_from_json(
        "s",
        {
            "Id": "A",
            "Kind": "Api",
            "Routes": [{"Path": "/x", "Method": "GET", "FunctionName": "f"}],
        },
    )
    assert hit(only, "POST", "/x") == "method"
    assert hit(only, "GET", "/y") is None


def req(**kw: Any) -> urls.HttpRequestData:
    return urls.HttpRequestData(
        method=kw.get("method", "GET"),
        path=kw.get("path", "/items/7"),
        raw_query=kw.get("query", "a=1&a=2"),
        headers=kw.get(
            "headers", [("Host", "h"), ("User-Agent", "ua"), ("X-Multi", "1"), ("X-Multi", "2")]
        ),
        body=kw.get("body", b""),
        source_ip="127.0.0.1",
        epoch_s=1_700_000_000.5,
    )


def test_rest_event() -> None:
    m = http_apis.match(REST, "GET", "/items/7")
    assert isinstance(m, http_apis.Match)
    e = http_apis.rest_event(
        REST,
        m,
        req(),
        request_id="rid",
        account_id="123456789012",
        domain="localhost",
        server_port=9000,
    )
    assert "version" not in e
    assert (e["resource"], e["path"], e["httpMethod"]) == ("/items/{id}", "/items/7", "GET")
    assert e["headers"]["X-Multi"] == "2" and e["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert e["headers"]["X-Forwarded-Port"] == "9000"
    assert e["queryStringParameters"] == {"a": "2"}
    assert e["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert e["pathParameters"] == {"id": "7"} and e["stageVariables"] == {"env": "dev"}
    ctx = e["requestContext"]
    assert (ctx["stage"], ctx["path"], ctx["resourcePath"]) == (
        "Prod",
        "/Prod/items/7",
        "/items/{id}",
    )
    assert ctx["identity"]["sourceIp"] == "127.0.0.1" and ctx["identity"]["userAgent"] == "ua"
    assert ctx["requestTimeEpoch"] == 1_700_000_000_500
    assert (e["body"], e["isBase64Encoded"]) == (None, False)
    # binary only for the API's BinaryMediaTypes
    png = http_apis.rest_event(
        REST,
        m,
        req(headers=[("Content-Type", "image/png")], body=b"\x89PNG", query=""),
        request_id="r",
        account_id="1",
        domain="d",
        server_port=1,
    )
    assert png["isBase64Encoded"] and base64.b64decode(png["body"]) == b"\x89PNG"
    assert png["queryStringParameters"] is None
    text = http_apis.rest_event(
        REST,
        m,
        req(headers=[("Content-Type", "application/octet-stream")], body=b"abc"),
        request_id="r",
        account_id="1",
        domain="d",
        server_port=1,
    )
    assert (text["body"], text["isBase64Encoded"]) == ("abc", False)


def test_http_event() -> None:
    m = http_apis.match(HTTP, "GET", "/users/u1/posts/p2")
    assert isinstance(m, http_apis.Match)
    e = http_apis.http_event(
        HTTP,
        m,
        req(path="/users/u1/posts/p2"),
        request_id="rid",
        trace_id="t",
        account_id="123456789012",
        domain="localhost",
        server_port=9000,
    )
    assert e["version"] == "2.0" and e["routeKey"] == "GET /users/{user}/posts/{post}"
    assert e["requestContext"]["routeKey"] == e["routeKey"]
    assert e["pathParameters"] == {"user": "u1", "post": "p2"}
    assert e["rawPath"] == "/users/u1/posts/p2" and e["headers"]["x-multi"] == "1,2"


def test_v1_answers() -> None:
    a = http_apis.v1_answer(
        b'{"statusCode": 201, "headers": {"A": "1"}, '
        b'"multiValueHeaders": {"B": ["1", "2"]}, "body": "x"}',
        rest=True,
    )
    assert a.status == 201 and a.body == b"x"
    assert ("B", "1") in a.headers and ("B", "2") in a.headers and ("A", "1") in a.headers
    for bad in (b'"hello"', b'{"body": "no status"}', b'{"statusCode": 200, "extra": 1}', b"nope"):
        with pytest.raises(urls.MalformedResponse):
            http_apis.v1_answer(bad, rest=True)
    # HTTP APIs with 1.0 do not refuse extra keys
    assert http_apis.v1_answer(b'{"statusCode": 200, "extra": 1}', rest=False).status == 200
