"""Raft's safety properties (paper Figure 3), checked as the simulation runs.

Each check is incremental so it can run after every step: per appended or applied entry it
costs a dictionary lookup, and a new leader is checked against the highest committed entry.
`check_all` re-derives everything from the nodes' current logs, for a final word.
"""

from __future__ import annotations

from collections.abc import Mapping

from raftoral_lab.core import Entry, RawNode, Role
from raftoral_lab.errors import InvariantViolation


class InvariantChecker:
    def __init__(self) -> None:
        self.leader_of_term: dict[int, int] = {}
        # (index, term) -> (data, term of the entry before it): log matching in O(1) per entry
        self.entry_at: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self.applied_at: dict[int, tuple[int, bytes]] = {}  # index -> (first node, data)
        self.highest_commit: tuple[int, int] = (0, 0)  # (index, term)
        self.leader_tail: dict[int, tuple[int, int, int]] = {}  # node -> (term, index, its term)

    # --- incremental, called by the simulator ----------------------------------------------

    def on_entries(self, node: int, raft: RawNode, entries: tuple[Entry, ...]) -> None:
        """Log matching: an (index, term) pair names one entry and one history before it."""
        log = raft.log
        for entry in entries:
            seen = self.entry_at.get((entry.index, entry.term))
            mine = (entry.data, log.term(entry.index - 1))
            if seen is None:
                self.entry_at[(entry.index, entry.term)] = mine
            elif seen[0] != mine[0]:
                raise InvariantViolation(
                    "log matching",
                    f"node {node} holds different data at index {entry.index} term {entry.term}",
                )
            elif None not in (seen[1], mine[1]) and seen[1] != mine[1]:
                raise InvariantViolation(
                    "log matching",
                    f"node {node}: entry {entry.index}/{entry.term} follows term {mine[1]}, "
                    f"elsewhere term {seen[1]}",
                )

    def on_apply(self, node: int, entry: Entry) -> None:
        """State machine safety: no two nodes apply different data at one index."""
        first = self.applied_at.setdefault(entry.index, (node, entry.data))
        if first[1] != entry.data:
            raise InvariantViolation(
                "state machine safety",
                f"nodes {first[0]} and {node} applied different data at index {entry.index}",
            )

    def on_state(self, node: int, raft: RawNode) -> None:
        """Election safety, leader append-only, leader completeness, commit and progress sanity."""
        log = raft.log
        if log.commit_index > log.last_index:
            raise InvariantViolation(
                "commit bound",
                f"node {node} commit_index {log.commit_index} > last_index {log.last_index}",
            )
        commit_term = log.term(log.commit_index)
        if commit_term is not None and log.commit_index > self.highest_commit[0]:
            self.highest_commit = (log.commit_index, commit_term)
        if raft.role is not Role.LEADER:
            self.leader_tail.pop(node, None)
            return
        _check_progress(node, raft)
        term = raft.term
        holder = self.leader_of_term.setdefault(term, node)
        if holder != node:
            raise InvariantViolation(
                "election safety", f"nodes {holder} and {node} are both leaders of term {term}"
            )
        tail = self.leader_tail.get(node)
        if tail is None or tail[0] != term:
            self._check_completeness(node, raft)
        else:
            _, index, index_term = tail
            if index > log.offset and log.term(index) != index_term:
                raise InvariantViolation(
                    "leader append-only",
                    f"leader {node} of term {term} changed or removed its entry at index {index}",
                )
        self.leader_tail[node] = (term, log.last_index, log.last_term)

    def _check_completeness(self, node: int, raft: RawNode) -> None:
        index, term = self.highest_commit
        log = raft.log
        if index > log.offset and log.term(index) != term:
            raise InvariantViolation(
                "leader completeness",
                f"leader {node} of term {raft.term} lacks committed entry {index} (term {term})",
            )

    # --- from scratch -------------------------------------------------------------------------

    def check_all(self, nodes: Mapping[int, RawNode]) -> None:
        """Every property, recomputed over the current logs of the live nodes."""
        leaders: dict[int, int] = {}
        for node, raft in nodes.items():
            if raft.role is Role.LEADER and leaders.setdefault(raft.term, node) != node:
                raise InvariantViolation(
                    "election safety",
                    f"nodes {leaders[raft.term]} and {node} are both leaders of term {raft.term}",
                )
        ids = sorted(nodes)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                _check_pair(a, nodes[a], b, nodes[b])
        for node, raft in nodes.items():
            self.on_state(node, raft)


def _check_progress(node: int, raft: RawNode) -> None:
    """A leader never believes a follower holds, or is owed, more than the leader's own log
    (a belief past it loops snapshots or probes, or counts a phantom replica toward commit)."""
    last = raft.log.last_index
    for peer, pr in raft.progress.items():
        if pr.match_index > last or pr.next_index > last + 1:
            raise InvariantViolation(
                "leader progress",
                f"leader {node} (last index {last}) has match_index {pr.match_index}, "
                f"next_index {pr.next_index} for node {peer}",
            )


def _check_pair(a: int, ra: RawNode, b: int, rb: RawNode) -> None:
    """Log matching and agreement on committed entries between two nodes."""
    la, lb = ra.log, rb.log
    lo = max(la.offset, lb.offset) + 1
    hi = min(la.last_index, lb.last_index)
    matched_from: int | None = None
    for index in range(hi, lo - 1, -1):
        if la.term(index) == lb.term(index):
            matched_from = index
            break
    if matched_from is not None:
        for index in range(lo, matched_from + 1):
            ea, eb = la.slice(index, index + 1)[0], lb.slice(index, index + 1)[0]
            if ea != eb:
                raise InvariantViolation(
                    "log matching",
                    f"nodes {a} and {b} agree at index {matched_from} but differ at {index}",
                )
    both_committed = min(la.commit_index, lb.commit_index, hi)
    for index in range(lo, both_committed + 1):
        if la.term(index) != lb.term(index):
            raise InvariantViolation(
                "state machine safety",
                f"nodes {a} and {b} both committed index {index} with different terms",
            )
