"""`raftoral-lab bench commit` (issue 4): every row present with sane values, clear errors,
and no child process or broker left behind, even after Ctrl-C.

Speed is never asserted here (DESIGN.md section 7): the sizes are tiny and only the shape of
the table and the plausibility of the numbers are checked.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raftoral_lab.bench import commit
from raftoral_lab.bench.measure import Latency, Rounds, Throughput, percentile
from raftoral_lab.bench.syncobj import pysyncobj_version
from raftoral_lab.cli.main import main
from raftoral_lab.transport.mosquitto import find_mosquitto

REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"
TINY = ["--samples", "12", "--proposals", "120", "--in-flight", "12", "--rounds", "2"]


def require_mosquitto() -> None:
    """Skip without the binary, unless CI (RAFTORAL_REQUIRE_MOSQUITTO=1) requires it."""
    if find_mosquitto() is not None:
        return
    reason = "mosquitto binary not found (apt-get install mosquitto)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


def bench(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftoral_lab.cli.main", "bench", "commit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_table(out: str) -> dict[str, dict[str, str]]:
    """{measure: {column: cell}} from the printed table (columns cut at the dashes line)."""
    lines = out.splitlines()
    dashes = next(i for i, line in enumerate(lines) if line.startswith("----"))
    spans: list[tuple[int, int]] = []
    start = 0
    for part in lines[dashes].split("  "):
        spans.append((start, start + len(part)))
        start += len(part) + 2
    names = [lines[dashes - 1][a:b].strip() for a, b in spans]
    table: dict[str, dict[str, str]] = {}
    for line in lines[dashes + 1 :]:
        if not line.strip():
            break
        cells = {name: line[a:b].strip() for name, (a, b) in zip(names, spans, strict=True)}
        cells["note"] = line[spans[-1][0] :].strip()
        table[cells["measure"]] = cells
    return table


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def check_run(
    result: subprocess.CompletedProcess[str], *, processes: bool, syncobj: bool | None = None
) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cores" in out and "broker:" in out, out
    table = parse_table(out)
    if syncobj is None:
        syncobj = pysyncobj_version() is not None
    expected = commit.expected_rows(processes=processes, pysyncobj=syncobj)
    assert list(table) == expected, out
    for label, cells in table.items():
        if cells["p50 ms"]:
            p50, p99 = number(cells["p50 ms"]), number(cells["p99 ms"])
            assert 0 < p50 <= p99, (label, cells)
            assert math.isfinite(p99)
            assert cells["ratio"].endswith(("x", "x RT")) or "ours/theirs" in cells["ratio"]
        else:
            assert number(cells["ops/s"]) > 0, (label, cells)
    assert "target <= 1.5x" in out and "target >= 20,000/s" in out
    assert "setups (the broker runs in its own process" in out
    # progress and phase lines go to stderr, never into the table
    assert "bench commit: baseline" in result.stderr


def test_embedded_broker_prints_every_row_with_sane_values() -> None:
    check_run(bench("--broker", "embedded", *TINY), processes=True)


@pytest.mark.mosquitto
def test_mosquitto_prints_every_row_with_sane_values() -> None:
    require_mosquitto()
    # PySyncObj does not use the broker: the embedded run covers its rows
    check_run(
        bench("--broker", "mosquitto", "--no-pysyncobj", *TINY), processes=True, syncobj=False
    )


def test_no_processes_leaves_out_the_process_rows() -> None:
    result = bench("--broker", "embedded", "--no-processes", "--no-pysyncobj", *TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(parse_table(result.stdout)) == commit.expected_rows(
        processes=False, pysyncobj=False
    )


def test_missing_mosquitto_says_how_to_install_it_or_what_else_to_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("raftoral_lab.transport.mosquitto.find_mosquitto", lambda: None)
    code = main(["bench", "commit", "--broker", "mosquitto", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "apt-get install mosquitto" in err and "--broker embedded" in err


def test_a_bad_broker_url_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["bench", "commit", "--broker", "http://127.0.0.1:1883", *TINY])
    assert code == 2
    assert "mqtt://" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "broker", ["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def test_ctrl_c_stops_every_child_process_and_the_broker(broker: str) -> None:
    if broker == "mosquitto":
        require_mosquitto()
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftoral_lab.cli.main", "bench", "commit",
         "--broker", broker, "--no-pysyncobj", *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 180
        # interrupt while the follower node processes start, beside the broker
        while time.monotonic() < deadline and proc.poll() is None:
            if any("leader worker process" in line for line in lines):
                seen |= children_of(proc.pid)
                if len(seen) >= 3:
                    break
            time.sleep(0.05)
        assert len(seen) >= 3, f"saw {len(seen)} children; stderr: {''.join(lines)}"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    time.sleep(0.5)
    alive = [pid for pid in seen if running(pid)]
    assert not alive, f"left behind: {[cmdline(pid) for pid in alive]}"


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


# --- the figures themselves -------------------------------------------------------------------


def test_percentiles_are_nearest_rank_and_p99_is_never_below_p50() -> None:
    samples = [i / 1000 for i in range(1, 101)]
    assert percentile(samples, 50) == 0.05
    assert percentile(samples, 99) == 0.099
    latency = Latency.of(samples)
    assert latency.p50_ms == pytest.approx(50) and latency.p99_ms == pytest.approx(99)
    assert math.isnan(percentile([], 50))
    assert Throughput(1000, 0.5, 10).per_second == 2000


def test_rows_give_ratios_against_the_baseline_of_the_same_kind() -> None:
    result = commit.CommitResult(commit.CommitConfig(broker="mosquitto"), "test broker")
    result.latency["ping_local"] = Latency.of([0.001] * 10)
    result.latency["ping_remote"] = Latency.of([0.002] * 10)
    result.latency["inproc"] = Latency.of([0.003] * 10)
    result.latency["leader_proc"] = Latency.of([0.003] * 10)
    result.throughput["tp_leader_proc"] = Rounds(
        (Throughput(20_000, 1.0, 1000), Throughput(30_000, 1.0, 1000), Throughput(40_000, 1.0, 1))
    )
    rows = {row[0]: row for row in commit.rows(result)}
    assert rows[commit.LABELS["inproc"]][4] == "3.00x RT"
    assert rows[commit.LABELS["leader_proc"]][4] == "1.50x RT"
    verdicts = "\n".join(commit.verdicts(result))
    assert "(in-process): 3.00x, target <= 1.5x with Mosquitto: missed\n" in verdicts + "\n"
    assert "(leader process): 1.50x, target <= 1.5x with Mosquitto: met" in verdicts
    assert "30,000/s, target >= 20,000/s: met" in verdicts
    note = rows[commit.LABELS["tp_leader_proc"]][5]
    assert str(note).startswith("median of 3: 20,000-40,000")
