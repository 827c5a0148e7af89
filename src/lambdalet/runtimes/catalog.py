"""Every runtime family lambdalet runs, for ``lambdalet runtimes`` and ``lambdalet doctor``.

A family is a :class:`~lambdalet.runtimes.description.Family`: the ids it owns, a
``describe`` and an ``install`` function.
"""

from __future__ import annotations

from lambdalet.config import ServerConfig
from lambdalet.runtimes import node, provided, python
from lambdalet.runtimes.description import Family, RuntimeDescription, Say

FAMILIES: tuple[Family, ...] = (
    Family("python", python.is_python_runtime, python.describe, python.install),
    Family("nodejs", node.is_node_runtime, node.describe, node.install),
    Family("provided", provided.is_provided_runtime, provided.describe, provided.install),
)


class UnknownRuntime(ValueError):
    """A runtime id no family owns."""


def family_of(runtime_id: str, families: tuple[Family, ...] = FAMILIES) -> Family:
    for family in families:
        if family.owns(runtime_id):
            return family
    names = ", ".join(f.name for f in families)
    raise UnknownRuntime(f"unknown runtime {runtime_id!r} (lambdalet runs these families: {names})")


def describe_all(
    config: ServerConfig, families: tuple[Family, ...] = FAMILIES
) -> list[RuntimeDescription]:
    """Every runtime of every family, in family order."""
    out: list[RuntimeDescription] = []
    for family in families:
        out.extend(family.describe(config))
    return out


def install(config: ServerConfig, runtime_id: str, say: Say) -> RuntimeDescription:
    """Install or update one runtime (its family's ``install``)."""
    return family_of(runtime_id).install(config, runtime_id, say)
