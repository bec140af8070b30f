"""The key-value store on the deterministic simulator: concurrent clients through the leader
while nodes crash and restart, the network partitions, drops, delays and duplicates. Every
history must check linearizable; broken stores must be caught."""

from __future__ import annotations

import pytest

from raftoral_lab.kv import Command, KVSimDriver, KVStateMachine, Nemesis, check
from raftoral_lab.kv.history import HistoryEvent
from raftoral_lab.kv.machine import Answer
from raftoral_lab.kv.simdriver import _Open
from raftoral_lab.sim import Simulation


def chaos_run(
    seed: int,
    *,
    nodes: int = 5,
    ticks: int = 2500,
    driver: type[KVSimDriver] = KVSimDriver,
    machine: type[KVStateMachine] = KVStateMachine,
    retry_ticks: int = 20,
) -> tuple[KVSimDriver, Nemesis]:
    sim = Simulation(nodes=nodes, seed=seed, compact_every=30, record_events=False)
    sim.set_delay(0, 2)
    sim.set_duplicate_rate(0.05)
    kv = driver(
        sim, clients=4, seed=seed, retry_ticks=retry_ticks, timeout_ticks=150, machine=machine
    )
    nemesis = Nemesis(sim, seed=seed, every=30, drop_rate=0.2)
    kv.run(ticks, nemesis=nemesis)
    nemesis.calm()
    kv.finish()
    return kv, nemesis


def replay_hint(seed: int, nemesis: Nemesis) -> str:
    return f"seed {seed} (replay: chaos_run({seed})); last faults: {nemesis.log[-15:]}"


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("seed", range(8))
def test_linearizable_under_crashes_partitions_and_drops(seed: int, nodes: int) -> None:
    kv, nemesis = chaos_run(seed, nodes=nodes)
    where = replay_hint(seed, nemesis)
    result = check(kv.history)
    assert result.ok, f"{where}\n{result}"
    statuses = [op.status for op in kv.history.operations()]
    assert kv.open_operations == 0, where
    assert statuses.count("ok") > 300, f"{where}: only {statuses.count('ok')} completed"
    assert any(what.startswith("crash") for _, what in nemesis.log), where
    assert any(what.startswith(("partition", "isolate")) for _, what in nemesis.log), where


def test_retries_and_unknown_outcomes_happen_and_still_check() -> None:
    """The runs above are not trivial: some retries reach the log twice (the session table
    answers them), and some operations end with an unknown outcome or fail."""
    repeats = unknown = failed = 0
    for seed in range(8):
        kv, _ = chaos_run(seed, ticks=1500)
        repeats += kv.replica.repeats
        statuses = [op.status for op in kv.history.operations()]
        unknown += statuses.count("info")
        failed += statuses.count("fail")
    assert repeats > 0 and unknown > 0 and failed > 0, (repeats, unknown, failed)


def test_a_seed_replays_the_same_history() -> None:
    def events(seed: int) -> list[HistoryEvent]:
        return chaos_run(seed, ticks=800)[0].history.events

    assert events(3) == events(3)
    assert events(3) != events(4)


# --- broken stores are caught --------------------------------------------------------------


class LocalReads(KVSimDriver):
    """A broken store that answers a get at once from a random node's own state, without
    the log: a node cut off from the majority serves stale values."""

    def _propose(self, pending: _Open, now: int) -> None:
        command = pending.command
        if command.op != "get":
            super()._propose(pending, now)
            return
        node = self.rng.choice([n for n in self.sim.nodes.values() if n.alive])
        local = KVStateMachine()
        for data in node.commands:
            local.execute(Command.decode(data))
        self.answers[(command.client, command.request)] = {"value": local.data.get(command.key)}


class Forgetful(KVStateMachine):
    """A broken store without the session table: a retried command takes effect twice."""

    def execute(self, command: Command) -> Answer:
        return self._run(command)


def test_reads_served_outside_the_log_are_caught() -> None:
    caught = []
    for seed in range(4):
        kv, nemesis = chaos_run(seed, ticks=1500, driver=LocalReads)
        result = check(kv.history)
        if not result.ok:
            caught.append(seed)
            assert result.witness[-1].op == "get", str(result)
            assert len(result.witness) <= 4, f"{replay_hint(seed, nemesis)}\n{result}"
    assert len(caught) >= 3, f"stale reads caught only for seeds {caught} of 0..3"


def test_a_store_that_applies_retries_twice_is_caught() -> None:
    caught = [
        seed
        for seed in range(8)
        if not check(chaos_run(seed, ticks=1500, machine=Forgetful, retry_ticks=3)[0].history).ok
    ]
    assert caught, "no seed of 0..7 showed the double application"
