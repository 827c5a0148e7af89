"""Stacks: which functions a deploy owns, and which it deletes because the template dropped them.

A deploy belongs to a stack (``--stack-name``, by default the template's folder name).  Every
function it creates or updates carries three tags: the stack, its logical ID and the template
file it came from.  At the end of a deploy the functions tagged with the stack that the template
no longer declares are deleted, like a CloudFormation stack update removes dropped resources.
Functions without the stack's tag are never deleted.  A function tagged with the stack but
deployed from another template file (two projects in folders of the same name) is kept and
reported instead, so one project cannot delete another's functions by accident.

Layer versions are immutable and may still be used by other functions: they are not deleted.

The decisions are pure functions; :func:`prune` does the API calls.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

STACK_TAG = "lambdalet:stack"
LOGICAL_ID_TAG = "lambdalet:logical-id"
SOURCE_TAG = "lambdalet:source"
_TAG_VALUE_MAX = 256
#: Lambda's limit on a function name
_NAME_MAX = 64
_SUFFIX_LEN = 12


def physical_name(stack: str, logical_id: str) -> str:
    """The name of a function whose template sets no ``FunctionName``.

    CloudFormation's pattern, ``<stack>-<LogicalId>-<SUFFIX>``, cut to Lambda's 64
    characters, so that two stacks' ``HelloWorldFunction`` never collide.  CloudFormation's
    suffix is random and remembered in the stack; here it is derived from the stack and
    the logical ID (12 characters of base32 of their SHA-256), so every deploy of the stack
    finds its functions again with no state kept.
    """
    digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).digest()
    suffix = base64.b32encode(digest).decode()[:_SUFFIX_LEN]
    room = _NAME_MAX - len(suffix) - 2
    lid = logical_id[: max(room - len(stack), room // 2)]
    return f"{stack[: room - len(lid)]}-{lid}-{suffix}"


def stack_tags(stack: str, logical_id: str, source: str) -> dict[str, str]:
    """The tags a deploy puts on a function it creates or updates."""
    if len(source) > _TAG_VALUE_MAX:
        source = "…" + source[-(_TAG_VALUE_MAX - 1) :]
    return {STACK_TAG: stack, LOGICAL_ID_TAG: logical_id, SOURCE_TAG: source}


def owner_conflict(stack: str, name: str, tags: Mapping[str, str]) -> str | None:
    """Why this stack may not take over the function, or None (untagged or already its own)."""
    owner = tags.get(STACK_TAG)
    if owner is None or owner == stack:
        return None
    return (
        f"function {name} belongs to stack {owner!r} (tag {STACK_TAG}); two stacks cannot "
        f"share a FunctionName: give this one another FunctionName (or leave it out, and "
        f"the stack names it), or delete the other with `lambdalet delete {owner}`"
    )


def tags_to_set(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted tags the function does not have yet (other tags are left alone)."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


@dataclass(frozen=True)
class PruneDecision:
    delete: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (function, why)


def prune_decision(
    stack: str,
    source: str,
    declared: Collection[str],
    deployed: Mapping[str, Mapping[str, str]],
) -> PruneDecision:
    """Which of the ``deployed`` functions (name -> tags) to delete after deploying ``declared``.

    ``source`` is the template's tag value (:func:`stack_tags`).
    """
    this_source = stack_tags(stack, "", source)[SOURCE_TAG]
    decision = PruneDecision()
    for name in sorted(deployed):
        tags = deployed[name]
        if tags.get(STACK_TAG) != stack or name in declared:
            continue
        other = tags.get(SOURCE_TAG)
        if other is not None and other != this_source:
            decision.kept.append(
                (
                    name,
                    f"tagged with stack {stack} but deployed from {other}; give this "
                    f"template its own --stack-name, or delete {name} yourself",
                )
            )
            continue
        decision.delete.append(name)
    return decision


def deployed_functions(lam: Any) -> dict[str, dict[str, str]]:
    """Every function on the server ($LATEST), with its tags."""
    out: dict[str, dict[str, str]] = {}
    for page in lam.get_paginator("list_functions").paginate():
        for fn in page.get("Functions", []):
            tags = lam.list_tags(Resource=fn["FunctionArn"]).get("Tags", {})
            out[fn["FunctionName"]] = dict(tags)
    return out


def prune(
    lam: Any,
    stack: str,
    source: str,
    declared: Collection[str],
    say: Callable[[str], None],
) -> list[str]:
    """Delete the stack's functions the template no longer declares; returns their names."""
    decision = prune_decision(stack, source, declared, deployed_functions(lam))
    for name, why in decision.kept:
        say(f"kept function {name}: {why}")
    for name in decision.delete:
        say(f"deleting function {name}: stack {stack} no longer declares it")
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):  # deleted meanwhile
            lam.delete_function(FunctionName=name)
    return decision.delete


# --------------------------------------------------------------------------- stacks on a server


@dataclass(frozen=True)
class StackInfo:
    name: str
    functions: dict[str, str]  # function name -> logical ID
    sources: tuple[str, ...]  # the template files it was deployed from


def stacks_of(deployed: Mapping[str, Mapping[str, str]]) -> dict[str, StackInfo]:
    """The stacks the functions' tags name (pure)."""
    functions: dict[str, dict[str, str]] = {}
    sources: dict[str, set[str]] = {}
    for name, tags in deployed.items():
        stack = tags.get(STACK_TAG)
        if stack is None:
            continue
        functions.setdefault(stack, {})[name] = tags.get(LOGICAL_ID_TAG, "")
        if tags.get(SOURCE_TAG):
            sources.setdefault(stack, set()).add(tags[SOURCE_TAG])
    return {
        s: StackInfo(s, dict(sorted(fns.items())), tuple(sorted(sources.get(s, ()))))
        for s, fns in sorted(functions.items())
    }


def by_logical_id(
    deployed: Mapping[str, Mapping[str, str]], stack: str, logical_id: str
) -> str | None:
    """The name of the stack's function with this logical ID, if there is one (pure)."""
    for name, tags in sorted(deployed.items()):
        if tags.get(STACK_TAG) == stack and tags.get(LOGICAL_ID_TAG) == logical_id:
            return name
    return None


def delete_stack(lam: Any, stack: str, say: Callable[[str], None]) -> list[str]:
    """Delete every function tagged with the stack; returns their names."""
    info = stacks_of(deployed_functions(lam)).get(stack)
    if info is None:
        return []
    for name in info.functions:
        say(f"deleting function {name}")
        with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
            lam.delete_function(FunctionName=name)
    return list(info.functions)
