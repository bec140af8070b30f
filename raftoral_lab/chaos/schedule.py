"""The fault plan of a chaos run: pure data, the same for the same seed.

A plan is a list of episodes, one after the other on the run's clock (seconds from the start
of the workload). Each episode injects one fault and undoes it later: a `kill -9` of the
leader or of followers (restarted from their data directories), a partition through the
control topic (healed), or a broker restart (stop, downtime, start on the same port).

Which node a step hits depends on the cluster at that moment (who leads), so the plan does
not name nodes: it carries `pick`, a number in [0, 1) that the runner turns into a choice
among the candidates it sees (`choose`). The first episodes cover every kind once, in a
seeded order, so a run long enough for them injects each kind at least once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from raftoral_lab.errors import ConfigError

MIN_NODES = 3
MAX_NODES = 7


class EpisodeKind(StrEnum):
    KILL_LEADER = "kill_leader"
    """SIGKILL the current leader (and, with 5+ nodes, maybe a follower with it)."""
    KILL_FOLLOWER = "kill_follower"
    """SIGKILL one or more followers (never a majority)."""
    ISOLATE_LEADER = "isolate_leader"
    """Cut the leader (and maybe others, a minority) off from the rest."""
    SPLIT = "split"
    """Cut a random minority off from the majority."""
    BROKER_RESTART = "broker_restart"
    """Stop the broker, wait, start it again on the same port."""


EPISODE_KINDS: tuple[EpisodeKind, ...] = tuple(EpisodeKind)

# seconds; short enough that the first len(EPISODE_KINDS) episodes fit in COVERING_DURATION
FIRST_AT = 2.0
GAP = (1.0, 2.5)
FAULT_LENGTH = (1.5, 4.0)
BROKER_DOWNTIME = (0.5, 2.0)
COVERING_DURATION = FIRST_AT + len(EPISODE_KINDS) * (FAULT_LENGTH[1] + GAP[1]) - GAP[1]
"""A plan at least this long holds every episode kind (the first ones are a permutation)."""


@dataclass(frozen=True, slots=True)
class Episode:
    number: int
    kind: EpisodeKind
    at: float
    """When the fault is injected (seconds from the start of the workload)."""
    length: float
    """How long the fault lasts before it is undone (for a broker restart: its downtime)."""
    size: int
    """How many nodes the fault hits (killed, or cut off): 1 up to a minority."""
    picks: tuple[float, ...]
    """One number in [0, 1) per node to choose (see `choose`)."""

    @property
    def ends(self) -> float:
        return self.at + self.length

    def describe(self) -> str:
        what = {
            EpisodeKind.KILL_LEADER: "kill -9 the leader"
            + (f" and {self.size - 1} more" if self.size > 1 else ""),
            EpisodeKind.KILL_FOLLOWER: f"kill -9 {self.size} follower(s)",
            EpisodeKind.ISOLATE_LEADER: "cut off the leader"
            + (f" with {self.size - 1} more" if self.size > 1 else ""),
            EpisodeKind.SPLIT: f"cut off {self.size} node(s)",
            EpisodeKind.BROKER_RESTART: "restart the broker",
        }[self.kind]
        undo = "down" if self.kind is EpisodeKind.BROKER_RESTART else "for"
        return f"at {self.at:5.1f} s: {what} ({undo} {self.length:.1f} s)"


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    nodes: int
    duration: float
    episodes: tuple[Episode, ...]

    def kinds(self) -> set[EpisodeKind]:
        return {e.kind for e in self.episodes}

    def describe(self) -> list[str]:
        return [e.describe() for e in self.episodes]


def minority(nodes: int) -> int:
    """The most nodes that may fail while the others still form a majority."""
    return (nodes - 1) // 2


def make_plan(seed: int, duration: float, nodes: int) -> Plan:
    """The seeded plan of a run of `duration` seconds on `nodes` nodes.

    Every episode ends (its fault undone) by `duration`; episodes never overlap, so at most a
    minority of the nodes is down or cut off at any time and a partition is never in force
    while the broker restarts (a control message sent then could be lost)."""
    check_cluster_size(nodes)
    if not duration > 0:
        raise ConfigError(f"a chaos run's duration must be a positive number, got {duration!r}")
    rng = random.Random(f"raftoral-chaos-plan:{seed}")
    first = list(EPISODE_KINDS)
    rng.shuffle(first)
    episodes: list[Episode] = []
    at = FIRST_AT
    while True:
        kind = first[len(episodes)] if len(episodes) < len(first) else rng.choice(EPISODE_KINDS)
        if kind is EpisodeKind.BROKER_RESTART:
            length = rng.uniform(*BROKER_DOWNTIME)
            size = 0
        else:
            length = rng.uniform(*FAULT_LENGTH)
            size = rng.randint(1, minority(nodes))
        if at + length > duration:
            break
        picks = tuple(rng.random() for _ in range(max(size, 1)))
        episodes.append(
            Episode(len(episodes) + 1, kind, round(at, 3), round(length, 3), size, picks)
        )
        at += length + rng.uniform(*GAP)
    return Plan(seed, nodes, float(duration), tuple(episodes))


def check_cluster_size(nodes: int) -> None:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not MIN_NODES <= nodes <= MAX_NODES:
        raise ConfigError(
            f"a chaos run takes {MIN_NODES} to {MAX_NODES} nodes, got {nodes!r} (with fewer than "
            "3 no node can fail without stopping the cluster)"
        )


def choose(candidates: Sequence[int], picks: Sequence[float], count: int) -> list[int]:
    """`count` distinct candidates (fewer if there are fewer), chosen by `picks` in order:
    the same candidates and picks give the same choice."""
    pool = sorted(candidates)
    chosen: list[int] = []
    for i in range(min(count, len(pool))):
        pick = picks[i % len(picks)] if picks else 0.0
        chosen.append(pool.pop(min(int(pick * len(pool)), len(pool) - 1)))
    return chosen
