"""What the Lambda API's handlers share when reading a request: the function it names."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.arns import Scope, parse_function_name


def function_target(request: web.Request, scope: Scope) -> tuple[str, str | None]:
    """The function and qualifier of a request's ``{name}`` (a name, a partial or full ARN,
    perhaps with ``:qualifier``) and its ``?Qualifier=``."""
    ref = parse_function_name(request.match_info["name"], scope, request.query.get("Qualifier"))
    return ref.name, ref.qualifier
