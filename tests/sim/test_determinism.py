"""A seed replays a simulation exactly: same events, same logs; different seeds differ."""

from __future__ import annotations

from typing import Any

from raftoral_lab.sim import Simulation


def faulty_run(seed: int) -> Simulation:
    """A run that touches every source of randomness: timeouts, drops, delays, duplicates,
    plus partitions, a crash and a restart."""
    sim = Simulation(nodes=5, seed=seed)
    sim.set_drop_rate(0.1)
    sim.set_delay(1, 4)
    sim.set_duplicate_rate(0.05)
    for step in range(40):
        sim.propose(b"p-%d" % step)
        sim.run(5)
        if step == 10:
            sim.partition({1, 2}, {3, 4, 5})
        elif step == 20:
            sim.heal()
            sim.crash(3)
        elif step == 30:
            sim.restart(3)
    sim.check_invariants()
    return sim


def trace(sim: Simulation) -> list[dict[str, Any]]:
    return [e.model_dump() for e in sim.events]


def test_the_same_seed_gives_the_same_event_sequence() -> None:
    for seed in (3, 21):
        a, b = faulty_run(seed), faulty_run(seed)
        ta, tb = trace(a), trace(b)
        assert len(ta) > 1000, f"seed={seed}: only {len(ta)} events"
        first_diff = next((i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y), None)
        assert ta == tb, f"seed={seed}: runs differ first at event {first_diff} (of {len(ta)})"
        for i in a.nodes:
            assert a.node(i).log == b.node(i).log, f"seed={seed}: node {i} logs differ"
        assert a.messages_sent() == b.messages_sent(), f"seed={seed}"


def test_different_seeds_usually_give_different_runs() -> None:
    seeds = range(1, 6)
    traces = {seed: trace(faulty_run(seed)) for seed in seeds}
    distinct = {repr(t) for t in traces.values()}
    assert len(distinct) == len(traces), f"seeds {list(seeds)}: only {len(distinct)} distinct runs"
