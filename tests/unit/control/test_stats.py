from __future__ import annotations

from lambdalet.control.stats import BUCKET_S, FunctionStats, percentile
from lambdalet.env.observer import InvokeReport
from lambdalet.env.outcome import InvokeOutcome


def test_percentiles_are_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0


def test_counts_per_function_and_bucket_with_errors_throttles_and_cold_starts() -> None:
    now = [1000.0]
    stats = FunctionStats(lambda: now[0])
    ok = InvokeOutcome.success()
    stats.invoke_reported(InvokeReport("f", "$LATEST", 10.0, 50.0, ok, 40))
    stats.invoke_reported(InvokeReport("f", "$LATEST", 30.0, None, ok, 40))
    now[0] += BUCKET_S
    raised = InvokeOutcome.function_error("ValueError")
    stats.invoke_reported(InvokeReport("f", "$LATEST", 20.0, None, raised, 40))
    stats.throttled("f", "$LATEST", "ReservedFunctionConcurrentInvocationLimitExceeded")
    f = stats.snapshot()["Functions"]["f"]
    assert (f["invocations"], f["errors"], f["throttles"], f["coldStarts"]) == (3, 1, 1, 1)
    assert f["errorTypes"] == {"ValueError": 1} and f["outcomes"] == {"success": 2, "error": 1}
    assert (f["p50"], f["p99"]) == (20.0, 30.0)
    first, second = f["series"]
    assert (first["t"], first["invocations"], first["coldStarts"], first["p99"]) == (
        1000,
        2,
        1,
        30.0,
    )
    assert (second["errors"], second["throttles"], second["p50"]) == (1, 1, 20.0)


def test_recent_invocations_show_one_outcome_per_invoke_throttles_included() -> None:
    from lambdalet.control.admin import RecentInvocations

    recent = RecentInvocations()
    raised = InvokeOutcome.function_error("ValueError")
    recent.invoke_reported(
        InvokeReport("f", "$LATEST", 5.0, 9.5, raised, 40, request_id="r1", log_stream="s")
    )
    recent.throttled("f", "$LATEST", "ReservedFunctionConcurrentInvocationLimitExceeded")
    throttle, error = recent.items()
    assert (error["status"], error["errorType"], error["cold"]) == ("error", "ValueError", True)
    assert (error["initDurationMs"], error["logStream"]) == (9.5, "s")
    assert throttle["status"] == "throttle" and throttle["requestId"] is None
    assert throttle["errorType"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
