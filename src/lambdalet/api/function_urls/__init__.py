"""Function URLs, the protocol half: configuration requests and shapes, the payload-2.0
event a request becomes, the HTTP response a function's answer becomes, CORS.  No I/O.

Rules (Lambda Developer Guide, "Invoking Lambda function URLs", and docs/triggers.md):

* header names lower-cased, repeated headers joined with ``,``; ``Cookie`` moves to
  ``cookies``; ``queryStringParameters`` and ``cookies`` absent when empty; ``body`` absent
  when the request has none; bodies that are not text (``text/*``, JSON, XML, JavaScript)
  are base64 with ``isBase64Encoded: true``;
* an answer that is a JSON object with ``statusCode`` is a structured response (headers,
  ``cookies`` → one ``Set-Cookie`` each, ``body``, base64 when ``isBase64Encoded``); any
  other answer is the body of a 200 ``application/json`` response, as the function gave it;
* a ``RESPONSE_STREAM`` URL reads no ``statusCode``: a stream of the content type
  :data:`PRELUDE_CONTENT_TYPE` (Node's ``awslambda.HttpResponseStream.from``) begins with a
  JSON prelude ``{"statusCode", "headers", "cookies"}`` and 8 NUL bytes, then the body
  (:class:`PreludeReader`); any other answer is the body of a 200 with the function's
  content type.

One module each: the URL configurations (config), the event a request becomes (events),
the HTTP answer a function's response becomes (answers), CORS (cors); this package
re-exports the public names.
"""

from lambdalet.api.function_urls.answers import (
    FORBIDDEN_BODY,
    MAX_PRELUDE_BYTES,
    PRELUDE_CONTENT_TYPE,
    PRELUDE_DELIMITER,
    STREAM_CONTENT_TYPE,
    HttpAnswer,
    MalformedResponse,
    PreludeReader,
    http_answer,
    prelude_head,
    stream_head,
)
from lambdalet.api.function_urls.config import (
    AUTH_TYPES,
    INVOKE_MODES,
    URL_PREFIX,
    UrlSettings,
    cors_config,
    is_url_id,
    iso_time,
    url_config_shape,
    url_id_of_host,
    url_qualifier,
    url_settings,
)
from lambdalet.api.function_urls.cors import cors_headers, preflight, with_cors
from lambdalet.api.function_urls.events import (
    HttpRequestData,
    body_fields,
    cookies_of,
    is_text,
    joined_headers,
    query_parameters,
    request_time,
    url_event,
)

__all__ = [
    "AUTH_TYPES",
    "FORBIDDEN_BODY",
    "INVOKE_MODES",
    "MAX_PRELUDE_BYTES",
    "PRELUDE_CONTENT_TYPE",
    "PRELUDE_DELIMITER",
    "STREAM_CONTENT_TYPE",
    "URL_PREFIX",
    "HttpAnswer",
    "HttpRequestData",
    "MalformedResponse",
    "PreludeReader",
    "UrlSettings",
    "body_fields",
    "cookies_of",
    "cors_config",
    "cors_headers",
    "http_answer",
    "is_text",
    "is_url_id",
    "iso_time",
    "joined_headers",
    "preflight",
    "prelude_head",
    "query_parameters",
    "request_time",
    "stream_head",
    "url_config_shape",
    "url_event",
    "url_id_of_host",
    "url_qualifier",
    "url_settings",
    "with_cors",
]
