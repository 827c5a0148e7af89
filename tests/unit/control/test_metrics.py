from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lambdalet.control.metrics import Metrics
from lambdalet.env.observer import InitReport, InvokeReport
from lambdalet.env.outcome import InvokeOutcome


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(m.render().decode())
        for s in fam.samples
    }


def test_reports_throttles_and_inits_become_metrics() -> None:
    m = Metrics(lambda: [])
    m.invoke_reported(InvokeReport("f", "$LATEST", 12.0, 80.0, InvokeOutcome.success(), 40))
    m.invoke_reported(InvokeReport("f", "$LATEST", 3000.0, None, InvokeOutcome.timeout(), 41))
    m.init_reported(InitReport("f", "$LATEST", "invoke", "on-demand", 55.0, "error"))
    m.throttled("f", "$LATEST", "ReservedFunctionConcurrentInvocationLimitExceeded")
    s = samples(m)
    assert s[("lambdalet_invocations_total", (("function", "f"), ("outcome", "success")))] == 1
    assert s[("lambdalet_invocations_total", (("function", "f"), ("outcome", "timeout")))] == 1
    assert (
        s[("lambdalet_errors_total", (("error_type", "Sandbox.Timedout"), ("function", "f")))] == 1
    )
    assert s[("lambdalet_cold_starts_total", (("function", "f"),))] == 1
    assert s[("lambdalet_invocation_duration_seconds_sum", (("function", "f"),))] == 3.012
    key = ("function", "f"), ("phase", "invoke"), ("status", "error")
    assert s[("lambdalet_init_duration_seconds_count", key)] == 1
    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert s[("lambdalet_throttles_total", (("function", "f"), ("reason", reason)))] == 1


def test_registries_are_separate() -> None:
    a, b = Metrics(lambda: []), Metrics(lambda: [])
    a.throttled("f", "$LATEST", "x")
    assert ("lambdalet_throttles_total", (("function", "f"), ("reason", "x"))) not in samples(b)


def test_a_handler_error_and_an_init_failure_are_errors_not_successes() -> None:
    m = Metrics(lambda: [])
    raised = InvokeOutcome.function_error("ValueError")
    m.invoke_reported(InvokeReport("f", "$LATEST", 5.0, None, raised, 40))
    failed = InvokeOutcome.init_failure("error", "Runtime.ImportModuleError")
    m.invoke_reported(InvokeReport("f", "$LATEST", 9.0, 7.0, failed, 40))
    s = samples(m)
    assert ("lambdalet_invocations_total", (("function", "f"), ("outcome", "success"))) not in s
    assert s[("lambdalet_invocations_total", (("function", "f"), ("outcome", "error")))] == 1
    assert s[("lambdalet_invocations_total", (("function", "f"), ("outcome", "init_failure")))] == 1
    assert s[("lambdalet_errors_total", (("error_type", "ValueError"), ("function", "f")))] == 1
    key = (("error_type", "Runtime.ImportModuleError"), ("function", "f"))
    assert s[("lambdalet_errors_total", key)] == 1
    # the failed Init began a cold start
    assert s[("lambdalet_cold_starts_total", (("function", "f"),))] == 1
