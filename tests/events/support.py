"""Helpers of the event tests: simulated runs with faults, and what a hook would emit."""

from __future__ import annotations

import random
from collections.abc import Callable

from raftoral_lab.events import EventBase, make_event
from raftoral_lab.sim import Simulation


def loaded_events(sim: Simulation) -> list[EventBase]:
    """The `state_loaded` events the simulator hook (see the issue reply) emits at start:
    bootstrap state is no change of the core, so the view cannot learn it otherwise."""
    out: list[EventBase] = []
    for node_id, node in sorted(sim.nodes.items()):
        raft = node.raft
        assert raft is not None
        log = raft.log
        fields = {
            "term": raft.term,
            "commit_index": log.commit_index,
            "applied_index": log.applied_index,
            "snapshot_index": log.offset,
            "snapshot_term": log.offset_term,
            "last_index": log.last_index,
            "last_term": log.last_term,
            "voters": sorted(raft.conf.voters),
            "learners": sorted(raft.conf.learners),
        }
        out.append(make_event("state_loaded", fields, node=node_id, seq=0, ts=0.0, tick=0))
    return out


def chaos(sim: Simulation, rng: random.Random) -> None:
    """One random fault or repair, and sometimes a proposal, then one tick."""
    r = rng.random()
    ids = sorted(sim.nodes)
    live = [n for n in ids if sim.nodes[n].alive]
    if r < 0.02:
        sim.partition(set(rng.sample(ids, 2)))
    elif r < 0.04:
        sim.heal()
    elif r < 0.05 and len(live) > len(ids) // 2 + 1:
        sim.crash(rng.choice(live))
    elif r < 0.07:
        dead = [n for n in ids if not sim.nodes[n].alive]
        if dead:
            sim.restart(rng.choice(dead))
    elif r < 0.08:
        sim.set_drop_rate(rng.choice([0.0, 0.1, 0.3]))
    elif r < 0.09:
        sim.set_delay(0, rng.choice([0, 3]))
    if rng.random() < 0.5:
        sim.propose(b"p", node=rng.choice(ids) if rng.random() < 0.3 else None)
    sim.step()


def run_with_faults(
    seed: int,
    ticks: int = 400,
    *,
    nodes: int = 5,
    listener: Callable[[EventBase], None] | None = None,
) -> Simulation:
    """A simulated run with partitions, crashes, restarts, drops, delays and compaction.

    `listener` gets every event as the run goes, tick by tick (as a live dashboard would)."""
    rng = random.Random(seed)
    sim = Simulation(nodes, seed=seed, compact_every=rng.choice([None, 15]))
    feed = Feed(sim)
    for _ in range(ticks):
        chaos(sim, rng)
        if listener is not None:
            for event in feed.take():
                listener(event)
    sim.heal()
    sim.set_drop_rate(0.0)
    sim.set_delay(0, 0)
    sim.run(30)
    if listener is not None:
        for event in feed.take():
            listener(event)
    return sim


class Feed:
    """The events a simulation added since the last `take()`: a live stream of `sim.events`."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.seen = 0

    def take(self) -> list[EventBase]:
        events = self.sim.events[self.seen :]
        self.seen = len(self.sim.events)
        return events


def interleave(events: list[EventBase], rng: random.Random) -> list[EventBase]:
    """Another order the network could deliver: each node's own order kept, nodes mixed."""
    streams: dict[int, list[EventBase]] = {}
    for e in events:
        streams.setdefault(e.node, []).append(e)
    cursors = dict.fromkeys(streams, 0)
    out: list[EventBase] = []
    while len(out) < len(events):
        node = rng.choice([n for n, i in cursors.items() if i < len(streams[n])])
        out.append(streams[node][cursors[node]])
        cursors[node] += 1
    return out
