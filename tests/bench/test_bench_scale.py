"""`raftoral-lab bench scale` (issue 9): the report's structure, what execution clusters change
in the replication counts, and clear errors.

Speed is never asserted (DESIGN.md section 7): the run is tiny, and what is checked are counts
that follow from the topology (entries per checkpoint, the busiest node's messages), not how
fast anything went.
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

from raftoral_lab.bench import scale
from raftoral_lab.bench.scale import CLUSTERS, ONE_GROUP, Measured, ScaleConfig, ScaleResult
from raftoral_lab.cli.main import main
from raftoral_lab.errors import WorkflowTimeout
from raftoral_lab.lab import Lab
from raftoral_lab.transport.mosquitto import find_mosquitto

REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"


def require_mosquitto() -> None:
    """Skip without the binary, unless CI (RAFTORAL_REQUIRE_MOSQUITTO=1) requires it."""
    if find_mosquitto() is not None:
        return
    reason = "mosquitto binary not found (apt-get install mosquitto)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


def tiny(**changes: object) -> ScaleConfig:
    settings: dict[str, object] = {
        "nodes": (5, 15),
        "workflows": 12,
        "in_flight": 2,
        "tick": 0.05,
        "idle_seconds": 0.1,
    }
    settings.update(changes)
    return ScaleConfig(**settings)  # type: ignore[arg-type]


async def test_a_tiny_run_measures_both_setups_at_every_size_against_one_baseline() -> None:
    result = await scale.run(tiny())
    assert [(r.setup, r.nodes) for r in result.rows] == [
        (ONE_GROUP, 5), (CLUSTERS, 5), (ONE_GROUP, 15), (CLUSTERS, 15),
    ]  # fmt: skip
    assert all(r.ok for r in result.rows), [r.error for r in result.rows]
    assert [r.groups for r in result.rows] == [1, 1, 1, 3]
    assert [r.in_flight for r in result.rows] == [2, 2, 6, 6], "in flight grows with N"
    for r in result.rows:
        assert r.checkpoints == 120
        assert r.per_second > 0 and math.isfinite(r.per_second)
        assert r.messages > 0 and 0 <= r.heartbeats <= r.messages
        assert r.busiest <= r.messages and r.cpu_seconds > 0
        assert r.elections >= 0 and r.formed_seconds > 0
    assert result.baseline is result.rows[0]

    one, many = result.get(ONE_GROUP, 15), result.get(CLUSTERS, 15)
    assert one is not None and many is not None
    # one group sends each entry (checkpoints, starts, ends) to 14 followers; a cluster to 4
    assert one.entries_per_checkpoint >= 14, one
    assert many.entries_per_checkpoint <= 4 * 1.2 * 1.3, many
    assert many.messages_group0 < many.messages
    # the busiest node: one leader for every checkpoint, against a cluster leader for a third
    assert many.busiest_per_checkpoint < one.busiest_per_checkpoint / 2, (many, one)
    # Not asserted: that all nodes together send fewer messages per checkpoint. One group
    # batches a whole convoy of checkpoints into each AppendEntries, so with equal batching the
    # clusters send only (4 x N/5)/(N-1) (about 0.8) of its messages, and heartbeats, sent per tick,
    # weigh per checkpoint by speed. Here that is 0.86 at best, and it came out above 1 in one
    # of 15 runs on a loaded machine: a margin of noise, not a behaviour (docs/performance.md)
    assert 0 <= many.heartbeats < many.messages and 0 <= one.heartbeats < one.messages

    table = scale.rows(result)
    assert len(table) == 4 and all(len(row) == len(scale.COLUMNS) for row in table)
    assert table[0][5] == "1.00x" and table[0][7] == "1.00x"
    assert "baseline" in str(table[0][-1]) and "group 0:" in str(table[3][-1])
    text = "\n".join(scale.verdicts(result))
    assert "target: aggregate throughput grows with the number of execution clusters:" in text
    assert "15 nodes: messages/checkpoint" in text
    assert "cores" in scale.header(result) and "broker: memory" in scale.header(result)


def measured(setup: str, nodes: int, per_second: float, **more: object) -> Measured:
    fields: dict[str, object] = {
        "groups": 1 if setup == ONE_GROUP else nodes // 5,
        "in_flight": nodes * 2,
        "workflows": 100,
        "seconds": 1000 / per_second,
        "messages": 2000,
        "entries": 5000,
        "busiest": 1000,
        "cpu_seconds": 0.5,
    }
    fields.update(more)
    return Measured(setup, nodes, **fields)  # type: ignore[arg-type]


def test_the_target_is_met_only_when_clusters_add_throughput() -> None:
    result = ScaleResult(tiny(nodes=(5, 50)), "test")
    result.rows = [
        measured(ONE_GROUP, 5, 1000),
        measured(CLUSTERS, 5, 900),
        measured(ONE_GROUP, 50, 100),
        measured(CLUSTERS, 50, 3000),
    ]
    text = "\n".join(scale.verdicts(result))
    assert "grows with the number of execution clusters: met" in text
    assert "-> 3,000 at 50 nodes (10 groups): 3.00x" in text
    result.rows[3] = measured(CLUSTERS, 50, 400)
    text = "\n".join(scale.verdicts(result))
    assert "execution clusters: missed (it falls less than one group does" in text


def test_a_lab_that_cannot_form_is_reported_not_hidden() -> None:
    result = ScaleResult(tiny(nodes=(5, 50)), "test")
    result.rows = [
        measured(ONE_GROUP, 5, 1000),
        measured(CLUSTERS, 5, 900),
        Measured(ONE_GROUP, 50, error="did not form in 60 s: no leader elected within 60 s"),
        measured(CLUSTERS, 50, 800),
    ]
    table = scale.rows(result)
    assert table[2][-1] == "not measured: did not form in 60 s: no leader elected within 60 s"
    assert all(cell == "" for cell in table[2][4:-1])
    text = "\n".join(scale.verdicts(result))
    assert "one group, 50 nodes: not measured (did not form in 60 s" in text


async def test_a_lab_whose_start_gives_up_is_waited_for_or_reported_and_always_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labs: list[Lab] = []

    class SlowLab(Lab):
        async def start(self) -> None:  # like 50 voters that elect late on a busy machine
            labs.append(self)
            await super().start()
            raise WorkflowTimeout(
                "node 4 could not register its workflows within 10 s (no leader, or this node "
                "is not a member yet); it keeps trying"
            )

    monkeypatch.setattr(scale, "Lab", SlowLab)
    result = await scale.run(tiny(nodes=(5,)))
    one, many = result.rows
    # one group: the registrations go on in the background, so the bench waits for them
    assert one.ok and one.remark.startswith("Lab.start gave up (node 4 could not register")
    assert "waited on" in str(scale.rows(result)[0][-1])
    # a clustered lab's start does not wait for registrations: its failure is a failure
    assert not many.ok and str(many.error).startswith("did not form in")
    assert len(labs) == 2 and not any(n.running for lab in labs for n in lab.nodes.values())


async def test_a_lab_whose_workflows_do_not_end_in_time_says_how_far_it_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scale, "LAB_TIMEOUT", 0.01)
    result = await scale.run(tiny(nodes=(5,)))
    assert not any(r.ok for r in result.rows)
    for r in result.rows:
        assert "failed under load after 0/12 timed workflows" in str(r.error), r.error
        assert "not done within 0.01 s" in str(r.error)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--nodes", "3"], "between 5"),
        (["--nodes", "5,x"], "separated by commas"),
        (["--nodes", "5,500"], "and 200"),
        (["--workflows", "0"], "at least 1"),
        (["--in-flight", "many"], "whole number"),
        (["--broker", "embedded"], "invalid choice"),
        (["--tick", "-1"], "positive"),
    ],
)
def test_bad_flags_are_refused_with_a_reason(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "scale", *flags])
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err


def test_nodes_are_sorted_and_the_baseline_is_always_measured() -> None:
    assert scale.node_sizes("30, 15,15") == (15, 30)
    assert ScaleConfig(nodes=(15, 30)).sizes == (5, 15, 30)
    assert ScaleConfig(broker="mosquitto").tick_seconds == 0.2
    assert ScaleConfig(nodes=(50,), in_flight=3).total_in_flight(50) == 30


def test_missing_mosquitto_says_how_to_install_it_or_what_else_to_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("raftoral_lab.transport.mosquitto.find_mosquitto", lambda: None)
    code = main(["bench", "scale", "--broker", "mosquitto", "--nodes", "5", "--workflows", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "apt-get install mosquitto" in err and "--broker memory" in err


@pytest.mark.mosquitto
async def test_over_a_private_mosquitto() -> None:
    require_mosquitto()
    result = await scale.run(tiny(nodes=(5,), broker="mosquitto", workflows=6))
    assert all(r.ok for r in result.rows), [r.error for r in result.rows]
    assert result.broker.startswith("mosquitto") and "(own process)" in result.broker


@pytest.mark.mosquitto
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_stops_its_labs_and_its_mosquitto(sig: signal.Signals, code: int) -> None:
    require_mosquitto()
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftoral_lab.cli.main", "bench", "scale", "--broker",
         "mosquitto", "--nodes", "15", "--workflows", "2000", "--tick", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        broker: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not broker:
            if any("formed in" in line for line in lines):  # a lab runs: stop it mid-load
                broker = children_of(proc.pid)
            time.sleep(0.05)
        assert broker, f"no broker child seen; stderr: {''.join(lines)}"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(lines)
    assert proc.returncode == code, err
    assert ("interrupted" if sig == signal.SIGINT else "stopped (SIGTERM)") in err
    time.sleep(0.5)
    assert not [pid for pid in broker if running(pid)], "the private mosquitto was left behind"


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
