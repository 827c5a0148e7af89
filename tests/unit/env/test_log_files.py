"""Function log files: rotation under the per-function cap, reading in order, removal."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from lambdalet.env.log_files import (
    FunctionLog,
    LogLimits,
    log_files,
    log_path,
    logged_functions,
    remove_logs,
)


def _total(logs_dir: Path, name: str) -> int:
    return sum(p.stat().st_size for p in log_files(logs_dir, name))


def _read(logs_dir: Path, name: str) -> bytes:
    """A function's log, its rotated files first."""
    return b"".join(p.read_bytes() for p in log_files(logs_dir, name))


def test_a_flood_stays_under_the_cap_and_keeps_the_newest_lines(tmp_path: Path) -> None:
    limits = LogLimits(max_bytes=1000, backups=2)
    flog = FunctionLog(tmp_path, "fn", limits)
    for i in range(5000):  # ~60 KB of lines into a 3 KB budget
        flog.write(f"line {i:06d}\n".encode())
    flog.close()
    names = [p.name for p in log_files(tmp_path, "fn")]
    assert names == ["fn.log.2", "fn.log.1", "fn.log"]
    assert _total(tmp_path, "fn") <= limits.total_bytes
    text = b"".join(p.read_bytes() for p in log_files(tmp_path, "fn")).decode()
    lines = text.splitlines()
    assert lines[-1] == "line 004999"
    # oldest first, no gap: the kept lines are consecutive
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 5000))
    assert len(lines) >= 2 * 1000 // 12


def test_one_write_bigger_than_a_file_keeps_its_tail(tmp_path: Path) -> None:
    flog = FunctionLog(tmp_path, "fn", LogLimits(max_bytes=100, backups=1))
    flog.write(b"a" * 50)
    flog.write(b"x" * 10_000 + b"END\n")
    flog.close()
    assert _total(tmp_path, "fn") <= 200
    assert log_path(tmp_path, "fn").read_bytes().endswith(b"END\n")
    assert log_path(tmp_path, "fn").stat().st_size == 100


def test_reading_without_a_current_file_keeps_every_rotated_one(tmp_path: Path) -> None:
    flog = FunctionLog(tmp_path, "fn", LogLimits(max_bytes=10, backups=2))
    for line in (b"one\n", b"two two\n", b"three\n"):
        flog.write(line)
    flog.close()
    log_path(tmp_path, "fn").unlink()  # between a rotation's rename and the new file
    assert _read(tmp_path, "fn") == b"one\ntwo two\n"


def test_no_backups_means_one_file(tmp_path: Path) -> None:
    flog = FunctionLog(tmp_path, "fn", LogLimits(max_bytes=100, backups=0))
    for _ in range(50):
        flog.write(b"0123456789\n")
    flog.close()
    assert [p.name for p in log_files(tmp_path, "fn")] == ["fn.log"]
    assert _total(tmp_path, "fn") <= 100


def test_files_are_private(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    old = log_path(logs, "fn")
    logs.mkdir()
    old.write_bytes(b"from before\n")
    old.chmod(0o644)
    flog = FunctionLog(logs, "fn", LogLimits(max_bytes=20, backups=1))
    flog.write(b"0123456789\n")  # rotates: the new file is created here
    flog.close()
    for p in log_files(logs, "fn"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    fresh = FunctionLog(tmp_path / "new", "g", LogLimits())
    fresh.close()
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_remove_takes_every_file_of_one_function_only(tmp_path: Path) -> None:
    for name in ("fn", "fn-2"):
        flog = FunctionLog(tmp_path, name, LogLimits(max_bytes=10, backups=3))
        for _ in range(10):
            flog.write(b"123456789\n")
        flog.close()
    assert logged_functions(tmp_path) == {"fn", "fn-2"}
    assert remove_logs(tmp_path, "fn") > 0
    assert log_files(tmp_path, "fn") == []
    assert len(log_files(tmp_path, "fn-2")) == 4
    assert logged_functions(tmp_path) == {"fn-2"}


def test_a_failed_rotation_does_not_end_the_log(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    flog = FunctionLog(logs, "fn", LogLimits(max_bytes=10, backups=1))
    flog.write(b"123456789\n")
    logs.chmod(0o500)  # as on a full disk: the new file cannot be created
    try:
        if os.geteuid() == 0:  # root ignores the mode: make the rename fail instead
            log_path(logs, "fn").with_name("fn.log.1").mkdir()
            (log_path(logs, "fn").with_name("fn.log.1") / "x").touch()
        flog.write(b"lost\n")
    finally:
        logs.chmod(0o700)
        shutil.rmtree(logs / "fn.log.1", ignore_errors=True)
    flog.write(b"back\n")
    flog.close()
    assert b"back\n" in _read(logs, "fn")


def test_writes_after_close_are_dropped(tmp_path: Path) -> None:
    flog = FunctionLog(tmp_path, "fn", LogLimits())
    flog.close()
    remove_logs(tmp_path, "fn")
    flog.write(b"late\n")
    assert log_files(tmp_path, "fn") == []
