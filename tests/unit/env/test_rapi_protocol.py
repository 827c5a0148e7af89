from __future__ import annotations

import json

from lambdalet.env import rapi_protocol as rp


def test_event_headers_carry_everything_clients_need() -> None:
    ev = rp.Event(
        request_id="8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        payload=b"{}",
        deadline_ms=1542409706888,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        trace_id="Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=0",
        client_context='{"custom":{"a":1}}',
    )
    h = ev.headers()
    assert h["Content-Type"] == "application/json"
    assert h["Lambda-Runtime-Aws-Request-Id"] == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert h["Lambda-Runtime-Deadline-Ms"] == "1542409706888"
    assert h["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:f")
    assert h["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert h["Lambda-Runtime-Client-Context"] == '{"custom":{"a":1}}'
    assert "Lambda-Runtime-Cognito-Identity" not in h


def test_error_bodies() -> None:
    assert json.loads(rp.INVALID_REQUEST_ID.body()) == {
        "errorMessage": "Invalid request ID",
        "errorType": "InvalidRequestID",
    }
    assert rp.PAYLOAD_TOO_LARGE.status == 413
    assert json.loads(rp.PAYLOAD_TOO_LARGE.body())["errorMessage"] == (
        "Exceeded maximum allowed payload size (6291556 bytes)."
    )
    t = rp.invalid_transition("RuntimeResponseSentState", "InvocationResponse")
    assert t.status == 403 and t.error_type == "InvalidStateTransition"
    assert "from RuntimeResponseSentState to InvocationResponse" in t.message


def test_internal_error_type() -> None:
    assert rp.internal_error_type(None) == "Runtime.Unknown"
    assert rp.internal_error_type("Unhandled") == "Runtime.Unknown"
    assert rp.internal_error_type("Runtime.ImportModuleError") == "Runtime.ImportModuleError"
    assert rp.internal_error_type("Function.x") == "Function.Unknown"


def test_caller_error_body_passes_verbatim_or_fills_in() -> None:
    body = b'{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}'
    assert rp.caller_error_body(body, "application/json", None) == body
    assert json.loads(rp.caller_error_body(b"", None, "Custom.Err")) == {
        "errorMessage": "Unknown application error occurred",
        "errorType": "Custom.Err",
    }
    assert json.loads(rp.caller_error_body(b"", None, None)) == {
        "errorMessage": "Unknown application error occurred"
    }
    cause = b'{"errorMessage":"m","errorType":"T","stackTrace":[],"errorCause":{"x":1}}'
    out = json.loads(rp.caller_error_body(cause, rp.ERROR_CAUSE_CONTENT_TYPE, None))
    assert "errorCause" not in out and out["errorType"] == "T"


def test_function_error_texts() -> None:
    assert json.loads(rp.timed_out("id1", 3)) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: id1 Error: Task timed out after 3.00 seconds",
    }
    assert json.loads(rp.exit_error("id1", "exit status 1"))["errorMessage"] == (
        "RequestId: id1 Error: Runtime exited with error: exit status 1"
    )
    assert json.loads(rp.exit_error("id1", "exit status 0"))["errorMessage"] == (
        "RequestId: id1 Error: Runtime exited without providing a reason"
    )
    assert json.loads(rp.exit_error("id1", "signal: killed"))["errorType"] == "Runtime.ExitError"
    assert json.loads(rp.response_too_large()) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        "(6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
