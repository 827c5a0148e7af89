"""HTTP rendering of results and errors: the one place that builds AWS error responses."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from lambdalet.errors import LambdaApiError
from lambdalet.model import InvokeOutput

REQUEST_ID_HEADER = "x-amzn-RequestId"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def empty(status: int) -> web.Response:
    return web.Response(status=status)


def error(err: LambdaApiError) -> web.Response:
    """Status, ``X-Amzn-ErrorType`` and the JSON body that botocore parses."""
    resp = json_response(err.body(), status=err.status)
    resp.headers.update(err.headers())
    return resp


def s3_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    """An error of the S3-style code download (``Code.Location``): S3's XML shape."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def invoke_output(out: InvokeOutput) -> web.Response:
    """A synchronous invocation's answer: 200 and the function's bytes verbatim."""
    resp = web.Response(status=200, body=out.payload)
    resp.headers["Content-Type"] = out.content_type
    resp.headers["X-Amz-Executed-Version"] = out.executed_version
    if out.function_error:
        resp.headers["X-Amz-Function-Error"] = out.function_error
    if out.log_result:
        resp.headers["X-Amz-Log-Result"] = out.log_result
    return resp
