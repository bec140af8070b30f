"""`raftoral-lab bench dashboard`: a 5-second smoke run with small numbers.

Speed is never asserted (DESIGN.md section 7); what is checked is that the run measures what
the demo does: a dashboard attached to a Bokeh document (patches were serialized), fed from a
bounded event log, with short workflows starting and finishing besides the long ones.
"""

from __future__ import annotations

import re

import pytest

from raftoral_lab.cli.main import main


def _value(output: str, measure: str) -> str:
    found = re.search(rf"^{re.escape(measure)}\s+(.+?)\s{{2,}}", output, re.MULTILINE)
    assert found, f"no row {measure!r} in:\n{output}"
    return found.group(1)


def test_a_short_run_reports_the_sustained_rate_costs_backlog_and_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "bench",
            "dashboard",
            "--nodes",
            "3",
            "--entries",
            "300",
            "--workflows",
            "4",
            "--rate",
            "400",
            "--workflow-rate",
            "4",
            "--seconds",
            "5",
        ]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    for measure in (
        "refresh cost p50",
        "refresh cost p99",
        "refresh cost max",
        "refreshes/s sustained",
        "largest backlog after a refresh",
        "resident memory start / 1 min / end",
    ):
        _value(output, measure)
    assert float(_value(output, "refreshes/s sustained")) > 0
    started, finished = (
        int(n.replace(",", ""))
        for n in _value(output, "short workflows started / finished").split(" / ")
    )
    assert started >= 10 and 0 < finished < started  # the workload ran: starts and ends
    rows = re.search(r"(\d+) rows in the table", output)
    assert rows and int(rows.group(1)) == 4 + started  # every workflow reached the table
    patches = re.search(r"in ([\d,]+) patches", output)
    assert patches and int(patches.group(1).replace(",", "")) > 0  # a document was synced
    assert _value(output, "events lost to the bound") == "0"
    assert "verdict:" in output
