"""What a runtime family tells ``lambdalet runtimes`` and ``lambdalet doctor`` (no I/O).

Each family (Python, provided, Node.js) offers two functions: ``describe(config)``, one
:class:`RuntimeDescription` per runtime id it knows, and ``install(config, runtime_id,
say)``, which installs or updates one and returns its new description.
:mod:`lambdalet.runtimes.catalog` lists the families.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdalet.config import ServerConfig

Say = Callable[[str], None]

INSTALLED = "installed"
NOT_INSTALLED = "not installed"  # installed on first use, or by `lambdalet runtimes install`
BUILT_IN = "built in"  # nothing to install (provided.*)
UNAVAILABLE = "unavailable"  # cannot run here (e.g. refused by --python-fallback refuse)
#: the note of a runtime that is not installed yet
FIRST_USE_NOTE = "installed on first use, or now with: lambdalet runtimes install"


@dataclass(frozen=True)
class RuntimeDescription:
    runtime: str  # "python3.12"
    family: str  # "python" | "provided" | "nodejs"
    status: str  # INSTALLED | NOT_INSTALLED | BUILT_IN | UNAVAILABLE
    #: what the function runs on, e.g. "Python 3.12.1" or "the function's own bootstrap"
    runs_on: str
    #: the interpreter or binary it runs on ("" when none)
    path: str = ""
    #: True when it is the version the runtime id names; False for a fallback
    exact: bool = True
    #: pinned component versions: {"awslambdaric": "3.1.1", "boto3": "1.43.11", ...}
    components: Mapping[str, str] = field(default_factory=dict)
    #: what differs from AWS, or what happens on first use
    notes: Sequence[str] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {
            "Runtime": self.runtime,
            "Family": self.family,
            "Status": self.status,
            "RunsOn": self.runs_on,
            "Path": self.path,
            "Exact": self.exact,
            "Components": dict(self.components),
            "Notes": list(self.notes),
        }


@dataclass(frozen=True)
class Family:
    """One runtime family: which ids it owns and its two functions."""

    name: str
    owns: Callable[[str], bool]
    describe: Callable[[ServerConfig], list[RuntimeDescription]]
    install: Callable[[ServerConfig, str, Say], RuntimeDescription]
