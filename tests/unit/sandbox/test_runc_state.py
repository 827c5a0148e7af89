"""The runc sandbox's state machine (pure), every pair of states."""

from __future__ import annotations

import itertools

import pytest

from lambdalet.sandbox.runc.state import (
    TRANSITIONS,
    InvalidTransition,
    SandboxState,
    advance,
)

S = SandboxState
ALLOWED = {
    (S.BUILDING, S.RUNNING),
    (S.BUILDING, S.AGENT_GONE),
    (S.BUILDING, S.DESTROYED),
    (S.RUNNING, S.FROZEN),
    (S.RUNNING, S.AGENT_GONE),
    (S.RUNNING, S.DESTROYED),
    (S.FROZEN, S.RUNNING),
    (S.FROZEN, S.AGENT_GONE),
    (S.FROZEN, S.DESTROYED),
    (S.AGENT_GONE, S.DESTROYED),
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_every_move_allowed_or_refused(current: SandboxState, new: SandboxState) -> None:
    if (current, new) in ALLOWED:
        assert advance(current, new) is new
    else:
        with pytest.raises(InvalidTransition, match=f"from {current} to {new}"):
            advance(current, new)


def test_every_state_has_its_rules() -> None:
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.DESTROYED] == frozenset()  # final


def test_alive_means_the_agent_may_answer() -> None:
    assert {s for s in S if s.alive} == {S.BUILDING, S.RUNNING, S.FROZEN}
