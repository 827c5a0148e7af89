from __future__ import annotations

from lambdalet.env import log_lines as ll


def test_start_end_use_spaces() -> None:
    assert ll.start("abc", "$LATEST") == "START RequestId: abc Version: $LATEST"
    assert ll.end("abc") == "END RequestId: abc"


def test_report_success_cold() -> None:
    r = ll.Report("abc", 2.845, 3156, 1024, 64, init_duration_ms=3152.18)
    assert r.line() == (
        "REPORT RequestId: abc\tDuration: 2.85 ms\tBilled Duration: 3156 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 64 MB\tInit Duration: 3152.18 ms\t"
    )


def test_report_timeout_and_error() -> None:
    t = ll.Report("abc", 3000.0, 3000, 128, 40, status="timeout", error_type="Sandbox.Timedout")
    assert t.line().endswith("Max Memory Used: 40 MB\tStatus: timeout\t")
    e = ll.Report("abc", 98.71, 99, 512, 46, status="error", error_type="Runtime.ExitError")
    assert e.line().endswith("\tStatus: error\tError Type: Runtime.ExitError\t")


def test_billed_duration_rounds_up_and_adds_init() -> None:
    assert ll.billed_ms(2.01, None, True) == 3
    assert ll.billed_ms(3.0, None, True) == 3
    assert ll.billed_ms(3016.78, 84.0, True) == 3101
    assert ll.billed_ms(3016.78, 84.0, False) == 3017
    assert ll.billed_ms(0.01, None, True) == 1


def test_init_lines() -> None:
    assert ll.init_report(1670.771, "init", "error", "Runtime.ImportModuleError") == (
        "INIT_REPORT Init Duration: 1670.77 ms\tPhase: init\tStatus: error\t"
        "Error Type: Runtime.ImportModuleError"
    )
    assert ll.init_report(10000, "init", "timeout", None).endswith("Status: timeout")
    assert ll.init_start("python:3.11.v1", "arn:x") == (
        "INIT_START Runtime Version: python:3.11.v1\tRuntime Version ARN: arn:x"
    )
