"""The replica-to-worker hop's encoding: requests, outcomes and errors survive the trip."""

from __future__ import annotations

from pathlib import Path

from lambdalet.api import render
from lambdalet.cluster import protocol
from lambdalet.errors import ResourceNotFoundException, TooManyRequestsException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput


def record() -> FunctionRecord:
    return FunctionRecord(
        name="fn",
        version="3",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        runtime="python3.12",
        handler="app.handler",
        role="r",
        memory_mb=128,
        timeout_s=3,
        ephemeral_mb=512,
        environment={},
        layers=(),
        code_dir=Path("/nowhere"),
        code_sha256="x",
        code_size=1,
        revision_id="rev-1",
    )


def test_request_round_trip() -> None:
    request = InvokeInput(
        function=record(),
        invoked_arn="arn:aws:lambda:us-east-1:123456789012:function:fn:live",
        request_id="req-1",
        payload=b'{"a": 1}',
        client_context='{"custom": {"é": 1}}',
        log_tail=True,
        trace_id="Root=1-abc",
    )
    headers = protocol.request_headers(request, "secret")
    assert headers[protocol.TOKEN_HEADER] == "secret"
    routed = protocol.parse_request(headers, request.payload)
    assert (routed.function_name, routed.version, routed.revision_id) == ("fn", "3", "rev-1")
    assert routed.invoked_arn == request.invoked_arn and routed.request_id == "req-1"
    assert routed.client_context == request.client_context
    assert routed.log_tail and routed.trace_id == "Root=1-abc"
    assert routed.payload == b'{"a": 1}'


def test_output_round_trip() -> None:
    out = InvokeOutput(b"boom", "3", function_error="Unhandled", log_result="bG9n")
    back = protocol.parse_output(protocol.output_headers(out), out.payload)
    assert back == InvokeOutput(b"boom", "3", "Unhandled", "bG9n", "application/json")


def test_errors_come_back_as_the_same_class() -> None:
    for err in (
        TooManyRequestsException("ReservedFunctionConcurrentInvocationLimitExceeded"),
        ResourceNotFoundException("Function not found: fn"),
    ):
        resp = render.error(err)
        assert isinstance(resp.body, bytes)
        error_type = resp.headers["X-Amzn-ErrorType"]
        back = protocol.parse_error(error_type, resp.body, type(err).__name__)
        assert type(back) is type(err)
        # without the class (another version's worker): the most general of that type
        assert isinstance(protocol.parse_error(error_type, resp.body), type(err))
        assert (back.status, back.message, back.extra) == (err.status, err.message, err.extra)
