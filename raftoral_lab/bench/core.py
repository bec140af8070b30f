"""`raftoral-lab bench core`: the Raft core alone, no I/O, in the deterministic simulator.

Two figures: committed entries per second in a 3-node cluster fed in bursts (the leader's
log replicated, committed and applied on all three nodes), and ticks per second of an idle
5-node cluster (heartbeats only). The baseline, measured in the same run, is the bare cost of
the data movement Raft cannot avoid: building the entries and appending each to three lists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from raftoral_lab.core import Entry, RaftConfig
from raftoral_lab.errors import RaftError
from raftoral_lab.sim import Simulation


@dataclass(frozen=True, slots=True)
class CoreResult:
    committed_per_s: float
    baseline_per_s: float
    idle_ticks_per_s: float
    entries: int
    burst: int


def _quiet_sim(nodes: int, seed: int) -> Simulation:
    sim = Simulation(nodes, seed, RaftConfig(trace=False), check=False, record_events=False)
    if not sim.run_until(lambda s: s.leader() is not None, max_ticks=1000):
        raise RaftError("no leader elected for the benchmark")
    return sim


def committed_per_second(entries: int, burst: int, payload: bytes) -> float:
    sim = _quiet_sim(3, seed=1)
    leader_id = sim.leader()
    assert leader_id is not None
    leader = sim.node(leader_id)._raft()
    start_commit = leader.commit_index
    started = time.perf_counter()
    for _ in range(entries // burst):
        for _ in range(burst):
            leader.propose(payload)
        sim.settle()
    elapsed = time.perf_counter() - started
    target = start_commit + (entries // burst) * burst
    if not all(n._raft().applied_index >= target for n in sim.nodes.values()):
        raise RaftError("benchmark run ended with entries not applied on every node")
    return (leader.commit_index - start_commit) / elapsed


def baseline_per_second(entries: int, payload: bytes) -> float:
    logs: list[list[Entry]] = [[], [], []]
    started = time.perf_counter()
    for index in range(1, entries + 1):
        entry = Entry(index, 1, payload)
        for log in logs:
            log.append(entry)
    return entries / (time.perf_counter() - started)


def idle_ticks_per_second(ticks: int) -> float:
    sim = _quiet_sim(5, seed=2)
    started = time.perf_counter()
    sim.run(ticks)
    return ticks / (time.perf_counter() - started)


def run(entries: int = 200_000, burst: int = 1_000, ticks: int = 20_000) -> CoreResult:
    payload = b"x" * 16
    committed_per_second(min(entries, 20_000), burst, payload)  # warm up
    return CoreResult(
        committed_per_s=committed_per_second(entries, burst, payload),
        baseline_per_s=baseline_per_second(entries, payload),
        idle_ticks_per_s=idle_ticks_per_second(ticks),
        entries=entries,
        burst=burst,
    )
