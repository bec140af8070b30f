"""The management group's state machine (group 0): nodes and execution clusters, nothing per
workflow.

Its log holds only plans: each `Plan` replaces the whole cluster map and is applied only on
the version it was computed from, so two managers (an old leader and a new one) never mix
their decisions. Every node applies group 0 (most as learners) and so knows which execution
clusters exist and who belongs to each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raftoral_lab.core import Entry, EntryKind

ID_PREFIX = "e"
"""Workflow ids of a scaled cluster read `e{cluster}-{rest}`: the id tells its cluster."""


@dataclass(frozen=True, slots=True)
class ExecutionCluster:
    """One execution cluster: its Raft group id, its members, and who founded it (the founders
    bootstrap the group; later members join it as learners through its own log)."""

    id: int
    members: tuple[int, ...]
    founders: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "members": list(self.members), "founders": list(self.founders)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExecutionCluster:
        cluster_id = raw["id"]
        members = tuple(int(m) for m in raw["members"])
        founders = tuple(int(m) for m in raw["founders"])
        if not isinstance(cluster_id, int) or cluster_id < 1:
            raise ValueError(f"an execution cluster id is an int >= 1, got {cluster_id!r}")
        return cls(cluster_id, tuple(sorted(members)), tuple(sorted(founders)))


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole cluster map, computed by the management leader from version `base`."""

    base: int
    clusters: tuple[ExecutionCluster, ...]
    live: tuple[int, ...]
    """The nodes the manager saw alive when it planned (the dashboard's management tier)."""

    def encode(self) -> bytes:
        body = {
            "op": "plan",
            "base": self.base,
            "clusters": [c.to_json() for c in self.clusters],
            "live": list(self.live),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Plan:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("op") != "plan":
            raise ValueError("not a management plan")
        base = raw["base"]
        if not isinstance(base, int) or base < 0:
            raise ValueError(f"a plan's base version is an int >= 0, got {base!r}")
        clusters = tuple(ExecutionCluster.from_json(c) for c in raw["clusters"])
        if len({c.id for c in clusters}) != len(clusters):
            raise ValueError("a plan names the same execution cluster twice")
        return cls(base, clusters, tuple(sorted(int(n) for n in raw.get("live", []))))


ChangeHook = Callable[["ManagementState"], None]


class ManagementState:
    """Implements the node's `StateMachine` protocol for group 0."""

    def __init__(self) -> None:
        self.version = 0
        """How many plans were applied: the next plan must be computed from this one."""
        self.clusters: dict[int, ExecutionCluster] = {}
        self.live: tuple[int, ...] = ()
        self.next_cluster = 1
        """Cluster ids are never reused: a workflow id names its cluster for good."""
        self.last_index = 0
        """Index of the last entry applied (not `applied_index`: that name tells a node the
        state is durable, and this one is rebuilt from the log on every start)."""
        self.listener: ChangeHook | None = None

    def apply(self, entry: Entry) -> object:
        self.last_index = entry.index
        if entry.kind is not EntryKind.NORMAL or not entry.data:
            return None
        try:
            plan = Plan.decode(entry.data)
        except (ValueError, KeyError, TypeError) as error:
            return {"result": "refused", "reason": str(error)[:200]}
        if plan.base != self.version:
            return {"result": "stale", "version": self.version}
        self.version += 1
        self.clusters = {c.id: c for c in plan.clusters}
        self.live = plan.live
        self.next_cluster = max([self.next_cluster - 1, *self.clusters], default=0) + 1
        if self.listener is not None:
            self.listener(self)
        return {"result": "planned", "version": self.version}

    def member_of(self, node: int) -> list[int]:
        """The execution clusters `node` belongs to."""
        return sorted(c.id for c in self.clusters.values() if node in c.members)

    def snapshot(self) -> bytes:
        body = {
            "version": self.version,
            "clusters": [c.to_json() for c in self.clusters.values()],
            "live": list(self.live),
            "next_cluster": self.next_cluster,
            "last_index": self.last_index,
        }
        return json.dumps(body).encode()

    def restore(self, data: bytes) -> None:
        raw = json.loads(data) if data else {}
        self.version = int(raw.get("version", 0))
        self.clusters = {}
        for item in raw.get("clusters", []):
            cluster = ExecutionCluster.from_json(item)
            self.clusters[cluster.id] = cluster
        self.live = tuple(raw.get("live", ()))
        self.next_cluster = int(raw.get("next_cluster", 1))
        self.last_index = int(raw.get("last_index", 0))
        if self.listener is not None:
            self.listener(self)


def workflow_cluster(workflow_id: str) -> int | None:
    """The execution cluster a workflow id names (`e3-...` -> 3), None if it names none."""
    head, sep, rest = workflow_id.partition("-")
    if not sep or not rest or not head.startswith(ID_PREFIX):
        return None
    digits = head[len(ID_PREFIX) :]
    if not digits.isdigit() or digits.startswith("0"):
        return None
    return int(digits)


def workflow_id_in(cluster: int, rest: str) -> str:
    return f"{ID_PREFIX}{cluster}-{rest}"
