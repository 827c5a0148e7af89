from __future__ import annotations

from pathlib import Path

import pytest

from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.store.test_events import TestEvents


def test_saved_events_per_function_survive_a_new_instance(tmp_path: Path) -> None:
    events = TestEvents(tmp_path / "te")
    assert events.list("f") == {}
    events.put("f", "hello", {"a": 1})
    events.put("f", "other", [1, 2])
    events.put("g", "hello", "x")
    again = TestEvents(tmp_path / "te")
    assert again.list("f") == {"hello": {"a": 1}, "other": [1, 2]}
    again.delete("f", "hello")
    assert TestEvents(tmp_path / "te").list("f") == {"other": [1, 2]}
    with pytest.raises(ResourceNotFoundException):
        again.delete("f", "hello")


@pytest.mark.parametrize(("function", "name"), [("../x", "a"), ("f", "a b"), ("f", "")])
def test_bad_names_are_refused(tmp_path: Path, function: str, name: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        TestEvents(tmp_path).put(function, name, {})
