"""Concurrency accounting (contract §7.8): account limit, reservations, provisioned slices."""

from __future__ import annotations

import pytest

from lambdalet.control.concurrency import (
    ACCOUNT_LIMIT_EXCEEDED,
    RESERVED_LIMIT_EXCEEDED,
    ConcurrencyLimits,
    default_min_unreserved,
)
from lambdalet.errors import InvalidParameterValueException, TooManyRequestsException


@pytest.mark.parametrize(("limit", "minimum"), [(1000, 100), (5000, 100), (50, 5), (3, 0)])
def test_default_unreserved_minimum(limit: int, minimum: int) -> None:
    assert default_min_unreserved(limit) == minimum
    assert ConcurrencyLimits(limit).min_unreserved == minimum


def test_reservations_come_out_of_the_unreserved_pool() -> None:
    limits = ConcurrencyLimits(1000)
    assert limits.unreserved() == 1000
    limits.check_reserved("a", 900)  # leaves exactly the minimum of 100
    limits.set_reserved("a", 900)
    assert (limits.reserved("a"), limits.unreserved()) == (900, 100)
    with pytest.raises(InvalidParameterValueException) as info:
        limits.check_reserved("b", 1)
    assert info.value.message == (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    # changing a's own reservation does not count the old value twice
    limits.check_reserved("a", 900)
    limits.set_reserved("a", None)
    assert limits.unreserved() == 1000


def test_provisioned_counts_against_the_pool_it_lives_in() -> None:
    limits = ConcurrencyLimits(1000)
    limits.set_provisioned("free", "free:1", 50)
    assert limits.unreserved() == 950 and limits.provisioned_total("free") == 50
    limits.set_reserved("r", 10)
    limits.set_provisioned("r", "r:1", 4)
    # inside r's reservation: not taken from the unreserved pool a second time
    assert limits.unreserved() == 940
    with pytest.raises(InvalidParameterValueException) as info:
        limits.check_reserved("r", 3)
    assert info.value.message == (
        "Specified ReservedConcurrentExecutions for function is less than the function's "
        "provisioned concurrency [4]."
    )
    with pytest.raises(InvalidParameterValueException) as info:
        limits.check_provisioned("r", "r:live", 7)
    assert info.value.message == (
        "Requested Provisioned Concurrency should not be greater than the "
        "reservedConcurrentExecution for function"
    )
    limits.check_provisioned("r", "r:1", 10)  # resizing its own config within the reservation
    with pytest.raises(InvalidParameterValueException) as info:
        limits.check_provisioned("free", "free:1", 891)
    assert info.value.message == (
        "Specified ConcurrentExecutions for function is greater than account's "
        "unreserved concurrency [890]."
    )
    limits.check_provisioned("free", "free:1", 890)
    limits.set_provisioned("free", "free:1", None)
    assert limits.provisioned_total("free") == 0 and limits.unreserved() == 990
    limits.forget("r")
    assert limits.unreserved() == 1000 and limits.reserved("r") is None


def test_reserved_concurrency_throttles_with_its_reason() -> None:
    limits = ConcurrencyLimits(1000)
    limits.set_reserved("r", 2)
    limits.take("r")
    limits.take("r")
    assert limits.busy("r") == 2
    with pytest.raises(TooManyRequestsException) as info:
        limits.take("r")
    err = info.value
    assert (err.status, err.error_type) == (429, "TooManyRequestsException")
    assert err.body() == {
        "Type": "User",
        "message": "Rate Exceeded.",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    }
    assert err.headers()["Retry-After"] == "1"
    limits.give("r")
    assert limits.reason_if_full("r") is None
    limits.take("r")
    # provisioned environments take their share of the reservation
    limits.give("r")
    limits.set_provisioned("r", "r:1", 1)
    assert limits.reason_if_full("r") == RESERVED_LIMIT_EXCEEDED


def test_the_account_limit_is_shared_by_unreserved_functions() -> None:
    limits = ConcurrencyLimits(10, min_unreserved=2)
    limits.set_reserved("r", 7)  # 3 left for everyone else
    for name in ("a", "b", "a"):
        limits.take(name)
    for name in ("a", "c"):
        with pytest.raises(TooManyRequestsException) as info:
            limits.take(name)
        assert info.value.extra["Reason"] == ACCOUNT_LIMIT_EXCEEDED
    # the reserved function still has its own slice
    limits.take("r")
    limits.give("b")
    assert limits.reason_if_full("c") is None
    limits.give("a")
    limits.give("a")
    limits.give("a")  # more gives than takes never go negative
    assert limits.busy("a") == 0


def test_reserved_zero_disables_the_function() -> None:
    limits = ConcurrencyLimits(1000)
    assert not limits.disabled("f")
    limits.set_reserved("f", 0)
    assert limits.disabled("f")
    assert limits.reason_if_full("f") == RESERVED_LIMIT_EXCEEDED
    assert "unreserved=1000" in repr(limits)
