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


def build_dashboard_app() -> web.Application:
    app = web.Application()
    app[PAGE_KEY] = load_page()
    app.router.add_get("/", index)
    return app
