"""What every deploy step shares: DeployError (naming the resource and the step), the
results a deploy reports, and waiting for a function to settle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

Say = Callable[[str], None]


WAIT = {"Delay": 0.2, "MaxAttempts": 600}  # boto3 waiters: up to 2 minutes


class DeployError(Exception):
    """A deploy step failed; names the resource (logical ID) and what was being done."""

    def __init__(self, resource: str, step: str, message: str) -> None:
        self.resource = resource
        self.step = step
        super().__init__(f"{resource}: {step}: {message}")


@dataclass
class LayerResult:
    logicalId: str
    name: str
    arn: str
    action: str  # published | unchanged


@dataclass
class FunctionResult:
    logicalId: str
    name: str
    arn: str
    action: str  # created | updated | unchanged
    codeSha256: str
    changes: list[str] = field(default_factory=list)
    version: str | None = None
    alias: str | None = None
    provisionedConcurrency: int | None = None


@dataclass
class DeployResult:
    source: str
    layers: list[LayerResult]
    functions: list[FunctionResult]
    seconds: float = 0.0
    stack: str = ""
    deleted: list[str] = field(default_factory=list)  # functions the template dropped
    skipped: list[dict[str, str]] = field(default_factory=list)  # {logicalId, type}
    # uses of skipped resources: {logicalId, field, target, type, value}
    references: list[dict[str, str]] = field(default_factory=list)
    # triggers (ops/deploy_events.py): function URLs, SQS mappings, schedules, HTTP routes
    urls: list[dict[str, Any]] = field(default_factory=list)
    mappings: list[dict[str, Any]] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what lambdalet does not act on

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def deploy_error(resource: str, step: str, e: Exception) -> DeployError:
    from botocore.exceptions import ClientError, WaiterError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return DeployError(resource, step, f"{err.get('Code')}: {err.get('Message')}")
    if isinstance(e, WaiterError):
        last = e.last_response or {}
        reason = last.get("Configuration", last).get("StateReason") or last.get(
            "Configuration", last
        ).get("LastUpdateStatusReason")
        return DeployError(resource, step, f"{e}{f' ({reason})' if reason else ''}")
    return DeployError(resource, step, str(e))


def wait_updated(lam: Any, name: str) -> None:
    """Until the function's last update is done (boto3's ``function_updated_v2`` waiter)."""
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
