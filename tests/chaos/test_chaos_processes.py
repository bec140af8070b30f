"""`raftoral-lab chaos` for about a minute over a Mosquitto the test starts (issue 10, item 2):
real node processes, a workload of sample workflows, and the seeded faults of the plan (kill
-9 of the leader and of followers, restarts, partitions and heals through the control topic,
broker restarts). Every check of the run must pass and every kind of fault must have been
injected. A failure prints the run's summary and the seed that reproduces its plan
(RAFTORAL_CHAOS_SEED=<seed> runs that seed again)."""

from __future__ import annotations

import asyncio
import io
import os
import random
import sys
from pathlib import Path

import pytest

from raftoral_lab.chaos import ChaosConfig, FaultType, run_chaos
from raftoral_lab.transport.mosquitto import MosquittoProcess

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

DURATION = 40.0
"""Seconds of faults: long enough for the plan to hold every kind (tests/chaos/test_schedule.py
checks that); with start-up, recovery and checks the run takes about a minute."""


def seed_of_the_run() -> int:
    chosen = os.environ.get("RAFTORAL_CHAOS_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(1_000_000)


async def test_a_chaos_run_over_node_processes_passes_every_check(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    seed = seed_of_the_run()
    config = ChaosConfig(duration=DURATION, nodes=3, seed=seed, rate=5.0, data_dir=tmp_path / "run")
    out = io.StringIO()
    report = await run_chaos(config, out, broker=mosquitto)
    summary = report.summary()
    print(out.getvalue() + summary)  # shown by pytest when the test fails
    why = f"seed {seed} (RAFTORAL_CHAOS_SEED={seed} to run it again):\n{summary}"
    assert report.ok, why
    assert mosquitto.running, "the run must leave the given broker running"
    counts = report.counts()
    missing = [t.value for t in FaultType if counts.get(t, 0) < 1]
    assert not missing, f"never injected: {missing}; {why}"
    assert report.workflows_started >= 50, why
    assert report.client_outcomes["completed as expected"] > 0, why
    assert report.client_outcomes["failed as expected"] > 0, why  # the mix fails some on purpose


async def test_the_chaos_command_on_a_broker_url_skips_broker_restarts_and_says_so(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    seed = seed_of_the_run()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "raftoral_lab.cli.main", "chaos", "--broker", mosquitto.url,
        "--duration", "12", "--seed", str(seed), "--rate", "4", "--data-dir", str(tmp_path / "d"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"seed {seed}:\n{text}"
    assert "broker restarts are skipped" in text, text
    assert "=== chaos summary ===" in text and "result: PASS" in text, text
    assert f"--seed {seed}" in text, text
    assert "  broker restart         0" in text, text
