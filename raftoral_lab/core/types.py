"""Plain values of the Raft core: log entries, membership, durable state and snapshots."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from raftoral_lab.errors import ConfChangeError, ConfigError


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryKind(StrEnum):
    NORMAL = "normal"
    CONF_CHANGE = "conf_change"


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `data` is opaque to the core unless `kind` is CONF_CHANGE."""

    index: int
    term: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL


class ConfChangeOp(StrEnum):
    ADD_LEARNER = "add_learner"  # a non-voting member that receives the log
    ADD_VOTER = "add_voter"  # promote a learner (or add a voter directly)
    REMOVE = "remove"  # remove a voter or a learner, the leader included


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change; it takes effect when its entry is applied."""

    op: ConfChangeOp
    node: int

    def encode(self) -> bytes:
        return f"{self.op.value}:{self.node}".encode()

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        try:
            op, node = data.decode().split(":")
            return cls(ConfChangeOp(op), int(node))
        except ValueError as exc:
            raise ConfChangeError(f"not a membership change entry: {data!r}") from exc


@dataclass(frozen=True, slots=True)
class ConfState:
    """Who votes and who only listens."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.learners

    def apply(self, change: ConfChange) -> ConfState:
        """The membership after `change`; raises ConfChangeError when it cannot apply."""
        voters, learners, node = set(self.voters), set(self.learners), change.node
        if change.op is ConfChangeOp.ADD_LEARNER:
            if node in voters:
                raise ConfChangeError(f"node {node} is a voter already; remove it first")
            learners.add(node)
        elif change.op is ConfChangeOp.ADD_VOTER:
            learners.discard(node)
            voters.add(node)
        else:
            if node not in voters and node not in learners:
                raise ConfChangeError(f"node {node} is not a member")
            if voters == {node}:
                raise ConfChangeError(f"node {node} is the last voter and cannot be removed")
            voters.discard(node)
            learners.discard(node)
        return ConfState(frozenset(voters), frozenset(learners))


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a message that depends on it leaves the node."""

    term: int = 0
    vote: int | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int
    term: int
    conf: ConfState


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine's bytes at `meta.index`, with the membership at that point."""

    meta: SnapshotMeta
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class PersistentState:
    """Everything a node kept on disk: what a restarted node is rebuilt from."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()


def bootstrap_state(voters: Iterable[int], learners: Iterable[int] = ()) -> PersistentState:
    """The durable state of every founding member of a new group of `voters` (and founding
    `learners`, which replicate without voting: the management group's many listeners).

    The membership is a snapshot at index 1, term 1, rather than entries: a node that joins
    later needs entry 1, which no log holds, so the leader sends it this snapshot first and
    the joiner learns who the members are from it.
    """
    members = frozenset(voters)
    listeners = frozenset(learners)
    if not members:
        raise ConfigError("a new group needs at least one voter: one without voters never elects")
    bad = sorted(
        repr(v)
        for v in members | listeners
        if isinstance(v, bool) or not isinstance(v, int) or v < 0
    )
    if bad:
        raise ConfigError(f"member ids must be non-negative ints, got {', '.join(bad)}")
    if members & listeners:
        raise ConfigError(f"node(s) {sorted(members & listeners)} cannot be voter and learner")
    conf = ConfState(voters=members, learners=listeners)
    snapshot = Snapshot(SnapshotMeta(index=1, term=1, conf=conf))
    return PersistentState(HardState(term=1, vote=None, commit=1), snapshot, ())
