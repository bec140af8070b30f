"""What the views ask of a ClusterView about nodes: which to draw, in which role and colour."""

from __future__ import annotations

from dataclasses import dataclass

from raftoral_lab.events.view import ClusterView, Replica

MAX_SERVER_ID = 999_999_999
"""Ids above this are clients (their reply topics), never servers to draw."""


@dataclass(frozen=True, slots=True)
class NodeLook:
    """How one node is drawn: its role word, colour key and the facts behind them."""

    node: int
    role: str
    """leader, follower, candidate, pre_candidate, learner, dead, removed, unknown."""
    status: str
    term: int
    is_leader: bool
    """The cluster's leader (the unique leader of the highest term among live nodes)."""
    stale_leader: bool
    """Believes it leads an older term (cut off): drawn as a leader, marked stale."""
    broker_down: bool
    commit_index: int
    last_index: int


def server_ids(view: ClusterView) -> list[int]:
    return sorted(n for n in view.nodes if 0 < n <= MAX_SERVER_ID)


def replica_of(view: ClusterView, node: int, group: int) -> Replica | None:
    return view.replicas.get((group, node))


def looks(view: ClusterView, group: int = 0) -> list[NodeLook]:
    leader = view.leader(group)
    membership = view.membership(group)
    learners = set(membership[1]) if membership else set()
    out: list[NodeLook] = []
    for node in server_ids(view):
        state = view.nodes[node]
        r = replica_of(view, node, group)
        term = r.term if r else 0
        if state.status == "crashed":
            role = "dead"
        elif state.status == "removed":
            role = "removed"
        elif r is None:
            role = "unknown"
        elif r.role == "follower" and node in learners:
            role = "learner"
        else:
            role = r.role
        is_leader = leader == node and state.status == "alive"
        out.append(
            NodeLook(
                node=node,
                role=role,
                status=state.status,
                term=term,
                is_leader=is_leader,
                stale_leader=role == "leader" and not is_leader,
                broker_down=state.broker_connected is False,
                commit_index=r.commit_index if r else 0,
                last_index=r.log.last_index if r else 0,
            )
        )
    return out


def sides(view: ClusterView, nodes: list[int]) -> list[list[int]]:
    """The nodes grouped by who can still reach whom (one group when nothing is cut)."""
    cut = view.cut_links()
    parent = {n: n for n in nodes}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if (a, b) not in cut and (b, a) not in cut:
                parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))
