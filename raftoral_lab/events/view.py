"""ClusterView: the picture of a cluster that events add up to.

The dashboard, the notebooks and the tests all ask the same questions (who leads, what is in
each node's log, how far each node committed and applied, which workflows run where, what is
queued), and they ask them of a live in-process cluster, of remote nodes over MQTT and of a
recording. So there is one fold, `ClusterView.apply(event)`, and nothing else feeds the view.

Two properties make the three sources agree:

- Every piece of state is owned by the node whose events describe it (a node's role, term,
  log, commit and applied index, its workflow queues), and what spans nodes is a commutative
  summary of those (the leader is derived from the roles; a checkpoint's committed value is
  the one with the lowest log index; counts are sums). Events of *different* nodes may thus
  arrive in any interleaving, as they do over MQTT, and give the same view; only each node's
  own order matters, and that order is kept by every transport we use.
- Equal inputs give equal views: `view == other` compares `snapshot()`s, plain data built in
  a fixed order.

"What did the cluster look like at time t" is `ClusterView.at(events, t)`: the fold of the
events with `ts <= t` (thanks to the first property no sorting is needed). A view built with
`keep_events=True` answers `view.until(t)` from the events it folded.

Node 0 is the lab or simulator itself (servers are numbered from 1): its `partitioned` and
`healed` events describe the whole network and do not make it a node.

A scaled cluster has two tiers: group 0, the management group, decides the execution clusters
(each its own Raft group 1..n) and every node reports each plan it applies
(`clusters_planned`). The view keeps the newest plan any node reported (`plan`,
`execution_clusters`, `management_version`, `live_by_manager`): plan versions only grow along
group 0's log, so the highest version is a commutative summary like the others. The leader of
every group, management or execution, is the one `leader(group)` derives from the roles.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from raftoral_lab.errors import ConfigError
from raftoral_lab.events.models import (
    MESSAGE_KINDS,
    CheckpointCommitted,
    CheckpointConsumed,
    CheckpointDuplicate,
    CheckpointProposed,
    CheckpointStale,
    ClustersPlanned,
    CommitAdvanced,
    ElectionStarted,
    EntriesAppended,
    EntriesApplied,
    EntriesTruncated,
    EventBase,
    MembershipChanged,
    MessageDelivered,
    MessageDropped,
    MessageSent,
    OwnerChanged,
    Partitioned,
    ProposalForwarded,
    RoleChanged,
    SnapshotInstalled,
    SnapshotTaken,
    StateLoaded,
    VoteReceived,
    WorkflowCompleted,
    WorkflowDivergence,
    WorkflowFailedEvent,
    WorkflowSleeping,
    WorkflowStarted,
)

LAB_NODE = 0
"""The emitter id of the lab / simulator itself (partitions and heals of the whole network)."""

MAX_OVERWRITTEN = 256
"""Overwritten log runs kept per node and group (the newest): enough to show Figure 8."""

MAX_ELECTIONS = 512
"""Elections kept per node and group (the newest); a cut-off node pre-votes forever."""

NodeStatus: TypeAlias = Literal["alive", "crashed", "removed"]
WorkflowStatus: TypeAlias = Literal["running", "sleeping", "completed", "failed", "cancelled"]
ElectionOutcome: TypeAlias = Literal["won", "lost"]

_LAB_KINDS = frozenset({"partitioned", "healed"})
"""Kinds that node 0 (the lab) emits about the whole network: they do not make it a node."""

_TERMINAL: tuple[WorkflowStatus, ...] = ("failed", "cancelled", "completed")
"""Terminal statuses, in the order that decides a workflow's status if nodes disagree."""


# --- logs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class LogRun:
    """Entries `first..last` (inclusive), all of `term`: a log is drawn as a few such runs."""

    first: int
    last: int
    term: int

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class OverwrittenRun:
    """Entries `first..last` of `term` that a later leader's entries replaced, at time `ts`.

    They were never committed (Raft never overwrites a committed entry): the dashboard draws
    them struck out, which is the lesson of the paper's Figure 8.
    """

    first: int
    last: int
    term: int
    ts: float


class NodeLog:
    """One node's log in one group as runs of equal term, plus the snapshot point.

    Each event touches only the end of the list, so the fold stays O(1) per event. The runs
    are as exact as `entries_appended` is: while the core reports a batch spanning terms as
    one event (with the last entry's term), such a batch shows as one run of that term.
    """

    __slots__ = ("overwritten", "runs", "snapshot_index", "snapshot_term")

    def __init__(self) -> None:
        self.runs: list[LogRun] = []
        self.overwritten: deque[OverwrittenRun] = deque(maxlen=MAX_OVERWRITTEN)
        self.snapshot_index = 0
        self.snapshot_term = 0

    @property
    def last_index(self) -> int:
        return self.runs[-1].last if self.runs else self.snapshot_index

    @property
    def last_term(self) -> int:
        return self.runs[-1].term if self.runs else self.snapshot_term

    @property
    def first_index(self) -> int:
        """The first entry still in the log (after the snapshot)."""
        return self.snapshot_index + 1

    def term_at(self, index: int) -> int | None:
        """The term of entry `index`, or None if it is not in the log (or in the snapshot)."""
        if index == self.snapshot_index:
            return self.snapshot_term
        for run in reversed(self.runs):
            if run.first <= index <= run.last:
                return run.term
            if run.last < index:
                return None
        return None

    def terms(self) -> list[tuple[int, int]]:
        """(index, term) of every entry after the snapshot, for tests and small displays."""
        return [(i, run.term) for run in self.runs for i in range(run.first, run.last + 1)]

    def append(self, first: int, last: int, term: int, ts: float) -> None:
        runs = self.runs
        if runs and runs[-1].last >= first:
            self.truncate(first, ts)  # replaced without a truncation event: still overwritten
        if runs:
            tail = runs[-1]
            if tail.term == term and tail.last + 1 == first:
                tail.last = last
                return
        runs.append(LogRun(first, last, term))

    def truncate(self, from_index: int, ts: float) -> None:
        runs = self.runs
        while runs and runs[-1].last >= from_index:
            run = runs[-1]
            if run.first >= from_index:
                runs.pop()
                self.overwritten.append(OverwrittenRun(run.first, run.last, run.term, ts))
            else:
                self.overwritten.append(OverwrittenRun(from_index, run.last, run.term, ts))
                run.last = from_index - 1
                break

    def compact(self, index: int, term: int) -> None:
        """A snapshot taken here: entries up to `index` fold into it."""
        runs = self.runs
        drop = 0
        for run in runs:
            if run.last <= index:
                drop += 1
            else:
                run.first = max(run.first, index + 1)
                break
        del runs[:drop]
        if index > self.snapshot_index:
            self.snapshot_index, self.snapshot_term = index, term

    def install(self, index: int, term: int, ts: float) -> None:
        """A snapshot from the leader replaces the whole log; entries past it were never
        committed and count as overwritten."""
        self.truncate(index + 1, ts)
        self.runs.clear()
        self.snapshot_index, self.snapshot_term = index, term

    def load(
        self, snapshot_index: int, snapshot_term: int, last_index: int, last_term: int
    ) -> None:
        """The node reported what its storage holds. When the view's log agrees (same term at
        `last_index`) it is kept, as it knows the term of every run; otherwise the log becomes
        one run of `last_term` (an observer that came late cannot know more)."""
        if snapshot_index >= self.snapshot_index and self.term_at(last_index) == last_term:
            if snapshot_index > self.snapshot_index:
                self.compact(snapshot_index, snapshot_term)
            runs = self.runs
            while runs and runs[-1].last > last_index:  # not durable: gone, not overwritten
                if runs[-1].first > last_index:
                    runs.pop()
                else:
                    runs[-1].last = last_index
            return
        self.runs.clear()
        self.snapshot_index, self.snapshot_term = snapshot_index, snapshot_term
        if last_index > snapshot_index:
            self.runs.append(LogRun(snapshot_index + 1, last_index, last_term))

    def snapshot(self) -> dict[str, Any]:
        return {
            "snapshot": (self.snapshot_index, self.snapshot_term),
            "runs": [(r.first, r.last, r.term) for r in self.runs],
            "overwritten": [(o.first, o.last, o.term, o.ts) for o in self.overwritten],
        }


# --- nodes and groups ------------------------------------------------------------------------


@dataclass(slots=True)
class NodeState:
    """A server as a whole: up or not, its broker connection, what it forwarded."""

    id: int
    status: NodeStatus = "alive"
    broker_connected: bool | None = None
    """None until a broker event said otherwise (in-process nodes have no broker)."""
    broker_disconnects: int = 0
    forwarded: int = 0
    """Proposals this node forwarded to a leader."""


@dataclass(slots=True)
class Election:
    """One campaign of one node: a pre-vote or a real vote, and how it ended (None: open)."""

    group: int
    node: int
    term: int
    pre_vote: bool
    started: float
    votes: int = 1
    needed: int = 0
    outcome: ElectionOutcome | None = None


@dataclass(slots=True)
class LeaderSpan:
    """`node` led `group` in `term` from `since` until `until` (None: still, as far as known)."""

    group: int
    term: int
    node: int
    since: float
    until: float | None = None


class Replica:
    """One node's state in one Raft group: role, term, log, commit and applied, membership."""

    __slots__ = (
        "applied_index",
        "commit_index",
        "conf_changes",
        "elections",
        "group",
        "leader",
        "learners",
        "log",
        "node",
        "role",
        "span",
        "term",
        "voters",
    )

    def __init__(self, node: int, group: int) -> None:
        self.node = node
        self.group = group
        self.role = "follower"
        self.term = 0
        self.leader: int | None = None
        self.commit_index = 0
        self.applied_index = 0
        self.log = NodeLog()
        self.voters: tuple[int, ...] | None = None
        self.learners: tuple[int, ...] = ()
        self.conf_changes = 0
        self.elections: deque[Election] = deque(maxlen=MAX_ELECTIONS)
        self.span: LeaderSpan | None = None
        """The leadership this replica holds now (also in `ClusterView.leader_spans`)."""

    @property
    def last_index(self) -> int:
        return self.log.last_index

    def snapshot(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "term": self.term,
            "leader": self.leader,
            "commit_index": self.commit_index,
            "applied_index": self.applied_index,
            "voters": self.voters,
            "learners": self.learners,
            "log": self.log.snapshot(),
        }

    def __repr__(self) -> str:
        return (
            f"<Replica node {self.node} group {self.group}: {self.role} term {self.term} "
            f"last {self.log.last_index} commit {self.commit_index} applied {self.applied_index}>"
        )


# --- workflows -------------------------------------------------------------------------------


@dataclass(slots=True)
class Checkpoint:
    """The fate of one checkpoint operation of a workflow run.

    `index` is None while the value is proposed but not committed. Whatever order the nodes'
    events arrive in, the committed value is the one with the lowest log index (the first
    committed wins, as the workflow layer decides) and a pending proposal the one of the
    highest epoch.
    """

    ordinal: int
    key: str
    epoch: int
    index: int | None = None
    duplicates: int = 0

    @property
    def committed(self) -> bool:
        return self.index is not None


@dataclass(slots=True)
class WorkflowOnNode:
    """One node's run of a workflow and its checkpoint queue.

    `committed` is every value that reached this node's queue, `consumed` what its run took;
    the difference is `pending`, the queue the dashboard draws.
    """

    node: int
    status: WorkflowStatus = "running"
    committed: dict[int, str] = field(default_factory=dict)
    consumed: dict[int, str] = field(default_factory=dict)
    sleeping_until: float | None = None

    @property
    def pending(self) -> list[tuple[int, str]]:
        """(ordinal, key) committed here and not yet consumed, in ordinal order."""
        return sorted((o, k) for o, k in self.committed.items() if o not in self.consumed)

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "committed": sorted(self.committed.items()),
            "consumed": sorted(self.consumed.items()),
            "sleeping_until": self.sleeping_until,
        }


@dataclass(frozen=True, slots=True)
class Divergence:
    node: int
    ordinal: int
    expected_key: str
    actual_key: str


@dataclass(slots=True)
class WorkflowState:
    """A workflow across the cluster: what it is, who owns it, how far it got, how it ended."""

    id: str
    name: str | None = None
    version: int | None = None
    started: float | None = None
    ended: float | None = None
    owner: int | None = None
    epoch: int | None = None
    result: str | None = None
    """The text of the return value, when the producer reported it."""
    error_type: str | None = None
    error_message: str | None = None
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    nodes: dict[int, WorkflowOnNode] = field(default_factory=dict)
    divergences: set[Divergence] = field(default_factory=set)
    stale: int = 0
    """Checkpoint proposals of an old owner's epoch that were rejected."""
    _owner_key: tuple[int, int] | None = field(default=None, repr=False)

    @property
    def status(self) -> WorkflowStatus:
        """Terminal as soon as any node ended it; "sleeping" when the owner sleeps."""
        statuses = {run.status for run in self.nodes.values()}
        for terminal in _TERMINAL:
            if terminal in statuses:
                return terminal
        owner_run = self.nodes.get(self.owner) if self.owner is not None else None
        if owner_run is not None and owner_run.status == "sleeping":
            return "sleeping"
        return "running"

    def queue(self, node: int) -> list[tuple[int, str]]:
        """The committed checkpoints `node` has not consumed yet (its queue), oldest first."""
        run = self.nodes.get(node)
        return run.pending if run is not None else []

    def run(self, node: int) -> WorkflowOnNode:
        run = self.nodes.get(node)
        if run is None:
            run = self.nodes[node] = WorkflowOnNode(node)
        return run

    def set_owner(self, owner: int, epoch: int) -> None:
        key = (epoch, owner)
        if self._owner_key is None or key > self._owner_key:
            self._owner_key = key
            self.owner = owner
        self.see_epoch(epoch)

    def see_epoch(self, epoch: int) -> None:
        if epoch >= 0 and (self.epoch is None or epoch > self.epoch):
            self.epoch = epoch

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "owner": self.owner,
            "epoch": self.epoch,
            "result": self.result,
            "error": (self.error_type, self.error_message) if self.error_type else None,
            "checkpoints": [
                (c.ordinal, c.key, c.epoch, c.index, c.duplicates)
                for _, c in sorted(self.checkpoints.items())
            ],
            "nodes": {n: run.snapshot() for n, run in sorted(self.nodes.items())},
            "divergences": sorted(
                (d.node, d.ordinal, d.expected_key, d.actual_key) for d in self.divergences
            ),
            "stale": self.stale,
        }


# --- the two tiers of a scaled cluster ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    """A plan of the management group (group 0): the execution clusters and their members,
    and the nodes the manager saw alive when it planned.

    `since` is the earliest time any node reported applying it (nodes apply a plan one after
    the other; the earliest is when it first took effect somewhere)."""

    version: int
    clusters: tuple[tuple[int, tuple[int, ...]], ...]
    """(cluster id, members) of every execution cluster, by id."""
    live: tuple[int, ...]
    since: float

    @property
    def key(self) -> tuple[int, tuple[tuple[int, tuple[int, ...]], ...], tuple[int, ...]]:
        """What orders plans: the version first (only the content breaks a tie, which a
        correct management group never makes), so the newest plan wins in any order."""
        return (self.version, self.clusters, self.live)

    def members(self) -> dict[int, tuple[int, ...]]:
        """Cluster id -> its members."""
        return dict(self.clusters)

    def clusters_of(self, node: int) -> list[int]:
        """The execution clusters `node` belongs to (several when it is shared)."""
        return [cluster for cluster, members in self.clusters if node in members]


@dataclass(slots=True)
class MessageCount:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0


# --- the view --------------------------------------------------------------------------------


class ClusterView:
    """The current picture of a cluster, folded from its events (see the module docstring).

    Feed it with `apply(event)` (it is a listener: `node.listeners.append(view)`), `extend`,
    or the constructor. Read `nodes`, `replica(node, group)`, `leader(group)`, `leader_spans`,
    `elections()`, `workflows`, `messages`, `drops`, `partitions`, and in a scaled cluster
    `plan` (`execution_clusters`, `management_version`, `live_by_manager`, `clusters_of`);
    compare with `==`.
    """

    def __init__(self, events: Iterable[EventBase] = (), *, keep_events: bool = False) -> None:
        self.nodes: dict[int, NodeState] = {}
        self.replicas: dict[tuple[int, int], Replica] = {}
        """(group, node) -> that node's state in that group."""
        self.leader_spans: dict[tuple[int, int, int], LeaderSpan] = {}
        """(group, term, node) -> when that node led that term: the leader timeline."""
        self.workflows: dict[str, WorkflowState] = {}
        self.messages: dict[str, MessageCount] = {}
        """Message kind -> sent, delivered, dropped."""
        self.drops: Counter[str] = Counter()
        """Dropped messages by reason ("partition", "drop_rate", "node_down", ...)."""
        self.links: Counter[tuple[int, int]] = Counter()
        """(src, dst) -> messages sent: the edges of the topology."""
        self.partitions: dict[int, tuple[tuple[int, ...], ...]] = {}
        """Emitter -> the sides it cut the network into (node 0: the lab's whole-network cut;
        a server: the peers it blocks, as `((itself,), blocked)`); healed cuts are removed."""
        self.plan: ClusterPlan | None = None
        """The newest plan of the management group any node reported (None: not scaled, or
        no node said so yet)."""
        self.plan_versions: dict[int, int] = {}
        """Node -> version of the plan it reported last (a restarted node starts again from 0
        and catches up as it replays group 0's log)."""
        self.counts: Counter[str] = Counter()
        """Events folded, by kind."""
        self.time: float | None = None
        """The latest `ts` folded (None before the first event)."""
        self.events: list[EventBase] | None = [] if keep_events else None
        self._leaders: dict[int, dict[int, int]] = {}  # group -> {leader node: term}
        self._handlers: dict[str, Callable[[EventBase], None]] = {
            "role_changed": self._role_changed,  # type: ignore[dict-item]
            "election_started": self._election_started,  # type: ignore[dict-item]
            "vote_received": self._vote_received,  # type: ignore[dict-item]
            "entries_appended": self._entries_appended,  # type: ignore[dict-item]
            "entries_truncated": self._entries_truncated,  # type: ignore[dict-item]
            "commit_advanced": self._commit_advanced,  # type: ignore[dict-item]
            "entries_applied": self._entries_applied,  # type: ignore[dict-item]
            "snapshot_taken": self._snapshot_taken,  # type: ignore[dict-item]
            "snapshot_installed": self._snapshot_installed,  # type: ignore[dict-item]
            "membership_changed": self._membership_changed,  # type: ignore[dict-item]
            "state_loaded": self._state_loaded,  # type: ignore[dict-item]
            "message_sent": self._message_sent,  # type: ignore[dict-item]
            "message_delivered": self._message_delivered,  # type: ignore[dict-item]
            "message_dropped": self._message_dropped,  # type: ignore[dict-item]
            "node_crashed": self._node_crashed,
            "node_restarted": self._node_restarted,
            "node_joined": self._node_joined,
            "node_removed": self._node_removed,
            "partitioned": self._partitioned,  # type: ignore[dict-item]
            "healed": self._healed,
            "proposal_forwarded": self._proposal_forwarded,  # type: ignore[dict-item]
            "broker_disconnected": self._broker_disconnected,
            "broker_reconnected": self._broker_reconnected,
            "clusters_planned": self._clusters_planned,  # type: ignore[dict-item]
            "workflow_started": self._workflow_started,  # type: ignore[dict-item]
            "checkpoint_proposed": self._checkpoint_proposed,  # type: ignore[dict-item]
            "checkpoint_committed": self._checkpoint_committed,  # type: ignore[dict-item]
            "checkpoint_consumed": self._checkpoint_consumed,  # type: ignore[dict-item]
            "checkpoint_duplicate": self._checkpoint_duplicate,  # type: ignore[dict-item]
            "checkpoint_stale": self._checkpoint_stale,  # type: ignore[dict-item]
            "owner_changed": self._owner_changed,  # type: ignore[dict-item]
            "workflow_divergence": self._workflow_divergence,  # type: ignore[dict-item]
            "workflow_sleeping": self._workflow_sleeping,  # type: ignore[dict-item]
            "workflow_completed": self._workflow_completed,  # type: ignore[dict-item]
            "workflow_failed": self._workflow_failed,  # type: ignore[dict-item]
            "workflow_cancelled": self._workflow_cancelled,
        }
        self.extend(events)

    # --- folding -------------------------------------------------------------------------------

    def apply(self, event: EventBase) -> None:
        """Fold one event into the view."""
        if self.events is not None:
            self.events.append(event)
        kind = event.kind
        self.counts[kind] += 1
        ts = event.ts
        if self.time is None or ts > self.time:
            self.time = ts
        node = event.node
        if node not in self.nodes and (node != LAB_NODE or kind not in _LAB_KINDS):
            self.nodes[node] = NodeState(node)
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    __call__ = apply

    def extend(self, events: Iterable[EventBase]) -> None:
        apply = self.apply
        for event in events:
            apply(event)

    @classmethod
    def at(cls, events: Iterable[EventBase], t: float) -> ClusterView:
        """The cluster as it was at time `t`: the fold of the events with `ts <= t`."""
        return cls(e for e in events if e.ts <= t)

    def until(self, t: float) -> ClusterView:
        """This view as it was at time `t` (needs `keep_events=True`)."""
        if self.events is None:
            raise ConfigError(
                "this ClusterView keeps no events; build it with keep_events=True, or use "
                "ClusterView.at(events, t) with the events (e.g. an EventLog or a recording)"
            )
        return ClusterView.at(self.events, t)

    # --- questions -----------------------------------------------------------------------------

    def replica(self, node: int, group: int = 0) -> Replica:
        """`node`'s state in `group` (created empty if no event mentioned it yet)."""
        key = (group, node)
        replica = self.replicas.get(key)
        if replica is None:
            replica = self.replicas[key] = Replica(node, group)
        return replica

    def groups(self) -> list[int]:
        return sorted({group for group, _ in self.replicas})

    def members(self, group: int = 0) -> list[Replica]:
        """The replicas of `group`, by node id."""
        return [r for (g, _), r in sorted(self.replicas.items()) if g == group]

    def leader(self, group: int = 0) -> int | None:
        """The unique leader of the highest term among the live nodes, if there is one (as
        `Simulation.leader()` defines it)."""
        leaders = self._leaders.get(group)
        if not leaders:
            return None
        nodes = self.nodes
        live = [(term, n) for n, term in leaders.items() if nodes[n].status == "alive"]
        if not live:
            return None
        top = max(term for term, _ in live)
        at_top = [n for term, n in live if term == top]
        return at_top[0] if len(at_top) == 1 else None

    def term(self, group: int = 0) -> int:
        """The highest term any node of `group` reached."""
        return max((r.term for (g, _), r in self.replicas.items() if g == group), default=0)

    def membership(self, group: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(voters, learners) of `group`: the leader's, else those of the node that applied
        the most changes; None before any membership change was seen (bootstrap membership
        is not an event)."""
        leader = self.leader(group)
        if leader is not None:
            replica = self.replicas[(group, leader)]
            if replica.voters is not None:
                return replica.voters, replica.learners
        best: Replica | None = None
        for r in self.members(group):
            if r.voters is not None and (best is None or r.conf_changes > best.conf_changes):
                best = r
        return (best.voters, best.learners) if best and best.voters is not None else None

    def leaders(self, group: int = 0) -> list[LeaderSpan]:
        """Who led `group` when, by term: the leader timeline."""
        return [span for (g, _, _), span in sorted(self.leader_spans.items()) if g == group]

    def elections(self, group: int | None = None) -> list[Election]:
        """Every campaign seen (newest `MAX_ELECTIONS` per node), by node, in order."""
        return [
            election
            for (g, _), replica in sorted(self.replicas.items())
            if group is None or g == group
            for election in replica.elections
        ]

    @property
    def execution_clusters(self) -> dict[int, tuple[int, ...]]:
        """Execution cluster id (its Raft group) -> its members, as the newest plan has them
        ({} when the cluster is not scaled, or before the first plan)."""
        return self.plan.members() if self.plan is not None else {}

    @property
    def management_version(self) -> int | None:
        """The version of the newest plan (None before any node reported one)."""
        return self.plan.version if self.plan is not None else None

    @property
    def live_by_manager(self) -> tuple[int, ...]:
        """The nodes the management leader saw alive when it made the newest plan."""
        return self.plan.live if self.plan is not None else ()

    def clusters_of(self, node: int) -> list[int]:
        """The execution clusters `node` belongs to in the newest plan."""
        return self.plan.clusters_of(node) if self.plan is not None else []

    def cluster_leaders(self) -> dict[int, int | None]:
        """Execution cluster id -> its leader (as `leader(group)` derives it), by id."""
        return {cluster: self.leader(cluster) for cluster in self.execution_clusters}

    def workflow(self, workflow_id: str) -> WorkflowState:
        """The workflow `workflow_id` (created empty if no event mentioned it yet)."""
        state = self.workflows.get(workflow_id)
        if state is None:
            state = self.workflows[workflow_id] = WorkflowState(workflow_id)
        return state

    def cut_links(self) -> set[tuple[int, int]]:
        """Ordered pairs (a, b) of nodes that the current partitions keep apart."""
        cut: set[tuple[int, int]] = set()
        for sides in self.partitions.values():
            for i, side in enumerate(sides):
                for other in sides[i + 1 :]:
                    for a in side:
                        for b in other:
                            cut.add((a, b))
                            cut.add((b, a))
        return cut

    # --- comparing -----------------------------------------------------------------------------

    def snapshot(self, *, messages: bool = True) -> dict[str, Any]:
        """The whole view as plain data in a fixed order: equal events, equal snapshots.

        `messages=False` leaves out the message-level counts (sent, delivered, dropped, links,
        drop reasons and the counts of those kinds), to compare with a view fed by a sampling
        publisher.
        """
        groups = self.groups()
        snap: dict[str, Any] = {
            "nodes": {
                n: (s.status, s.broker_connected, s.broker_disconnects, s.forwarded)
                for n, s in sorted(self.nodes.items())
            },
            "groups": {
                g: {
                    "leader": self.leader(g),
                    "term": self.term(g),
                    "membership": self.membership(g),
                    "replicas": {r.node: r.snapshot() for r in self.members(g)},
                }
                for g in groups
            },
            "leader_spans": [
                (s.group, s.term, s.node, s.since, s.until)
                for _, s in sorted(self.leader_spans.items())
            ],
            "elections": [
                (e.group, e.node, e.term, e.pre_vote, e.started, e.votes, e.needed, e.outcome)
                for e in self.elections()
            ],
            "workflows": {w: s.snapshot() for w, s in sorted(self.workflows.items())},
            "partitions": dict(sorted(self.partitions.items())),
            "plan": (
                None
                if self.plan is None
                else (self.plan.version, self.plan.clusters, self.plan.live, self.plan.since)
            ),
            "plan_versions": dict(sorted(self.plan_versions.items())),
            "counts": {
                k: c for k, c in sorted(self.counts.items()) if messages or k not in MESSAGE_KINDS
            },
        }
        if messages:
            snap["messages"] = {
                k: (c.sent, c.delivered, c.dropped) for k, c in sorted(self.messages.items())
            }
            snap["drops"] = dict(sorted(self.drops.items()))
            snap["links"] = dict(sorted(self.links.items()))
        return snap

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClusterView):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        leaders = {g: self.leader(g) for g in self.groups()}
        return (
            f"<ClusterView {len(self.nodes)} nodes, leaders {leaders}, "
            f"{len(self.workflows)} workflows, {sum(self.counts.values())} events>"
        )

    # --- Raft ----------------------------------------------------------------------------------

    def _step_down(self, replica: Replica, ts: float) -> None:
        span = replica.span
        if span is not None:
            span.until = ts
            replica.span = None
            leaders = self._leaders.get(replica.group)
            if leaders is not None:
                leaders.pop(replica.node, None)

    def _close_election(self, replica: Replica, outcome: ElectionOutcome) -> None:
        elections = replica.elections
        if elections and elections[-1].outcome is None:
            elections[-1].outcome = outcome

    def _role_changed(self, e: RoleChanged) -> None:
        r = self.replica(e.node, e.group)
        if r.span is not None and (e.role != "leader" or e.term != r.term):
            self._step_down(r, e.ts)
        elections = r.elections
        if elections and elections[-1].outcome is None:
            last = elections[-1]
            passed_pre_vote = e.role == "candidate" and last.pre_vote
            won_vote = e.role == "leader" and not last.pre_vote and last.term == e.term
            if passed_pre_vote or won_vote:
                last.outcome = "won"
            elif e.role == "follower":
                last.outcome = "lost"
        r.role = e.role
        r.term = e.term
        r.leader = e.leader
        if e.role == "leader" and r.span is None:
            key = (e.group, e.term, e.node)
            span = self.leader_spans.get(key)
            if span is None:
                span = self.leader_spans[key] = LeaderSpan(e.group, e.term, e.node, e.ts)
            else:
                # A node leads a term at most once: this is the same leadership reported
                # again (a node announcing its state to a late observer), not a new one.
                span.until = None
            r.span = span
            self._leaders.setdefault(e.group, {})[e.node] = e.term

    def _election_started(self, e: ElectionStarted) -> None:
        r = self.replica(e.node, e.group)
        self._close_election(r, "lost")
        r.elections.append(Election(e.group, e.node, e.term, e.pre_vote, e.ts))

    def _vote_received(self, e: VoteReceived) -> None:
        elections = self.replica(e.node, e.group).elections
        if elections:
            last = elections[-1]
            if last.outcome is None and last.term == e.term and last.pre_vote == e.pre_vote:
                last.votes = e.votes
                last.needed = e.needed

    def _entries_appended(self, e: EntriesAppended) -> None:
        self.replica(e.node, e.group).log.append(e.first_index, e.last_index, e.term, e.ts)

    def _entries_truncated(self, e: EntriesTruncated) -> None:
        self.replica(e.node, e.group).log.truncate(e.from_index, e.ts)

    def _commit_advanced(self, e: CommitAdvanced) -> None:
        self.replica(e.node, e.group).commit_index = e.commit_index

    def _entries_applied(self, e: EntriesApplied) -> None:
        self.replica(e.node, e.group).applied_index = e.applied_index

    def _snapshot_taken(self, e: SnapshotTaken) -> None:
        self.replica(e.node, e.group).log.compact(e.index, e.term)

    def _snapshot_installed(self, e: SnapshotInstalled) -> None:
        r = self.replica(e.node, e.group)
        r.log.install(e.index, e.term, e.ts)
        r.commit_index = max(r.commit_index, e.index)
        r.applied_index = max(r.applied_index, e.index)

    def _membership_changed(self, e: MembershipChanged) -> None:
        r = self.replica(e.node, e.group)
        r.voters = e.voters
        r.learners = e.learners
        r.conf_changes += 1

    def _state_loaded(self, e: StateLoaded) -> None:
        r = self.replica(e.node, e.group)
        self._step_down(r, e.ts)
        self._close_election(r, "lost")
        r.role, r.term, r.leader = "follower", e.term, None
        r.commit_index, r.applied_index = e.commit_index, e.applied_index
        r.voters, r.learners = e.voters, e.learners
        r.log.load(e.snapshot_index, e.snapshot_term, e.last_index, e.last_term)

    # --- network and lab -------------------------------------------------------------------------

    def _message(self, kind: str) -> MessageCount:
        count = self.messages.get(kind)
        if count is None:
            count = self.messages[kind] = MessageCount()
        return count

    def _message_sent(self, e: MessageSent) -> None:
        self._message(e.message).sent += e.weight
        self.links[(e.src, e.dst)] += e.weight

    def _message_delivered(self, e: MessageDelivered) -> None:
        self._message(e.message).delivered += e.weight

    def _message_dropped(self, e: MessageDropped) -> None:
        self._message(e.message).dropped += e.weight
        self.drops[e.reason] += e.weight

    def _set_status(self, e: EventBase, status: NodeStatus) -> None:
        """Whether it stops or restarts, the node leads nothing and campaigns no more; a
        restarted core comes back as a follower that knows no leader."""
        self.nodes[e.node].status = status
        for (_, node), replica in self.replicas.items():
            if node == e.node:
                self._step_down(replica, e.ts)
                self._close_election(replica, "lost")
                if status == "alive":
                    replica.role = "follower"
                    replica.leader = None

    def _node_crashed(self, e: EventBase) -> None:
        self._set_status(e, "crashed")

    def _node_restarted(self, e: EventBase) -> None:
        self._set_status(e, "alive")

    def _node_joined(self, e: EventBase) -> None:
        self.nodes[e.node].status = "alive"

    def _node_removed(self, e: EventBase) -> None:
        self._set_status(e, "removed")

    def _partitioned(self, e: Partitioned) -> None:
        self.partitions[e.node] = e.sides

    def _healed(self, e: EventBase) -> None:
        self.partitions.pop(e.node, None)

    def _proposal_forwarded(self, e: ProposalForwarded) -> None:
        self.nodes[e.node].forwarded += 1  # every emitter of this kind is registered

    def _broker_disconnected(self, e: EventBase) -> None:
        state = self.nodes[e.node]
        state.broker_connected = False
        state.broker_disconnects += 1

    def _broker_reconnected(self, e: EventBase) -> None:
        self.nodes[e.node].broker_connected = True

    # --- the two tiers ---------------------------------------------------------------------------

    def _clusters_planned(self, e: ClustersPlanned) -> None:
        self.plan_versions[e.node] = e.version
        clusters = tuple(
            sorted((c, tuple(sorted(m))) for c, m in zip(e.cluster_ids, e.clusters, strict=False))
        )
        plan = ClusterPlan(e.version, clusters, tuple(sorted(e.live)), e.ts)
        current = self.plan
        if current is None or plan.key > current.key:
            self.plan = plan
        elif plan.key == current.key and e.ts < current.since:
            self.plan = plan  # the same plan, applied earlier by another node

    # --- workflows -----------------------------------------------------------------------------

    def _workflow_started(self, e: WorkflowStarted) -> None:
        w = self.workflow(e.workflow_id)
        w.name, w.version = e.name, e.version
        if w.started is None or e.ts < w.started:
            w.started = e.ts
        if e.owner is not None:
            w.set_owner(e.owner, -1)  # below every real epoch: an owner change wins
        w.run(e.node)

    def _checkpoint_proposed(self, e: CheckpointProposed) -> None:
        w = self.workflow(e.workflow_id)
        w.see_epoch(e.epoch)
        run = w.run(e.node)
        if run.status == "sleeping":
            run.status, run.sleeping_until = "running", None
        cp = w.checkpoints.get(e.ordinal)
        if cp is None:
            w.checkpoints[e.ordinal] = Checkpoint(e.ordinal, e.key, e.epoch)
        elif cp.index is None and (e.epoch, e.key) > (cp.epoch, cp.key):
            cp.key, cp.epoch = e.key, e.epoch

    def _checkpoint_committed(self, e: CheckpointCommitted) -> None:
        w = self.workflow(e.workflow_id)
        w.see_epoch(e.epoch)
        w.run(e.node).committed[e.ordinal] = e.key
        cp = w.checkpoints.get(e.ordinal)
        if cp is None:
            w.checkpoints[e.ordinal] = Checkpoint(e.ordinal, e.key, e.epoch, e.index)
        elif cp.index is None or e.index < cp.index:
            cp.key, cp.epoch, cp.index = e.key, e.epoch, e.index

    def _checkpoint_consumed(self, e: CheckpointConsumed) -> None:
        run = self.workflow(e.workflow_id).run(e.node)
        run.consumed[e.ordinal] = e.key
        if run.status == "sleeping":
            run.status, run.sleeping_until = "running", None

    def _checkpoint_duplicate(self, e: CheckpointDuplicate) -> None:
        w = self.workflow(e.workflow_id)
        cp = w.checkpoints.get(e.ordinal)
        if cp is None:
            cp = w.checkpoints[e.ordinal] = Checkpoint(e.ordinal, e.key, -1)
        cp.duplicates += 1

    def _checkpoint_stale(self, e: CheckpointStale) -> None:
        w = self.workflow(e.workflow_id)
        w.stale += 1
        w.see_epoch(e.current_epoch)

    def _owner_changed(self, e: OwnerChanged) -> None:
        self.workflow(e.workflow_id).set_owner(e.owner, e.epoch)

    def _workflow_divergence(self, e: WorkflowDivergence) -> None:
        self.workflow(e.workflow_id).divergences.add(
            Divergence(e.node, e.ordinal, e.expected_key, e.actual_key)
        )

    def _workflow_sleeping(self, e: WorkflowSleeping) -> None:
        run = self.workflow(e.workflow_id).run(e.node)
        if run.status == "running":
            run.status, run.sleeping_until = "sleeping", e.until

    def _end(self, e: EventBase, status: WorkflowStatus) -> WorkflowState:
        w = self.workflow(getattr(e, "workflow_id"))  # noqa: B009 - every workflow kind has it
        w.run(e.node).status = status
        w.run(e.node).sleeping_until = None
        if w.ended is None or e.ts < w.ended:
            w.ended = e.ts
        return w

    def _workflow_completed(self, e: WorkflowCompleted) -> None:
        w = self._end(e, "completed")
        if w.name is None:
            w.name = e.name
        if e.result is not None and (w.result is None or e.result < w.result):
            w.result = e.result  # every node returns the same; min() keeps the fold commutative

    def _workflow_failed(self, e: WorkflowFailedEvent) -> None:
        w = self._end(e, "failed")
        error = (e.error_type, e.message)
        if w.error_type is None or error < (w.error_type, w.error_message or ""):
            w.error_type, w.error_message = error

    def _workflow_cancelled(self, e: EventBase) -> None:
        self._end(e, "cancelled")
