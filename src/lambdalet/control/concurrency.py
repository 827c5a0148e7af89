"""Concurrency accounting: the account limit, reserved and provisioned slices.  No I/O.

Lambda's model (contract §7.8, §4.6):

* the account has ``account_limit`` concurrent executions;
* a function with reserved concurrency ``R`` may run at most ``R`` at once, and those
  ``R`` are taken out of the pool every other function shares (the *unreserved* pool),
  which must keep at least ``min_unreserved``;
* provisioned concurrency counts against the function's reserved concurrency (or the
  unreserved pool when it has none); invokes served by provisioned environments use it,
  the rest (overflow, ``$LATEST``) run on demand in what remains.
"""

from __future__ import annotations

from collections import defaultdict

from lambdalet.errors import InvalidParameterValueException, TooManyRequestsException

RESERVED_LIMIT_EXCEEDED = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT_EXCEEDED = "ConcurrentInvocationLimitExceeded"


def default_min_unreserved(account_limit: int) -> int:
    """Lambda keeps 100 of the account's 1,000 unreserved; smaller test limits keep 10 %."""
    return min(100, account_limit // 10)


class ConcurrencyLimits:
    def __init__(self, account_limit: int, min_unreserved: int | None = None) -> None:
        self.account_limit = account_limit
        self.min_unreserved = (
            default_min_unreserved(account_limit) if min_unreserved is None else min_unreserved
        )
        self._reserved: dict[str, int] = {}
        #: function name → provisioned config key → environments
        self._provisioned: dict[str, dict[str, int]] = defaultdict(dict)
        #: on-demand executions running, per function
        self._busy: dict[str, int] = defaultdict(int)

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimits(account={self.account_limit}, unreserved={self.unreserved()}, "
            f"busy={sum(self._busy.values())})"
        )

    # ------------------------------------------------------------------ queries

    def reserved(self, name: str) -> int | None:
        return self._reserved.get(name)

    def provisioned_total(self, name: str) -> int:
        return sum(self._provisioned.get(name, {}).values())

    def unreserved(self) -> int:
        """UnreservedConcurrentExecutions: what functions without a reservation share."""
        taken = sum(self._reserved.values())
        taken += sum(
            self.provisioned_total(n) for n in list(self._provisioned) if n not in self._reserved
        )
        return self.account_limit - taken

    def busy(self, name: str) -> int:
        return self._busy.get(name, 0)

    # ------------------------------------------------------------------ validation

    def check_reserved(self, name: str, value: int) -> None:
        """PutFunctionConcurrency's rules: keep the unreserved minimum, cover provisioned."""
        others = sum(v for n, v in self._reserved.items() if n != name)
        others += sum(
            self.provisioned_total(n)
            for n in list(self._provisioned)
            if n not in self._reserved and n != name
        )
        if self.account_limit - others - value < self.min_unreserved:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of "
                f"[{self.min_unreserved}]."
            )
        if value < self.provisioned_total(name):
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function is less than the function's "
                f"provisioned concurrency [{self.provisioned_total(name)}]."
            )

    def check_provisioned(self, name: str, key: str, value: int) -> None:
        """PutProvisionedConcurrencyConfig's rules against reserved and account limits."""
        others = sum(v for k, v in self._provisioned.get(name, {}).items() if k != key)
        reserved = self._reserved.get(name)
        if reserved is not None:
            if others + value > reserved:
                raise InvalidParameterValueException(
                    "Requested Provisioned Concurrency should not be greater than the "
                    "reservedConcurrentExecution for function"
                )
            return
        available = self.unreserved() + self._provisioned.get(name, {}).get(key, 0)
        if available - value < self.min_unreserved:
            raise InvalidParameterValueException(
                "Specified ConcurrentExecutions for function is greater than account's "
                f"unreserved concurrency [{available - self.min_unreserved}]."
            )

    # ------------------------------------------------------------------ updates

    def set_reserved(self, name: str, value: int | None) -> None:
        if value is None:
            self._reserved.pop(name, None)
        else:
            self._reserved[name] = value

    def set_provisioned(self, name: str, key: str, value: int | None) -> None:
        slot = self._provisioned[name]
        if value is None:
            slot.pop(key, None)
        else:
            slot[key] = value
        if not slot:
            del self._provisioned[name]

    def forget(self, name: str) -> None:
        """A deleted function gives its reservation back."""
        self._reserved.pop(name, None)
        self._provisioned.pop(name, None)

    # ------------------------------------------------------------------ on-demand executions

    def reason_if_full(self, name: str) -> str | None:
        """Why another on-demand execution of ``name`` would be throttled, or None."""
        reserved = self._reserved.get(name)
        if reserved is not None:
            if self.busy(name) >= reserved - self.provisioned_total(name):
                return RESERVED_LIMIT_EXCEEDED
            return None
        shared = sum(b for n, b in self._busy.items() if n not in self._reserved)
        if shared >= self.unreserved():
            return ACCOUNT_LIMIT_EXCEEDED
        return None

    def take(self, name: str) -> None:
        """Count one on-demand execution, or raise 429 with Lambda's reason."""
        reason = self.reason_if_full(name)
        if reason is not None:
            raise TooManyRequestsException(reason)
        self._busy[name] += 1

    def give(self, name: str) -> None:
        left = self._busy.get(name, 0) - 1
        if left > 0:
            self._busy[name] = left
        else:
            self._busy.pop(name, None)

    def disabled(self, name: str) -> bool:
        """Reserved concurrency 0: the function is switched off (async events fail at once)."""
        return self._reserved.get(name) == 0
