"""Tables and colours of the CLI: aligned plain text, ANSI codes only on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lambdalet.ops.client import Style, human_age, state_colour, table
from lambdalet.ops.settings import load

HOME = Path("/home/someone")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_colours_off_a_terminal() -> None:
    style = Style(io.StringIO())
    assert not style.on
    assert style.red("x") == "x"


def test_colours_on_a_terminal_unless_no_color() -> None:
    assert Style(_Tty(), load({}, HOME)).red("x") == "\x1b[31mx\x1b[0m"
    assert Style(_Tty(), load({"NO_COLOR": ""}, HOME)).on
    assert not Style(_Tty(), load({"NO_COLOR": "1"}, HOME)).on


def test_table_aligns_columns() -> None:
    out = table(["A", "LONGER"], [["wide cell", "1"], ["x", "22"]], Style(io.StringIO()))
    assert out.splitlines() == ["A          LONGER", "wide cell  1", "x          22"]


def test_coloured_cells_keep_alignment() -> None:
    style = Style(_Tty(), load({}, HOME))
    out = table(
        ["STATE", "N"],
        [["Idle", "1"], ["Invoking", "2"]],
        style,
        lambda col, cell, padded: state_colour(style, cell)(padded) if col == 0 else padded,
    )
    lines = out.splitlines()
    assert lines[1] == "\x1b[32mIdle    \x1b[0m  1"
    assert lines[2] == "\x1b[33mInvoking\x1b[0m  2"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(1.234, "1.2s"), (42, "42s"), (125, "2m05s"), (7322, "2h02m")]
)
def test_human_age(seconds: float, shown: str) -> None:
    assert human_age(seconds) == shown
