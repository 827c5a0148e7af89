"""HTTP rendering of results and errors: the one place that builds AWS error responses."""

from __future__ import annotations

import json
import logging
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from lambdalet.api import eventstream
from lambdalet.control.streaming import StreamedInvocation
from lambdalet.errors import LambdaApiError
from lambdalet.model import InvokeOutput

log = logging.getLogger(__name__)

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


def stream_error(out: InvokeOutput) -> tuple[str | None, str | None]:
    """``InvokeComplete``'s ErrorCode and ErrorDetails for a finished invoke (None, None: ok).

    ErrorCode is the error document's ``errorType`` (``Sandbox.Timedout``, the runtime's
    error type ...), ErrorDetails the error document as the function or platform wrote it.
    """
    if not out.function_error:
        return None, None
    details = out.payload.decode("utf-8", errors="replace")
    try:
        doc = json.loads(out.payload)
    except ValueError:
        doc = None
    code = doc.get("errorType") if isinstance(doc, dict) else None
    return (code if isinstance(code, str) and code else out.function_error), details


async def invoke_stream(
    request: web.Request, streamed: StreamedInvocation, executed_version: str, request_id: str
) -> web.StreamResponse:
    """InvokeWithResponseStream's answer: an event stream of ``PayloadChunk``s written as
    the function produces them, then one ``InvokeComplete``.

    The HTTP Content-Type is the function's stream content type (botocore reports it as
    ``ResponseStreamContentType``).  A buffered function's answer is one chunk.
    """
    done = streamed.result.done()
    content_type = streamed.content_type or (
        streamed.result.result().content_type if done else "application/octet-stream"
    )
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = content_type
    resp.headers["X-Amz-Executed-Version"] = executed_version
    # sent before the middleware sees the response: the headers go out with the first byte
    resp.headers[REQUEST_ID_HEADER] = request_id
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for chunk in streamed.chunks:
            for frame in eventstream.payload_chunks(chunk):
                await resp.write(frame)
        try:
            out = await streamed.result
        except Exception:
            log.exception("streamed invoke failed")
            await resp.write(eventstream.invoke_complete("ServiceException", "Internal error"))
            await resp.write_eof()
            return resp
        code, details = stream_error(out)
        if streamed.buffered and code is None:
            for frame in eventstream.payload_chunks(out.payload):
                await resp.write(frame)
        await resp.write(eventstream.invoke_complete(code, details, out.log_result))
        await resp.write_eof()
    except ConnectionError:
        # the caller left; the function runs on to its end, as on Lambda
        log.debug("InvokeWithResponseStream caller went away")
    finally:
        streamed.abandon()
    return resp
