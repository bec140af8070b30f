"""Scripted fault sequences that random faults almost never line up by chance.

`Figure8` plays the shape of the Raft paper's Figure 8 on a running simulation:

1. the leader is cut off with a minority and keeps taking commands (entries of its term on a
   minority only);
2. the majority elects a new leader, which is cut off alone the moment it wins (its first
   entry, of a newer term, never leaves it);
3. the old minority rejoins the rest, one of its nodes wins the next term and starts copying
   the old-term entries to the others; as soon as a follower acknowledges old-term entries
   but not yet the new leader's own entry, the new leader is cut off with the nodes that hold
   that entry;
4. the leader of step 2, whose last term is newer than the copied entries, can now win the
   rest with their votes and overwrite those entries.

A leader that commits an old-term entry because a majority holds it (instead of only through
an entry of its own term) breaks leader completeness in step 4. Every message takes exactly
one tick meanwhile, so a cut made between two ticks stops what is still on its way; the cut of
step 3 needs entries sent in several messages (a small `max_entries_per_message`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from raftoral_lab.core import RawNode, Role
from raftoral_lab.sim.simulation import Simulation

PHASE_TICKS = 300
"""The longest any step may take before the sequence gives up and heals the network."""


class Figure8:
    """One run of the sequence; call `advance()` before every tick until it returns False."""

    def __init__(
        self, sim: Simulation, old_leader: int, minority: set[int], say: Callable[[str], None]
    ) -> None:
        self.sim = sim
        self.say = say
        self.minority = minority
        self.term = sim.node(old_leader).term  # the term of the latest leader in the sequence
        self.second: int | None = None  # the leader of step 2
        self.cut_off: set[int] = set()  # the side of the leader of step 3
        self.phase = 1
        self.phase_start = sim.tick

    @classmethod
    def start(
        cls, sim: Simulation, rng: random.Random, say: Callable[[str], None]
    ) -> Figure8 | None:
        """Begin (cut the leader off with a minority) when every node is up and a voter under
        one leader; None otherwise."""
        leader = sim.leader()
        nodes = sim.nodes
        if leader is None or len(nodes) < 3 or not all(n.alive for n in nodes.values()):
            return None
        if sim.node(leader).status().voters != set(nodes):
            return None
        followers = sorted(set(nodes) - {leader})
        minority = {leader, *rng.sample(followers, (len(nodes) - 1) // 2 - 1)}
        sim.set_drop_rate(0.0)
        sim.set_duplicate_rate(0.0)
        sim.set_delay(1)
        sim.partition(minority, set(nodes) - minority)
        return cls(sim, leader, minority, say)

    def advance(self) -> bool:
        """Take the next step once the cluster got there; False when the sequence is over."""
        sim = self.sim
        if sim.tick - self.phase_start > PHASE_TICKS:
            return self._end(f"gave up in step {self.phase}")
        if self.phase == 1:
            second = self._leader(set(sim.nodes) - self.minority)
            if second is not None:
                self.second = second
                sim.partition(set(sim.nodes) - {second}, {second})
                self._next(second, f"new leader {second} cut off alone as it wins")
        elif self.phase == 2:
            third = self._leader(set(sim.nodes) - {self.second})
            raft = sim.node(third).raft if third is not None else None
            if third is not None and raft is not None:
                own = _first_of_term(raft)
                matches = [pr.match_index for p, pr in raft.progress.items() if p != self.second]
                if all(match >= own for match in matches):
                    return self._end(f"leader {third} copied everything in one message")
                if any(0 < match < own for match in matches):
                    holders = {
                        i
                        for i, n in sim.nodes.items()
                        if n.raft is not None and n.raft.log.term(own) == raft.term
                    }
                    sim.partition(holders, set(sim.nodes) - holders)
                    self.cut_off = holders
                    self._next(third, f"leader {third} cut off with {sorted(holders)} mid-copy")
        else:
            fourth = self._leader(set(sim.nodes) - self.cut_off)
            if fourth is not None:
                return self._end(f"node {fourth} leads the rest")
        return True

    def _leader(self, among: set[int]) -> int | None:
        """A leader among `among` of a term after the last one of the sequence."""
        for i in sorted(among):
            raft = self.sim.node(i).raft
            if raft is not None and raft.role is Role.LEADER and raft.term > self.term:
                return i
        return None

    def _next(self, leader: int, line: str) -> None:
        self.say(line)
        self.term = self.sim.node(leader).term
        self.phase += 1
        self.phase_start = self.sim.tick

    def _end(self, why: str) -> bool:
        self.sim.heal()
        self.sim.set_delay(0)
        self.say(f"{why}; healed")
        return False


def _first_of_term(raft: RawNode) -> int:
    """The index of the leader's first entry of its own term (the one it appended on winning)."""
    log = raft.log
    index = log.last_index
    while index > log.offset and log.term(index - 1) == raft.term:
        index -= 1
    return index
