from __future__ import annotations

import json

from lambdalet.env import log_lines
from lambdalet.env.outcome import InvokeOutcome, Outcome, function_error_type


def report(outcome: InvokeOutcome) -> str:
    return log_lines.Report(
        "r", 1.0, 1, 128, 40, None, outcome.report_status, outcome.report_error_type
    ).line()


def test_a_handler_error_is_an_error_with_its_type_but_no_status_on_report() -> None:
    body = json.dumps({"errorMessage": "bad", "errorType": "ValueError"}).encode()
    outcome = InvokeOutcome.function_error(function_error_type(body, "Runtime.Unknown"))
    assert outcome.kind is Outcome.ERROR and not outcome.ok
    assert outcome.error_type == "ValueError"
    # Lambda prints no Status for an error the handler raised
    assert "Status" not in report(outcome)


def test_error_type_falls_back_to_the_header_then_unknown() -> None:
    assert function_error_type(b"not json", "Function.X") == "Function.X"
    assert function_error_type(b'{"errorType": 3}', None) == "Runtime.Unknown"


def test_platform_outcomes_show_on_report() -> None:
    assert report(InvokeOutcome.timeout()).endswith("Status: timeout\t")
    crash = report(InvokeOutcome.crash("Runtime.ExitError"))
    assert crash.endswith("Status: error\tError Type: Runtime.ExitError\t")
    init = InvokeOutcome.init_failure("error", "Runtime.ImportModuleError")
    assert init.kind is Outcome.INIT_FAILURE
    assert report(init).endswith("Status: error\tError Type: Runtime.ImportModuleError\t")
    assert InvokeOutcome.init_failure("timeout", None).report_status == "timeout"
    assert InvokeOutcome.success().report_status is None and InvokeOutcome.success().ok
    assert InvokeOutcome.throttle("").error_type == "TooManyRequestsException"
