"""Where nodes and workflows go: the cluster policy (pure) and workflow placement (pluggable).

`ClusterPolicy.plan` turns the current execution clusters and the live nodes into the clusters
there should be. It is a pure function, so the management leader can run it on every tick
and propose only when the answer changes, and tests can drive it without a cluster. Rules, in
order (each deterministic, lowest ids first):

1. shrink: dead members leave a cluster, as long as its live members keep a majority of it
   (a cluster that lost its majority cannot change its membership; it waits for its nodes);
2. fill: a cluster below `target_size` takes spare nodes (live, in no cluster);
3. create: while `target_size` spares are left (or `min_size` and no cluster exists yet),
   they found a new cluster;
4. grow: each remaining spare joins the smallest cluster below `max_size`;
5. split: a spare that still has no place founds a new cluster with members taken from the
   largest cluster (never below `target_size` there), as soon as that makes `min_size`;
6. borrow: a cluster still below `target_size` takes the least-loaded live nodes of other
   clusters (a node may belong to several), so a dead node is replaced even with no spares;
7. release: a cluster above `target_size` lets go of borrowed members (those in several
   clusters), so sharing ends once spares come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from raftoral_lab.errors import ConfigError
from raftoral_lab.scale.state import ExecutionCluster


@dataclass(frozen=True)
class ClusterPolicy:
    target_size: int = 5
    max_size: int | None = None
    """Default: `target_size + 2`."""
    min_size: int | None = None
    """The fewest nodes that found a cluster. Default: `min(3, target_size)`."""

    def __post_init__(self) -> None:
        if not isinstance(self.target_size, int) or self.target_size < 1:
            raise ConfigError(
                f"execution_cluster_size must be an int >= 1 (3 or 5 is usual), "
                f"got {self.target_size!r}"
            )
        if self.max_size is not None and self.max_size < self.target_size:
            raise ConfigError(
                f"max_size ({self.max_size}) must be at least target_size ({self.target_size})"
            )
        if self.min_size is not None and not 1 <= self.min_size <= self.target_size:
            raise ConfigError(
                f"min_size must be between 1 and target_size ({self.target_size}), "
                f"got {self.min_size}"
            )

    @property
    def largest(self) -> int:
        return self.max_size if self.max_size is not None else self.target_size + 2

    @property
    def smallest(self) -> int:
        return self.min_size if self.min_size is not None else min(3, self.target_size)

    def plan(
        self,
        clusters: Mapping[int, ExecutionCluster],
        live: Iterable[int],
        next_cluster: int,
    ) -> dict[int, ExecutionCluster]:
        """The execution clusters there should be, given who is alive now."""
        alive = set(live)
        members: dict[int, list[int]] = {}
        founders: dict[int, tuple[int, ...]] = {}
        for cluster_id in sorted(clusters):
            cluster = clusters[cluster_id]
            current = list(cluster.members)
            staying = [m for m in current if m in alive]
            members[cluster_id] = staying if 2 * len(staying) > len(current) else current
            founders[cluster_id] = cluster.founders
        placed = {m for ms in members.values() for m in ms}
        spares = sorted(alive - placed)

        def by_size(ids: Iterable[int]) -> list[int]:
            """Healthy clusters, smallest first (one that kept dead members cannot change)."""
            healthy = (c for c in ids if all(m in alive for m in members[c]))
            return sorted(healthy, key=lambda c: (len(members[c]), c))

        for cluster_id in by_size(members):  # 2. fill
            while spares and len(members[cluster_id]) < self.target_size:
                members[cluster_id].append(spares.pop(0))
        while len(spares) >= self.target_size or (  # 3. create
            not members and len(spares) >= self.smallest
        ):
            cluster_id, next_cluster = next_cluster, next_cluster + 1
            members[cluster_id] = spares[: self.target_size]
            founders[cluster_id] = tuple(members[cluster_id])
            spares = spares[self.target_size :]
        for spare in list(spares):  # 4. grow
            room = [c for c in by_size(members) if len(members[c]) < self.largest]
            if room:
                members[room[0]].append(spare)
                spares.remove(spare)
        if spares and by_size(members):  # 5. split
            donor = by_size(members)[-1]
            movable = len(members[donor]) - self.target_size
            wanted = self.smallest - len(spares)
            if movable >= wanted:
                moved = sorted(members[donor])[len(members[donor]) - max(wanted, 0) :]
                members[donor] = [m for m in members[donor] if m not in moved]
                cluster_id, next_cluster = next_cluster, next_cluster + 1
                members[cluster_id] = sorted(spares + moved)
                founders[cluster_id] = tuple(members[cluster_id])
                spares = []
        load = _load(members)
        for cluster_id in by_size(members):  # 6. borrow
            need = self.target_size - len(members[cluster_id])
            if need <= 0:
                continue
            lenders = sorted(
                (n for n in alive if n not in members[cluster_id]), key=lambda n: (load[n], n)
            )
            for lender in lenders[:need]:
                members[cluster_id].append(lender)
                load[lender] += 1
        for cluster_id in by_size(members):  # 7. release
            for member in sorted(members[cluster_id], key=lambda n: (-load[n], -n)):
                if len(members[cluster_id]) <= self.target_size or load[member] <= 1:
                    break
                members[cluster_id].remove(member)
                load[member] -= 1
        return {c: ExecutionCluster(c, tuple(sorted(ms)), founders[c]) for c, ms in members.items()}


def _load(members: Mapping[int, Sequence[int]]) -> dict[int, int]:
    load: dict[int, int] = {}
    for ms in members.values():
        for m in ms:
            load[m] = load.get(m, 0) + 1
    return _Zero(load)


class _Zero(dict[int, int]):
    def __missing__(self, key: int) -> int:
        return 0


class WorkflowPlacement(Protocol):
    """Picks the execution cluster of a new workflow (plug your own into `Lab(placement=...)`)."""

    def choose(self, clusters: Sequence[int], name: str, version: int) -> int: ...


@dataclass
class RoundRobin:
    """Each new workflow goes to the next cluster in id order (per node that starts it)."""

    _turn: int = field(default=0, repr=False)

    def choose(self, clusters: Sequence[int], name: str, version: int) -> int:
        if not clusters:
            raise ConfigError("there is no execution cluster yet; wait for the cluster to form")
        ordered = sorted(clusters)
        chosen = ordered[self._turn % len(ordered)]
        self._turn += 1
        return chosen
