"""Function URLs in ``InvokeMode: RESPONSE_STREAM``: the HTTP answer written as the
function streams it (chunked), as Lambda's URL front end does.

* A stream of :data:`~lambdalet.api.function_urls.PRELUDE_CONTENT_TYPE` (Node's
  ``awslambda.HttpResponseStream.from``) gives status, headers and cookies in its prelude;
  the bytes after the 8 NULs are the body.  Any other stream is the body of a 200 with the
  function's content type.  A function that answered in one piece (not streaming) is
  answered the same way: its bytes verbatim, ``statusCode`` not read.
* Nothing is sent before the first body byte (or the prelude's end), so a function error
  or a malformed prelude before it is still a 502.  An error after the first byte ends
  the response without its last chunk: the client sees a cut-off body.
* A client that leaves early does not stop the function (:meth:`StreamedInvocation.abandon`).
"""

from __future__ import annotations

import logging

from aiohttp import web

from lambdalet.api import function_urls as urls
from lambdalet.api.render import REQUEST_ID_HEADER
from lambdalet.control.streaming import StreamedInvocation
from lambdalet.errors import LambdaApiError

log = logging.getLogger(__name__)

BAD_GATEWAY = urls.HttpAnswer(502, [("Content-Type", "text/plain")], b"Internal Server Error")


class _Cut(Exception):
    """The function failed after the answer began."""


async def _failure(streamed: StreamedInvocation) -> tuple[str | None, bytes, str]:
    """How the invoke ended: (error or None, buffered payload, its content type)."""
    try:
        out = await streamed.result
    except LambdaApiError as e:
        return e.message, b"", ""
    return out.function_error, out.payload, out.content_type


async def answer(
    request: web.Request,
    streamed: StreamedInvocation,
    cors: list[tuple[str, str]],
    request_id: str,
    url_id: str,
) -> web.StreamResponse | urls.HttpAnswer:
    """The streamed response, or (when nothing was sent yet) the answer to render."""
    try:
        return await _answer(request, streamed, cors, request_id, url_id)
    finally:
        streamed.abandon()


async def _answer(
    request: web.Request,
    streamed: StreamedInvocation,
    cors: list[tuple[str, str]],
    request_id: str,
    url_id: str,
) -> web.StreamResponse | urls.HttpAnswer:
    if streamed.buffered:
        error, payload, content_type = await _failure(streamed)
        if error:
            log.warning("function URL %s: %s", url_id, error)
            return urls.with_cors(BAD_GATEWAY, cors)
        head = urls.stream_head(content_type)
        return urls.with_cors(urls.HttpAnswer(head.status, head.headers, payload), cors)
    prelude = urls.PreludeReader() if streamed.content_type == urls.PRELUDE_CONTENT_TYPE else None
    resp: web.StreamResponse | None = None
    try:
        async for chunk in streamed.chunks:
            if resp is None:
                if prelude is None:
                    head = urls.stream_head(streamed.content_type)
                else:
                    got = prelude.feed(chunk)
                    if got is None:
                        continue
                    head, chunk = got
                resp = await _begin(request, urls.with_cors(head, cors), request_id)
            if chunk:
                await resp.write(chunk)
        error, _, _ = await _failure(streamed)
        if resp is None:
            if error:
                log.warning("function URL %s: %s", url_id, error)
                return urls.with_cors(BAD_GATEWAY, cors)
            head = prelude.finish() if prelude else urls.stream_head(streamed.content_type)
            return urls.with_cors(head, cors)
        if error:
            raise _Cut(error)
        await resp.write_eof()
        return resp
    except urls.MalformedResponse as e:
        log.warning("function URL %s: malformed streamed response: %s", url_id, e)
        return urls.with_cors(BAD_GATEWAY, cors)
    except _Cut as e:
        # the answer ends where the function failed, without its last chunk, so that the
        # client can tell (what Lambda sends on the wire is not documented)
        log.warning("function URL %s: the function failed mid-stream (%s)", url_id, e)
        if request.transport is not None:
            request.transport.close()
        assert resp is not None
        return resp
    except ConnectionError:
        # the client left; the function runs on to its end, as on Lambda
        log.debug("function URL %s: the client went away", url_id)
        return resp if resp is not None else urls.with_cors(BAD_GATEWAY, cors)


async def _begin(
    request: web.Request, head: urls.HttpAnswer, request_id: str
) -> web.StreamResponse:
    resp = web.StreamResponse(status=head.status)
    for name, value in head.headers:
        if name.lower() == "content-type":
            resp.headers["Content-Type"] = value
        else:
            resp.headers.add(name, value)
    # the headers go out with the first byte, before the middleware sees the response
    resp.headers[REQUEST_ID_HEADER] = request_id
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp
