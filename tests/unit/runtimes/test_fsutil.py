"""The installers' file steps: candidates taken once per real file."""

from __future__ import annotations

from pathlib import Path

from lambdalet.runtimes.fsutil import distinct_real


def test_distinct_real_skips_missing_and_repeated(tmp_path: Path) -> None:
    real = tmp_path / "python3.11"
    real.write_text("")
    link = tmp_path / "python3"
    link.symlink_to(real)
    other = tmp_path / "python3.12"
    other.write_text("")
    paths = [tmp_path / "missing", link, real, other, link]
    assert list(distinct_real(paths)) == [(link, real), (other, other)]
