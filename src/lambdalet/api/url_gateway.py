"""Function URLs, the HTTP half: finds the URL a request is for (by the path prefix
``/lambda-url/<url-id>/`` or by a ``<url-id>.lambda-url.<region>.<anything>`` Host),
authorizes it, invokes the function synchronously and answers as Lambda's URL front end
does.  It runs as the outermost middleware of the API app, so URL requests never reach the
Lambda API's routes or its SigV4 check of API calls.

A URL in ``InvokeMode: RESPONSE_STREAM`` invokes as ``InvokeWithResponseStream`` does and
answers as the function streams (``api/url_stream.py``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from lambdalet.api import function_urls as urls
from lambdalet.api import policies, url_stream
from lambdalet.api.arns import Scope, function_arn
from lambdalet.api.auth import SigV4Verifier
from lambdalet.api.render import REQUEST_ID_HEADER
from lambdalet.api.validation import MAX_SYNC_PAYLOAD
from lambdalet.clock import Clock
from lambdalet.control.streaming import invoke_streaming
from lambdalet.errors import LambdaApiError, TooManyRequestsException
from lambdalet.model import InvokeInput, InvokeOutput, Invoker
from lambdalet.store import Store
from lambdalet.store.records import pick_version
from lambdalet.store.triggers import UrlConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PATH_RE = re.compile(r"/lambda-url/(?P<id>[^/]+)(?P<rest>/.*)?")
_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/\s]+)/\d{8}/[^/\s]+/(?P<service>[^/\s]+)/"
    r"aws4_request,"
)
MISSING_PERMISSION = (
    "lambdalet: this function URL has AuthType NONE, and the function's resource policy "
    "does not allow lambda:InvokeFunctionUrl to principal * with FunctionUrlAuthType NONE. "
    "Add it: aws lambda add-permission --function-name {fn} --statement-id "
    "FunctionURLAllowPublicAccess --action lambda:InvokeFunctionUrl --principal '*' "
    "--function-url-auth-type NONE{qualifier}"
)


def _json_answer(status: int, body: object, **headers: str) -> web.Response:
    resp = web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
    )
    resp.headers.update(headers)
    return resp


def _text_answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


_THROTTLED = urls.HttpAnswer(
    429, [("Content-Type", "application/json")], b'{"Message":"Rate Exceeded."}'
)


def trace_id(epoch_s: float) -> str:
    return f"Root=1-{int(epoch_s):08x}-{secrets.token_hex(12)}"


class UrlGateway:
    """Serves every function URL of one store."""

    def __init__(
        self,
        scope: Scope,
        store: Store,
        invoker: Invoker,
        clock: Clock,
        verifier: SigV4Verifier | None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.scope = scope
        self.store = store
        self.invoker = invoker
        self.clock = clock
        self.verifier = verifier
        self.draw = draw

    def __repr__(self) -> str:
        return f"UrlGateway(region={self.scope.region!r})"

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def function_urls(request: web.Request, handler: Handler) -> web.StreamResponse:
            found = self.match(request)
            if found is None:
                return await handler(request)
            url_id, path = found
            return await self.serve(request, url_id, path)

        return function_urls

    def match(self, request: web.Request) -> tuple[str, str] | None:
        """(url id, path the function sees) of a URL request, or None for an API request."""
        host = (request.host or "").rsplit(":", 1)[0]
        by_host = urls.url_id_of_host(host)
        if by_host is not None:
            return by_host, request.raw_path.split("?", 1)[0] or "/"
        m = _PATH_RE.fullmatch(request.raw_path.split("?", 1)[0])
        if m is None:
            return None
        return m["id"], m["rest"] or "/"

    async def serve(self, request: web.Request, url_id: str, path: str) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        resp = await self._answer(request, url_id, path, request_id)
        if not resp.prepared:
            resp.headers[REQUEST_ID_HEADER] = request_id
        return resp

    async def _answer(
        self, request: web.Request, url_id: str, path: str, request_id: str
    ) -> web.StreamResponse:
        cfg = self.store.url_config_by_id(url_id) if urls.is_url_id(url_id) else None
        if cfg is None:
            return _json_answer(
                403,
                {"Message": f"lambdalet: no function URL has the id {url_id!r}"},
                **{"x-amzn-ErrorType": "AccessDeniedException"},
            )
        headers = {k.lower(): v for k, v in request.headers.items()}
        pre = urls.preflight(cfg.cors, request.method, headers)
        if pre is not None:
            return _render(pre)
        authorizer = await self._authorize(request, cfg)
        if isinstance(authorizer, web.Response):
            return authorizer
        body = await request.read()
        now = self.clock.wall()
        peer = request.remote or "127.0.0.1"
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = int(sockname[1]) if sockname else 0
        event = urls.url_event(
            urls.HttpRequestData(
                method=request.method,
                path=path,
                raw_query=request.query_string,
                headers=list(request.headers.items()),
                body=body,
                source_ip=peer,
                epoch_s=now,
            ),
            url_id=url_id,
            domain=f"{url_id}.lambda-url.{self.scope.region}.localhost",
            request_id=request_id,
            trace_id=trace_id(now),
            account_id="anonymous" if authorizer is None else self.scope.account_id,
            authorizer=authorizer,
            server_port=port,
        )
        payload = json.dumps(event, separators=(",", ":")).encode()
        cors = urls.cors_headers(cfg.cors, headers.get("origin"))
        if len(payload) > MAX_SYNC_PAYLOAD:
            return _render(urls.with_cors(urls.HttpAnswer(413, body=b"Payload Too Large"), cors))
        if cfg.invoke_mode == "RESPONSE_STREAM":
            streamed = await self._stream(request, cfg, payload, request_id, cors)
            return streamed if isinstance(streamed, web.StreamResponse) else _render(streamed)
        answer = await self._invoke(cfg, payload, request_id)
        return _render(urls.with_cors(answer, cors))

    async def _authorize(
        self, request: web.Request, cfg: UrlConfig
    ) -> dict[str, Any] | web.Response | None:
        """None for NONE auth that the policy allows, the ``authorizer`` object for a signed
        request, or the 403 to answer."""
        if cfg.auth_type == "NONE":
            policy = self.store.get_policy(cfg.function_name, cfg.qualifier)
            statements = policy.statements if policy else ()
            if policies.allows_public_url(statements, "NONE"):
                return None
            q = f" --qualifier {cfg.qualifier}" if cfg.qualifier else ""
            message = MISSING_PERMISSION.format(fn=cfg.function_name, qualifier=q)
            log.warning("%s", message)
            return _json_answer(
                403,
                {**urls.FORBIDDEN_BODY, "lambdalet": message},
                **{"x-amzn-ErrorType": "AccessDeniedException"},
            )
        header = request.headers.get("Authorization", "")
        m = _AUTH_RE.match(header.strip())
        if m is None or m["service"] != "lambda":
            return _json_answer(
                403,
                {
                    **urls.FORBIDDEN_BODY,
                    "lambdalet": "AuthType AWS_IAM: sign the request with SigV4 for service "
                    "'lambda' (e.g. botocore's SigV4Auth)",
                },
            )
        if self.verifier is not None:
            try:
                await self.verifier.verify(request)
            except LambdaApiError as e:
                return _json_answer(403, {**urls.FORBIDDEN_BODY, "lambdalet": e.message})
        akid = m["akid"]
        account = self.scope.account_id
        return {
            "iam": {
                "accessKey": akid,
                "accountId": account,
                "callerId": akid,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{account}:root",
                "userId": akid,
            }
        }

    def _input(self, cfg: UrlConfig, payload: bytes, request_id: str) -> InvokeInput:
        return invoke_input(
            self.store,
            function_arn(self.scope, cfg.function_name, cfg.qualifier or None),
            cfg.function_name,
            cfg.qualifier or None,
            payload,
            request_id,
            self.draw,
        )

    async def _stream(
        self,
        request: web.Request,
        cfg: UrlConfig,
        payload: bytes,
        request_id: str,
        cors: list[tuple[str, str]],
    ) -> web.StreamResponse | urls.HttpAnswer:
        try:
            streamed = await invoke_streaming(self.invoker, self._input(cfg, payload, request_id))
        except TooManyRequestsException:
            return urls.with_cors(_THROTTLED, cors)
        except LambdaApiError as e:
            log.warning("function URL %s: %s", cfg.url_id, e.message)
            return urls.with_cors(url_stream.BAD_GATEWAY, cors)
        return await url_stream.answer(request, streamed, cors, request_id, cfg.url_id)

    async def _invoke(self, cfg: UrlConfig, payload: bytes, request_id: str) -> urls.HttpAnswer:
        try:
            out = await self.invoker.invoke(self._input(cfg, payload, request_id))
        except TooManyRequestsException:
            return _THROTTLED
        except LambdaApiError as e:
            log.warning("function URL %s: %s", cfg.url_id, e.message)
            return urls.HttpAnswer(502, [("Content-Type", "text/plain")], b"Internal Server Error")
        if out.function_error or len(out.payload) > MAX_SYNC_PAYLOAD:
            return urls.HttpAnswer(502, [("Content-Type", "text/plain")], b"Internal Server Error")
        try:
            return urls.http_answer(out.payload)
        except urls.MalformedResponse as e:
            log.warning("function URL %s: malformed response: %s", cfg.url_id, e)
            return urls.HttpAnswer(502, [("Content-Type", "text/plain")], b"Internal Server Error")


def invoke_input(
    store: Store,
    invoked_arn: str,
    name: str,
    qualifier: str | None,
    payload: bytes,
    request_id: str,
    draw: Callable[[], float],
) -> InvokeInput:
    """The invoke an HTTP front end makes of a function (an alias's weights honoured);
    raises the API's errors (ResourceNotFoundException ...)."""
    record, alias = store.resolve(name, qualifier)
    if alias is not None and alias.weights:
        version = pick_version(alias, draw())
        if version != record.version:
            record = store.get_function(name, version)
    return InvokeInput(
        function=record, invoked_arn=invoked_arn, request_id=request_id, payload=payload
    )


async def invoke_sync(
    store: Store,
    invoker: Invoker,
    invoked_arn: str,
    name: str,
    qualifier: str | None,
    payload: bytes,
    request_id: str,
    draw: Callable[[], float],
) -> InvokeOutput:
    """One synchronous invoke of a function (an alias's weights honoured), as an HTTP front
    end makes it; raises the API's errors (TooManyRequestsException when throttled)."""
    return await invoker.invoke(
        invoke_input(store, invoked_arn, name, qualifier, payload, request_id, draw)
    )


def render_answer(answer: urls.HttpAnswer) -> web.Response:
    return _render(answer)


def _render(answer: urls.HttpAnswer) -> web.Response:
    resp = web.Response(status=answer.status, body=answer.body)
    for name, value in answer.headers:
        if name.lower() == "content-type":
            resp.headers["Content-Type"] = value
        else:
            resp.headers.add(name, value)
    return resp
