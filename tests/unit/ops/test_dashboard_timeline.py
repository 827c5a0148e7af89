"""The dashboard's timeline pairing (``segmentsOf`` in index.html), run by node without a browser.

The function is cut out of the page by brace matching and fed synthetic timelines; the browser
test (tests/integration/test_dashboard.py) checks the same drawing against a live server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from typing import Any

from tests.needs import require

NODE = shutil.which("node") or shutil.which("nodejs")


def _segments_of_source() -> str:
    page = resources.files("lambdalet.dashboard").joinpath("static/index.html").read_text()
    start = page.index("function segmentsOf(")
    depth = 0
    for i in range(page.index("{", start), len(page)):
        if page[i] == "{":
            depth += 1
        elif page[i] == "}":
            depth -= 1
            if depth == 0:
                return page[start : i + 1]
    raise AssertionError("segmentsOf has no closing brace")


def segments(timeline: list[dict[str, Any]], now: float = 100.0) -> list[dict[str, Any]]:
    require(
        "node (runs the dashboard's timeline code)",
        "node is not installed" if NODE is None else None,
    )
    script = (
        'function stripKey(d) { return (d || "").split(" ").pop(); }\n'
        + _segments_of_source()
        + f"\nconsole.log(JSON.stringify(segmentsOf({json.dumps(timeline)}, {now}).segs));\n"
    )
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    segs: list[dict[str, Any]] = json.loads(out.stdout)
    return segs


def _init_bars(timeline: list[dict[str, Any]]) -> list[tuple[str, float, float, str]]:
    return [
        (s["label"], s["start"], s["end"], s["status"])
        for s in segments(timeline)
        if s["kind"] == "init"
    ]


def _ev(t: float, event: str, detail: str = "") -> dict[str, Any]:
    return {"t": t, "event": event, "detail": detail}


def test_init_is_three_bars_when_the_runtime_reports_function_init() -> None:
    timeline = [
        _ev(1.0, "init_start", "on-demand"),
        _ev(1.5, "runtime_start"),
        _ev(1.75, "function_init_start"),
        _ev(2.0, "init_done"),
        _ev(2.0, "invoke_start"),
    ]
    assert _init_bars(timeline) == [
        ("Extension init", 1.0, 1.5, "ok"),
        ("Runtime init", 1.5, 1.75, "ok"),
        ("Function init", 1.75, 2.0, "ok"),
    ]


def test_a_failed_function_init_is_the_failed_bar() -> None:
    timeline = [
        _ev(1.0, "init_start"),
        _ev(1.5, "runtime_start"),
        _ev(1.75, "function_init_start"),
        _ev(3.0, "init_failed", "Runtime.ImportModuleError"),
    ]
    assert _init_bars(timeline)[-1] == ("Function init", 1.75, 3.0, "failed")


def test_init_is_two_bars_without_function_init_start() -> None:
    timeline = [_ev(1.0, "init_start"), _ev(1.5, "runtime_start"), _ev(2.0, "init_done")]
    assert _init_bars(timeline) == [
        ("Extension init", 1.0, 1.5, "ok"),
        ("Runtime + function init", 1.5, 2.0, "ok"),
    ]


def test_an_unfinished_function_init_runs_to_now() -> None:
    timeline = [_ev(1.0, "init_start"), _ev(1.5, "runtime_start"), _ev(1.75, "function_init_start")]
    segs = [s for s in segments(timeline, now=9.0) if s["kind"] == "init"]
    assert [(s["label"], s["open"], s["end"]) for s in segs][-1] == ("Function init", True, 9.0)
