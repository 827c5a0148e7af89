"""Every event in every state of both lifecycle machines."""

from __future__ import annotations

import itertools

import pytest

from lambdalet.env.lifecycle import (
    ENV_TABLE,
    RUNTIME_TABLE,
    EnvEvent,
    EnvState,
    Machine,
    RuntimeEvent,
    RuntimeState,
    TransitionRefused,
    env_machine,
    runtime_machine,
)

S, E = EnvState, EnvEvent

# The lifecycle written out independently of the implementation's table: a change
# to either must be deliberate.
EXPECTED_ENV: dict[tuple[EnvState, EnvEvent], EnvState] = {
    (S.CREATED, E.INIT): S.INITIALIZING,
    (S.CREATED, E.INIT_FAILED): S.RESETTING,
    (S.CREATED, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.INITIALIZING, E.INIT_DONE): S.IDLE,
    (S.INITIALIZING, E.INIT_FAILED): S.RESETTING,
    (S.INITIALIZING, E.CRASH): S.RESETTING,
    (S.INITIALIZING, E.TIMEOUT): S.RESETTING,
    (S.INITIALIZING, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.IDLE, E.INVOKE): S.INVOKING,
    (S.IDLE, E.CRASH): S.RESETTING,
    (S.IDLE, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.INVOKING, E.RESPONSE): S.RESPONDED,
    (S.INVOKING, E.TIMEOUT): S.RESETTING,
    (S.INVOKING, E.CRASH): S.RESETTING,
    (S.INVOKING, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.RESPONDED, E.INVOKE_DONE): S.IDLE,
    (S.RESPONDED, E.TIMEOUT): S.RESETTING,
    (S.RESPONDED, E.CRASH): S.RESETTING,
    (S.RESPONDED, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.RESETTING, E.RESET_DONE): S.NEEDS_INIT,
    (S.RESETTING, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.NEEDS_INIT, E.INIT): S.INITIALIZING,
    (S.NEEDS_INIT, E.SHUTDOWN): S.SHUTTING_DOWN,
    (S.SHUTTING_DOWN, E.SHUTDOWN_DONE): S.DEAD,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(EnvState, EnvEvent)))
def test_every_env_event_in_every_state(state: EnvState, event: EnvEvent) -> None:
    m = env_machine()
    m.state = state
    expected = EXPECTED_ENV.get((state, event))
    if expected is None:
        with pytest.raises(TransitionRefused) as info:
            m.fire(event)
        assert state.value in str(info.value) and event.value in str(info.value)
        assert m.state is state, "a refused event must not move the machine"
        assert not m.allows(event)
    else:
        assert m.allows(event)
        assert m.fire(event) is expected


def test_table_matches_expected_exactly() -> None:
    assert dict(ENV_TABLE) == EXPECTED_ENV


def test_dead_is_terminal() -> None:
    assert not [k for k in ENV_TABLE if k[0] is S.DEAD]


def test_every_state_reachable_from_created() -> None:
    seen = {S.CREATED}
    frontier = [S.CREATED]
    while frontier:
        s = frontier.pop()
        for (src, _), dst in ENV_TABLE.items():
            if src is s and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(EnvState)


def test_every_live_state_can_shut_down() -> None:
    for s in EnvState:
        if s not in (S.SHUTTING_DOWN, S.DEAD):
            assert (s, E.SHUTDOWN) in ENV_TABLE, s


R, RE = RuntimeState, RuntimeEvent

EXPECTED_RUNTIME: dict[tuple[RuntimeState, RuntimeEvent], RuntimeState] = {
    (R.STARTED, RE.NEXT): R.READY,
    (R.STARTED, RE.INIT_ERROR): R.INIT_ERROR,
    (R.READY, RE.NEXT): R.READY,
    (R.READY, RE.EVENT): R.RUNNING,
    (R.RUNNING, RE.NEXT): R.RUNNING,
    (R.RUNNING, RE.RESPONSE): R.RESPONSE_SENT,
    (R.RUNNING, RE.ERROR): R.RESPONSE_SENT,
    (R.RESPONSE_SENT, RE.NEXT): R.READY,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(RuntimeState, RuntimeEvent)))
def test_every_runtime_event_in_every_state(state: RuntimeState, event: RuntimeEvent) -> None:
    m = runtime_machine()
    m.state = state
    expected = EXPECTED_RUNTIME.get((state, event))
    if expected is None:
        with pytest.raises(TransitionRefused):
            m.fire(event)
        assert m.state is state
    else:
        assert m.fire(event) is expected


def test_runtime_table_matches_expected_exactly() -> None:
    assert dict(RUNTIME_TABLE) == EXPECTED_RUNTIME


def test_second_response_is_refused() -> None:
    m = runtime_machine()
    for ev in (RE.NEXT, RE.EVENT, RE.RESPONSE):
        m.fire(ev)
    with pytest.raises(TransitionRefused):
        m.fire(RE.RESPONSE)
    with pytest.raises(TransitionRefused):
        m.fire(RE.ERROR)


def test_init_error_only_before_first_next() -> None:
    m = runtime_machine()
    m.fire(RE.NEXT)
    assert not m.allows(RE.INIT_ERROR)


def test_repr_shows_state() -> None:
    m: Machine[EnvState, EnvEvent] = env_machine()
    assert "Created" in repr(m)
