"""`raftoral-lab bench core`: the command runs end to end and prints its rows.

Speed is never asserted (DESIGN.md section 7): the sizes are tiny, only the table's shape and
that each figure is a positive number are checked.
"""

from __future__ import annotations

import re

import pytest

from raftoral_lab.cli.main import main

TINY = ["--entries", "200", "--burst", "20", "--ticks", "100"]


def value_of(out: str, row: str) -> float:
    match = re.search(rf"^{re.escape(row)}.*?\s([\d,.]+)\s", out, flags=re.MULTILINE)
    assert match is not None, f"no row {row!r} in:\n{out}"
    return float(match.group(1).replace(",", ""))


def test_bench_core_prints_the_committed_and_idle_tick_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "core", *TINY]) == 0
    out = capsys.readouterr().out
    assert "bursts of 20" in out, out
    for row in ("committed entries/s", "idle ticks/s"):
        assert value_of(out, row) > 0, out
