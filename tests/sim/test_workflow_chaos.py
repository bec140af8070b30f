"""Workflows under chaos in the simulator (issue 10, item 1): `raftoral-lab sim --workflows`.

Every node runs the workflow state machine; a synchronous driver (raftoral_lab.sim.workflows)
plays the engine. After each seed's recovery every started workflow must have completed once,
with the output of a fault-free run, and every node must have consumed the committed values.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import pytest

from raftoral_lab.cli.main import main
from raftoral_lab.sim.schedule import FAULTS, Outcome, run_schedule
from raftoral_lab.sim.workflows import (
    BROKEN_MODES,
    WorkflowChaos,
    counter,
    order,
    reference_output,
)

SEEDS = 120
TICKS = 1500


def _run(seed: int, broken: str | None = None) -> Outcome:
    chaos = WorkflowChaos(seed, faults=frozenset(FAULTS), broken=broken)
    return run_schedule(seed, ticks=TICKS, chaos=chaos)


def _many(seeds: range, broken: str | None = None) -> list[Outcome]:
    jobs = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(partial(_run, broken=broken), seeds, chunksize=8))


def test_many_seeds_of_workflows_under_all_faults_have_no_violation() -> None:
    outcomes = _many(range(SEEDS))
    failed = [o for o in outcomes if o.violation]
    report = "\n".join(
        f"seed {o.seed}: {o.violation}\n  replay: {o.replay_command(TICKS, FAULTS, 5)}"
        for o in failed
    )
    assert not failed, f"{len(failed)} violation(s):\n{report}"
    workflows = sum(o.stats["workflows"] for o in outcomes)
    epochs = sum(o.stats["epochs"] for o in outcomes)
    assert workflows > 10 * SEEDS  # the schedules really ran workflows...
    assert epochs > workflows + SEEDS  # ...and failed over inside many of them


CAUGHT_BY = {
    "two_owners": "proposed, the owner of that epoch is",
    "own_values": "the committed value is",
    "compute_everywhere": "the side effect ran",
}


@pytest.mark.parametrize("broken", BROKEN_MODES)
def test_a_broken_driver_is_caught(broken: str) -> None:
    outcomes = _many(range(24), broken=broken)
    caught = [o for o in outcomes if o.violation and CAUGHT_BY[broken] in o.violation]
    assert caught, f"the {broken} driver went unnoticed in 24 seeds"
    assert all(o.violation.startswith("workflow:") for o in caught if o.violation)


def test_a_seed_replays_exactly() -> None:
    first, second = _run(5), _run(5)
    assert first == second
    assert first.violation is None


def test_the_fault_free_output_is_the_generator_run_directly() -> None:
    assert reference_output("counter", 1, {"n": 4}) == {"total": 6}
    assert reference_output("order", 1, {"item": "book", "qty": 2}) == {
        "item": "book",
        "total": 56,
        "status": "confirmed",
    }
    assert counter({"n": 0}) is not None and order is not None


def test_no_faults_means_no_failover_and_each_side_effect_once() -> None:
    chaos = WorkflowChaos(3, faults=frozenset())
    outcome = run_schedule(3, ticks=800, faults=frozenset(), chaos=chaos)
    assert outcome.violation is None
    assert all(count == 1 for count in chaos.effects.values())
    assert outcome.stats["workflows"] > 0


def test_the_cli_flag_runs_workflows_and_prints_a_replay_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["sim", "--seeds", "4", "--ticks", "400", "--workflows", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "violations: 0" in out and "workflows:" in out

    def broken(seed: int, **kwargs: object) -> Outcome:
        return Outcome(seed, "workflow: w1 completed twice", 10, 0, workflows=True)

    monkeypatch.setattr("raftoral_lab.cli.sim.run_schedule", broken)
    assert main(["sim", "--seeds", "2", "--ticks", "50", "--workflows", "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "seed 1: workflow: w1 completed twice" in out
    assert (
        "replay: raftoral-lab sim --seed 1 --ticks 50 --nodes 5 --faults all --workflows --verbose"
        in out
    )
