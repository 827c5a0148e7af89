"""Clients of a running server: boto3's Lambda client and the admin endpoint; terminal output."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from lambdalet.ops.settings import ClientSettings, client_settings

#: $LAMBDALET_ENDPOINT, else the server's default address
DEFAULT_ENDPOINT = client_settings().endpoint


class ServerUnreachable(Exception):
    pass


def lambda_client(endpoint: str, read_timeout: int = 900) -> Any:
    """boto3's Lambda client for the server; any credentials do on loopback."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config

    session = boto3.session.Session()
    creds = session.get_credentials()
    keys: dict[str, str] = {}
    if creds is None:
        keys = {"aws_access_key_id": "lambdalet", "aws_secret_access_key": "lambdalet"}
    return session.client(
        "lambda",
        endpoint_url=endpoint,
        region_name=session.region_name or "us-east-1",
        config=Config(read_timeout=read_timeout, retries={"max_attempts": 0}),
        **keys,
    )


def logs_client(endpoint: str) -> Any:
    """boto3's CloudWatch Logs client for the server (its Logs read API)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    keys: dict[str, str] = {}
    if session.get_credentials() is None:
        keys = {"aws_access_key_id": "lambdalet", "aws_secret_access_key": "lambdalet"}
    return session.client(
        "logs",
        endpoint_url=endpoint,
        region_name=session.region_name or "us-east-1",
        config=Config(retries={"max_attempts": 0}),
        **keys,
    )


def admin_environments(endpoint: str) -> list[dict[str, Any]]:
    """``GET /lambdalet/admin/environments``: every live environment."""
    url = endpoint.rstrip("/") + "/lambdalet/admin/environments"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
    except (urllib.error.URLError, OSError) as e:
        raise ServerUnreachable(f"cannot reach {url}: {e}") from None
    envs = body.get("Environments", [])
    return list(envs) if isinstance(envs, list) else []


# --------------------------------------------------------------------------- output


class Style:
    """ANSI colours, only when the stream is a terminal and NO_COLOR is unset."""

    def __init__(self, stream: TextIO, settings: ClientSettings | None = None) -> None:
        self.on = stream.isatty() and (settings or client_settings()).colour

    def _c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def bold(self, text: str) -> str:
        return self._c("1", text)

    def dim(self, text: str) -> str:
        return self._c("2", text)

    def green(self, text: str) -> str:
        return self._c("32", text)

    def yellow(self, text: str) -> str:
        return self._c("33", text)

    def red(self, text: str) -> str:
        return self._c("31", text)

    def cyan(self, text: str) -> str:
        return self._c("36", text)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    style: Style,
    colour: Callable[[int, str, str], str] | None = None,
) -> str:
    """Left-aligned columns, widths from the plain text; the header in bold.

    ``colour(column, cell, padded)`` may wrap a padded cell in colour codes.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines = [style.bold(head)]
    last = len(headers) - 1
    for row in rows:
        cells = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            padded = cell if i == last else cell.ljust(w)
            cells.append(colour(i, cell, padded) if colour and style.on else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def state_colour(style: Style, state: str) -> Callable[[str], str]:
    """The colour of an environment state in ``ps``."""
    if state.startswith("Idle"):
        return style.green
    if state.startswith(("Invoking", "Responded", "Initializing", "Created")):
        return style.yellow
    if state.startswith(("Resetting", "NeedsInit", "ShuttingDown", "Dead")):
        return style.red
    return str


def human_age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def progress(message: str, stream: TextIO = sys.stderr) -> None:
    style = Style(stream)
    print(f"{style.cyan('•')} {message}", file=stream, flush=True)


def admin_request(endpoint: str, method: str, path: str, body: Any = None) -> Any:
    """A JSON request to ``/lambdalet/admin<path>``; the decoded answer."""
    url = endpoint.rstrip("/") + "/lambdalet/admin" + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message", str(e))
        except ValueError:
            message = str(e)
        raise ValueError(message) from None
    except (urllib.error.URLError, OSError) as e:
        raise ServerUnreachable(f"cannot reach {url}: {e}") from None


def with_progress(
    endpoint: str, work: Callable[[], Any], say: Callable[[str], None], poll_s: float = 0.5
) -> Any:
    """Run ``work`` (a blocking call to the server); meanwhile print the server's long
    work in progress (``GET /lambdalet/admin/progress``: a first runtime install, ...)."""
    import threading

    done = threading.Event()
    said: set[str] = set()

    def watch() -> None:
        while not done.wait(poll_s):
            try:
                running = admin_request(endpoint, "GET", "/progress").get("Running", [])
            except (ValueError, ServerUnreachable, AttributeError):
                continue
            for item in running:
                what = str(item.get("what", ""))
                if what and what not in said:
                    said.add(what)
                    say(f"server: {what} …")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return work()
    finally:
        done.set()
        watcher.join(2)
        for what in sorted(said):
            say(f"server: done: {what}")
