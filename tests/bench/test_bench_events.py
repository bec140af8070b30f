"""`raftoral-lab bench events` (issue 6): the table has a row per setup and the ratios, and the
output ends with the verdict. Tiny sizes on the in-memory network: no speed is asserted
(DESIGN.md section 7), only the shape of the output and that every event was published."""

from __future__ import annotations

import pytest

from raftoral_lab.bench import events
from raftoral_lab.cli.main import main

TINY = ["--proposals", "60", "--in-flight", "10", "--rounds", "1"]


def table(out: str) -> dict[str, tuple[str, str]]:
    """{measure: (value, note)} from the printed table (columns cut at the dashes line)."""
    lines = out.splitlines()
    dashes = next(i for i, line in enumerate(lines) if line.startswith("----"))
    widths = [len(part) for part in lines[dashes].split("  ")]
    assert lines[dashes - 1].split() == ["measure", "value", "note"]
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[dashes + 1 :]:
        if not line.startswith(("commits/s", "ratio")):
            break
        measure = line[: widths[0]].strip()
        rest = line[widths[0] + 2 :]
        rows[measure] = (rest[: widths[1]].strip(), rest[widths[1] + 2 :].strip())
    return rows


def test_the_table_has_a_row_per_setup_and_the_output_ends_with_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "events", "--broker", "memory", *TINY]) == 0
    captured = capsys.readouterr()
    rows = table(captured.out)
    assert list(rows) == [
        *(f"commits/s, {setup.label}" for setup in events.SETUPS),
        "ratio kept / off (making the events)",
        "ratio on / off (making and publishing)",
    ], captured.out
    for value, _ in rows.values():
        assert float(value.replace(",", "")) > 0
    # "on" publishes everything: message events are made, and none is sampled out
    _, on = rows[f"commits/s, {events.SETUPS[2].label}"]
    made, published, left_out = (int(part.split()[0].replace(",", "")) for part in on.split(", "))
    assert made == published > rows_made(rows, 0) and left_out == 0, on
    assert "target >= 0.8" in rows["ratio on / off (making and publishing)"][1]
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("verdict: ") and "target >= 0.8" in last, captured.out
    assert "round 1/1, on" in captured.err  # progress on stderr, never in the table


def rows_made(rows: dict[str, tuple[str, str]], setup: int) -> int:
    """Events made in a setup's run, from its note."""
    note = rows[f"commits/s, {events.SETUPS[setup].label}"][1]
    return int(note.split()[0].replace(",", ""))


def test_a_bad_broker_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(events, "run", tripwire)
    assert main(["bench", "events", "--broker", "http://127.0.0.1:1883", *TINY]) == 2
    assert "mqtt://" in capsys.readouterr().err


def test_the_verdict_compares_the_medians_of_on_and_off() -> None:
    def samples(*rates: float) -> list[events.Sample]:
        return [events.Sample(rate, 10, 10, 0) for rate in rates]

    result = events.EventsResult(
        "mosquitto",
        {
            "off": samples(1000, 900, 5000),
            "kept": samples(950, 950, 950),
            "on": samples(850, 1, 800),
        },
    )
    assert result.ratio == pytest.approx(800 / 1000) and result.met
    assert events.verdict(result).startswith("verdict: OK: with every event published, 0.80")
    slow = events.EventsResult("embedded", {**result.samples, "on": samples(700, 700, 700)})
    assert not slow.met
    assert events.verdict(slow).startswith(
        "verdict: BELOW TARGET (the target is set for Mosquitto)"
    )
