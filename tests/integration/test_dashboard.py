"""The dashboard in a real headless browser (Debian's chromium and chromium-driver).

The page is loaded once, functions are created and invoked with boto3, and the
test then reads the live page (the DOM, not the JSON) until it shows what
happened: environments with their states, invocations with request ids, cold
flags and the timeout, and the lifecycle timeline's segments.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Server, create, invoke
from tests.needs import require

pytestmark = pytest.mark.integration

DASHBOARD_PATH = "/lambdalet/dashboard/"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

FAST = """
def handler(event, context):
    return {"ok": True}
"""

SLOW = """
import time

def handler(event, context):
    time.sleep(30)
    return {"late": True}
"""

# Everything the test reads from the page, in one round trip (no stale elements).
READ_PAGE = """
const rows = (id) => Array.from(document.querySelectorAll('[data-testid="' + id + '"]'));
return {
  polls: Number(document.body.getAttribute('data-polls') || 0),
  status: document.getElementById('status').textContent,
  functions: rows('function-card').map(r => r.dataset.function),
  envs: rows('env-row').map(r => ({
    id: r.dataset.envId, fn: r.dataset.function, state: r.dataset.state,
    frozen: r.dataset.frozen === 'true'})),
  invocations: rows('invocation-row').map(r => ({
    requestId: r.dataset.requestId, fn: r.dataset.function, cold: r.dataset.cold === 'true',
    status: r.dataset.status, envId: r.dataset.envId})),
  lanes: rows('timeline-lane').map(l => ({
    envId: l.dataset.envId,
    segments: Array.from(l.querySelectorAll('[data-testid="timeline-segment"]')).map(s => ({
      kind: s.dataset.kind, status: s.dataset.status || '', open: s.dataset.open === 'true',
      label: s.textContent}))})),
};
"""


def browser_missing() -> str | None:
    """Why the headless browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if chromium_binary() is None:
        return "chromium is not installed (apt-get install chromium)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> None:
    require("the headless browser", browser_missing())


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = chromium_binary()
    assert binary is not None
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,1000")
    service = Service(
        executable_path=shutil.which("chromedriver"),
        log_output=str(tmp_path / "chromedriver.log"),
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def read_page(driver: Any) -> dict[str, Any]:
    page: dict[str, Any] = driver.execute_script(READ_PAGE)
    return page


def api_environments(server: Server) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/lambdalet/admin/environments", timeout=5) as r:
        envs: list[dict[str, Any]] = json.load(r)["Environments"]
    return envs


def wait_for_page(
    driver: Any,
    server: Server,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll the DOM until ``check`` holds; fail with what the page showed instead."""
    deadline = time.monotonic() + timeout
    page = read_page(driver)
    while time.monotonic() < deadline:
        page = read_page(driver)
        if check(page):
            return page
        time.sleep(0.2)
    pytest.fail(
        f"the dashboard never showed {what} within {timeout:.0f} s; it showed:\n"
        f"{json.dumps(page, indent=1)[-6000:]}\nserver log:\n{server.log_tail()}"
    )


def test_dashboard_shows_the_lifecycle_live(server: Server, lam: Any, browser: Any) -> None:
    browser.get(server.url + DASHBOARD_PATH)
    assert browser.title == "lambdalet dashboard"
    # the page polls on its own: it has rendered at least once before anything exists
    wait_for_page(browser, server, "a first poll", lambda p: p["polls"] >= 1, timeout=15)

    fast = create(lam, {"app.py": FAST}, MemorySize=128)
    slow = create(lam, {"app.py": SLOW}, Timeout=1)

    cold = invoke(lam, fast)
    # the server freezes an idle environment only after a short delay (back-to-back invokes
    # skip the freeze): wait for the freeze so the timeline has a frozen gap between the invokes
    deadline = time.monotonic() + 10
    while not any(e["frozen"] for e in server.environments(fast)):
        assert time.monotonic() < deadline, server.environments(fast)
        time.sleep(0.02)
    warm = invoke(lam, fast)
    assert cold.status == 200 and warm.status == 200, (cold, warm)
    late = invoke(lam, slow)
    assert late.function_error is not None, late
    assert "timed out" in late.payload.decode(), late.payload

    # functions table: both functions, pushed by polling (no reload)
    wait_for_page(
        browser,
        server,
        "both functions",
        lambda p: {fast, slow} <= set(p["functions"]),
    )

    # recent invocations: the request ids, cold then warm, and the timeout
    def invocations_shown(p: dict[str, Any]) -> bool:
        by_id = {r["requestId"]: r for r in p["invocations"]}
        return (
            cold.request_id in by_id
            and warm.request_id in by_id
            and late.request_id in by_id
            and by_id[cold.request_id]["cold"] is True
            and by_id[warm.request_id]["cold"] is False
            and by_id[cold.request_id]["status"] == "ok"
            and by_id[warm.request_id]["status"] == "ok"
            and by_id[late.request_id]["status"] == "timeout"
            and by_id[late.request_id]["fn"] == slow
        )

    page = wait_for_page(browser, server, "the three invocations", invocations_shown)
    by_id = {r["requestId"]: r for r in page["invocations"]}
    # cold and warm ran in the same environment
    assert by_id[cold.request_id]["envId"] == by_id[warm.request_id]["envId"]
    fast_env = by_id[cold.request_id]["envId"]
    slow_env = by_id[late.request_id]["envId"]

    # environments: the warm one idles frozen; every row matches the server's own state
    def envs_shown(p: dict[str, Any]) -> bool:
        rows = {r["id"]: r for r in p["envs"]}
        if fast_env not in rows or slow_env not in rows:
            return False
        if rows[fast_env]["state"] != "Idle" or not rows[fast_env]["frozen"]:
            return False
        truth = {e["id"]: e["state"] for e in api_environments(server)}
        return all(truth.get(env_id) == row["state"] for env_id, row in rows.items())

    page = wait_for_page(browser, server, "the environments in their states", envs_shown)
    rows = {r["id"]: r for r in page["envs"]}
    assert rows[fast_env]["fn"] == fast
    assert rows[slow_env]["fn"] == slow
    assert rows[slow_env]["state"] not in ("Invoking", "Responded")

    # timeline: the warm environment's lane has Init, Invoke and a frozen gap;
    # the slow one's lane shows the invoke that timed out
    def lanes_shown(p: dict[str, Any]) -> bool:
        lanes = {lane["envId"]: lane["segments"] for lane in p["lanes"]}
        if fast_env not in lanes or slow_env not in lanes:
            return False
        fast_segs = lanes[fast_env]
        kinds = {s["kind"] for s in fast_segs}
        closed_invokes = [s for s in fast_segs if s["kind"] == "invoke" and not s["open"]]
        closed_frozen = [s for s in fast_segs if s["kind"] == "frozen" and not s["open"]]
        slow_timeouts = [
            s for s in lanes[slow_env] if s["kind"] == "invoke" and s["status"] == "timeout"
        ]
        return (
            {"init", "invoke", "frozen"} <= kinds
            and len(closed_invokes) >= 2
            and len(closed_frozen) >= 1
            and any(s["kind"] == "init" and s["status"] == "ok" for s in fast_segs)
            and len(slow_timeouts) == 1
        )

    wait_for_page(browser, server, "the lifecycle timeline", lanes_shown)

    # Init is drawn in sub-phases: three bars when the runtime reported the start of the
    # function's init (function_init_start), else two.  Which one depends on the server's
    # timeline of this environment, so ask the admin API rather than assume.
    (fast_truth,) = [e for e in api_environments(server) if e["id"] == fast_env]
    events = [ev["event"] for ev in fast_truth["timeline"]]
    assert "init_done" in events, events
    if "function_init_start" in events:
        expected = ["Extension init", "Runtime init", "Function init"]
    else:
        expected = ["Extension init", "Runtime + function init"]

    def init_bars(p: dict[str, Any]) -> list[str]:
        lanes = {lane["envId"]: lane["segments"] for lane in p["lanes"]}
        return [s["label"] for s in lanes.get(fast_env, []) if s["kind"] == "init"]

    wait_for_page(browser, server, f"Init as {expected}", lambda p: init_bars(p) == expected)

    # every endpoint answered: no error in the status line
    wait_for_page(
        browser, server, "a clean status line", lambda p: p["status"].startswith("updated")
    )
    # at 1400 px every column is on screen and nothing scrolls sideways
    work = read_work(browser)
    assert work["statusColumn"] and work["initColumn"], work
    assert work["scrollWidth"] <= work["width"] and work["overflowing"] == [], work


RAISES = """
def handler(event, context):
    print("working on", event.get("n"))
    raise ValueError("bad n")
"""

# What the working parts of the page show, in one round trip.
READ_WORK = """
const q = (s) => document.querySelector(s);
const all = (s) => Array.from(document.querySelectorAll(s));
const visible = (n) => { if (!n) return false; const r = n.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth; };
return {
  width: window.innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  // sections whose content is wider than they are (clipped or scrolling sideways)
  overflowing: all('section').filter(s => s.scrollWidth > s.clientWidth + 1).map(s => s.id),
  statusColumn: visible(q('[data-testid="col-status"]')),
  initColumn: visible(q('[data-testid="col-init"]')),
  cards: Object.fromEntries(all('[data-testid="function-card"]').map(c => [c.dataset.function, {
    invocations: c.querySelector('[data-testid="card-invocations"]').textContent,
    errors: c.querySelector('[data-testid="card-errors"]').textContent,
    coldStarts: c.querySelector('[data-testid="card-cold-starts"]').textContent,
    p99: c.querySelector('[data-testid="card-p99"]').textContent,
    charts: c.querySelectorAll('.chart canvas').length,
    visible: visible(c)}])),
  badges: Object.fromEntries(all('[data-testid="invocation-row"]').map(r => [r.dataset.requestId,
    {status: r.dataset.status, cold: r.dataset.cold, init: r.children[8].textContent,
      text: r.querySelector('[data-testid="invocation-status"]').textContent,
      color: getComputedStyle(r.querySelector('.badge.' + r.dataset.status)).backgroundColor}])),
  invokeStatus: q('[data-testid="invoke-status"]').textContent,
  invokeOutcome: q('[data-testid="invoke-status"]').dataset.outcome || '',
  response: q('[data-testid="invoke-response"]').textContent,
  invokeLog: q('[data-testid="invoke-log"]').textContent,
  saved: all('[data-testid="saved-events"] option').map(o => o.value).filter(v => v),
  logsTitle: q('[data-testid="logs-title"]').textContent,
  logs: all('[data-testid="log-event"]').map(e => e.querySelector('.m').textContent),
};
"""


def read_work(driver: Any) -> dict[str, Any]:
    page: dict[str, Any] = driver.execute_script(READ_WORK)
    return page


def wait_work(
    driver: Any, server: Server, what: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    page = read_work(driver)
    while time.monotonic() < deadline:
        page = read_work(driver)
        if check(page):
            return page
        time.sleep(0.2)
    pytest.fail(
        f"the dashboard never showed {what}; it showed:\n{json.dumps(page, indent=1)[-5000:]}"
        f"\nserver log:\n{server.log_tail()}"
    )


def click(driver: Any, testid: str, within: Any = None) -> None:
    from selenium.webdriver.common.by import By

    (within or driver).find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').click()


def test_dashboard_is_a_workbench_at_1280_px(
    server: Server, lam: Any, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 900)
    fast = create(lam, {"app.py": FAST})
    bad = create(lam, {"app.py": RAISES})
    ok = invoke(lam, fast)
    failed = invoke(lam, bad, {"n": 1})
    assert failed.function_error == "Unhandled"
    broken = create(lam, {"app.py": "import no_such_module\n"})
    init_failed = invoke(lam, broken)
    browser.get(server.url + DASHBOARD_PATH)

    # cards with the truthful counts: the handler's ValueError is an error, with charts
    def cards_shown(p: dict[str, Any]) -> bool:
        c = p["cards"]
        return (
            c.get(bad, {}).get("errors") == "1"
            and c.get(bad, {}).get("invocations") == "1"
            and c.get(fast, {}).get("errors") == "0"
            and c[fast]["coldStarts"] == "1"
            and c[fast]["p99"][:1].isdigit()
            and c[fast]["charts"] == 2
            and failed.request_id in p["badges"]
            and init_failed.request_id in p["badges"]
        )

    page = wait_work(browser, server, "the cards and the error", cards_shown)
    badge = page["badges"][failed.request_id]
    assert (badge["status"], badge["text"]) == ("error", "error: ValueError")
    assert badge["color"] == "rgb(220, 38, 38)"  # red, not the "ok" green
    assert page["badges"][ok.request_id]["status"] == "ok"
    # an Init failure: red, with its type, and a cold start with its Init time
    broke = page["badges"][init_failed.request_id]
    assert (broke["status"], broke["text"]) == (
        "init_failure",
        "init failure: Runtime.ImportModuleError",
    )
    assert broke["cold"] == "true" and broke["init"][:1].isdigit(), broke
    # fits 1280 px: nothing scrolls sideways; Status and Init are on screen
    assert page["scrollWidth"] <= page["width"], page
    assert page["overflowing"] == [], page
    assert page["statusColumn"] and page["initColumn"], page
    assert page["cards"][fast]["visible"]
    browser.save_screenshot(str(tmp_path / "dashboard-1280.png"))

    # the invoke form: a saved test event, then an invoke with it, its response and log tail
    card = browser.find_element(
        By.CSS_SELECTOR, f'[data-testid="function-card"][data-function="{bad}"]'
    )
    click(browser, "card-invoke", card)
    payload = browser.find_element(By.CSS_SELECTOR, '[data-testid="payload"]')
    payload.clear()
    payload.send_keys('{"n": 42}')
    browser.find_element(By.CSS_SELECTOR, '[data-testid="event-name"]').send_keys("answer")
    click(browser, "save-event")
    wait_work(browser, server, "the saved event", lambda p: p["saved"] == ["answer"])
    with urllib.request.urlopen(
        f"{server.url}/lambdalet/admin/functions/{bad}/test-events", timeout=5
    ) as r:
        assert json.load(r)["TestEvents"] == {"answer": {"n": 42}}  # kept by the server
    click(browser, "invoke-button")
    page = wait_work(browser, server, "the invoke's answer", lambda p: p["invokeOutcome"] != "")
    assert page["invokeOutcome"] == "error" and '"errorType": "ValueError"' in page["response"]
    assert "working on 42" in page["invokeLog"]
    assert "ValueError: bad n\nTraceback" in page["invokeLog"]  # a traceback as lines

    # the logs panel: the function's events from the Logs API, a traceback in one event
    page = wait_work(
        browser,
        server,
        "the function's logs",
        lambda p: any("working on 42" in m for m in p["logs"]),
    )
    assert page["logsTitle"].startswith(f"/aws/lambda/{bad}")
    assert any(m.startswith("[ERROR] ValueError: bad n\nTraceback") for m in page["logs"])

    # one invocation's log events, from its row
    row = browser.find_element(
        By.CSS_SELECTOR, f'[data-testid="invocation-row"][data-request-id="{failed.request_id}"]'
    )
    click(browser, "invocation-logs", row)
    page = wait_work(
        browser, server, "the invocation's logs",
        lambda p: p["logsTitle"] == f"request {failed.request_id}" and len(p["logs"]) > 2,
    )  # fmt: skip
    assert page["logs"][0].startswith("INIT_START")  # it was a cold start
    assert page["logs"][-1].startswith(f"REPORT RequestId: {failed.request_id}")
    assert not any("working on 42" in m for m in page["logs"])  # only this invocation's
    assert read_work(browser)["scrollWidth"] <= 1280
    browser.save_screenshot(str(tmp_path / "dashboard-logs.png"))

    # filtering by function hides the others' cards
    from selenium.webdriver.support.ui import Select

    Select(
        browser.find_element(By.CSS_SELECTOR, '[data-testid="function-filter"]')
    ).select_by_value(fast)
    wait_work(browser, server, "only one card", lambda p: list(p["cards"]) == [fast])
    Select(
        browser.find_element(By.CSS_SELECTOR, '[data-testid="function-filter"]')
    ).select_by_value("")
    browser.set_window_size(1280, 2600)  # the whole page, for a person to look at
    browser.save_screenshot(str(tmp_path / "dashboard-whole.png"))
    shots = os.environ.get("LAMBDALET_SCREENSHOTS")
    if shots:
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, Path(shots) / png.name)
