"""Serves the dashboard page (package data) as an aiohttp sub-application.

Mount it with ``api.add_subapp("/lambdalet/dashboard/", build_dashboard_app())``.
The page itself calls the Lambda API and the admin API by absolute paths, so it
works wherever it is mounted on the same origin.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PAGE_KEY = web.AppKey("page", bytes)


def load_page() -> bytes:
    """The dashboard HTML, read from the package data."""
    return resources.files("lambdalet.dashboard").joinpath("static/index.html").read_bytes()


async def index(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[PAGE_KEY],
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


#: vendored files the page loads (see static/VENDORED.md), served from package data
VENDORED = {
    "uplot-1.6.32.iife.min.js": "application/javascript",
    "uplot-1.6.32.min.css": "text/css",
}


async def vendored(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    kind = VENDORED.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    body = resources.files("lambdalet.dashboard").joinpath(f"static/{name}").read_bytes()
    return web.Response(
        body=body,
        content_type=kind,
        charset="utf-8",
        headers={"Cache-Control": "max-age=86400"},
    )


def build_dashboard_app() -> web.Application:
    app = web.Application()
    app[PAGE_KEY] = load_page()
    app.router.add_get("/", index)
    app.router.add_get("/vendor/{file}", vendored)
    return app
