"""Stack ownership and pruning decisions (pure functions, no server)."""

from __future__ import annotations

import re

from lambdalet.ops.stack import (
    LOGICAL_ID_TAG,
    SOURCE_TAG,
    STACK_TAG,
    owner_conflict,
    prune_decision,
    stack_tags,
    tags_to_set,
)

SRC = "/proj/shop/template.yaml"


def _tags(stack: str, source: str = SRC, lid: str = "Fn") -> dict[str, str]:
    return stack_tags(stack, lid, source)


def test_only_the_stacks_functions_that_the_template_dropped_are_deleted() -> None:
    deployed = {
        "kept-declared": _tags("shop"),
        "dropped": _tags("shop"),
        "dropped-too": {STACK_TAG: "shop"},  # tagged before the source tag existed
        "other-stack": _tags("blog"),
        "untagged": {},
        "user-tags-only": {"team": "shop"},
    }
    decision = prune_decision("shop", SRC, {"kept-declared", "not-deployed-yet"}, deployed)
    assert decision.delete == ["dropped", "dropped-too"]
    assert decision.kept == []


def test_same_stack_name_from_another_template_is_kept_and_said() -> None:
    deployed = {"theirs": _tags("app", "/other/app/template.yaml"), "mine": _tags("app", SRC)}
    decision = prune_decision("app", SRC, set(), deployed)
    assert decision.delete == ["mine"]
    [(name, why)] = decision.kept
    assert name == "theirs" and "/other/app/template.yaml" in why and "--stack-name" in why


def test_long_sources_are_cut_the_same_way_when_tagging_and_deciding() -> None:
    long_source = "/" + "d" * 300 + "/template.yaml"
    tags = stack_tags("s", "Fn", long_source)
    assert len(tags[SOURCE_TAG]) == 256 and tags[SOURCE_TAG].endswith("/template.yaml")
    assert prune_decision("s", long_source, set(), {"f": tags}).delete == ["f"]


def test_owner_conflict() -> None:
    assert owner_conflict("shop", "f", {}) is None
    assert owner_conflict("shop", "f", _tags("shop")) is None
    message = owner_conflict("shop", "f", _tags("blog"))
    assert message is not None and "'blog'" in message and "lambdalet delete blog" in message
    # not "--stack-name blog": deploying into the other stack would overwrite its function
    assert "--stack-name" not in message


def test_tags_to_set_leaves_other_tags_alone() -> None:
    wanted = _tags("shop", lid="New")
    current = {**_tags("shop", lid="Old"), "team": "x"}
    assert tags_to_set(current, wanted) == {LOGICAL_ID_TAG: "New"}
    assert tags_to_set(wanted, wanted) == {}


def test_physical_names_follow_cloudformation_and_never_collide_across_stacks() -> None:
    from lambdalet.ops.stack import physical_name

    a = physical_name("app-one", "HelloWorldFunction")
    b = physical_name("app-two", "HelloWorldFunction")
    assert re.fullmatch(r"app-one-HelloWorldFunction-[A-Z2-7]{12}", a), a
    assert a != b and physical_name("app-one", "HelloWorldFunction") == a  # stable
    long = physical_name("s" * 100, "L" * 100)
    assert len(long) == 64 and long.startswith("s" * 25 + "-" + "L" * 25 + "-")
    assert len(physical_name("short", "L" * 100)) == 64
