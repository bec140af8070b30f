"""The typed event schema: one frozen pydantic model per kind, in one union tagged by `kind`.

Producers (the simulator and node layers) turn the Raft core's plain `Trace(kind, fields)`
records into events with `make_event`; consumers (EventBus, recorder, ClusterView, dashboard)
only ever see these models, live or replayed from JSON. This module imports nothing of the
Raft layers, so the dashboard can read events without pulling in the protocol.

Validation is strict (no "3" -> 3, no 1 -> True) because a lax schema would hide producer bugs;
id lists accept a list or a tuple and are stored as tuples so an event is immutable all the
way down (and hashable).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, cast, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from raftoral_lab.errors import EventSchemaError

SCHEMA_VERSION = 1
"""Bumped when a kind or field changes meaning; readers refuse events newer than they know."""


def _known_version(v: int) -> int:
    if v > SCHEMA_VERSION:
        raise ValueError(
            f"schema version {v} is newer than this raftoral_lab reads ({SCHEMA_VERSION}); "
            "upgrade raftoral_lab to read these events"
        )
    if v < 1:
        raise ValueError(f"schema version {v} does not exist (versions start at 1)")
    return v


Role: TypeAlias = Literal["follower", "pre_candidate", "candidate", "leader"]
Weight: TypeAlias = Annotated[int, Field(ge=1)]
"""How many messages a message-level event stands for: 1, or N when a publisher sampled one
in N of them (so counts and rates read from a sampled stream stay right on average)."""

Ids: TypeAlias = Annotated[tuple[int, ...], Strict(False)]
"""Node ids: a list or a tuple in, a tuple out (the items themselves stay strict ints)."""


class EventBase(BaseModel):
    """What every event carries: who emitted it, in which Raft group, in what order and when."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str
    v: Annotated[int, AfterValidator(_known_version)] = SCHEMA_VERSION
    node: int
    group: int = 0
    seq: int
    """Per-node sequence number: orders one node's events even when `ts` ties."""
    ts: float
    """Seconds; virtual time in the simulator, wall-clock time on a real node."""
    tick: int | None = None
    """The simulator tick, when there is one."""


# --- Raft (from the core's Trace records) ----------------------------------------------------


class RoleChanged(EventBase):
    kind: Literal["role_changed"] = "role_changed"
    role: Role
    term: int
    leader: int | None


class ElectionTimeout(EventBase):
    kind: Literal["election_timeout"] = "election_timeout"
    term: int


class ElectionStarted(EventBase):
    kind: Literal["election_started"] = "election_started"
    term: int
    pre_vote: bool


class VoteCast(EventBase):
    """`reason` says why, in words: "granted", "log not up to date", "leader lease", ..."""

    kind: Literal["vote_cast"] = "vote_cast"
    candidate: int
    term: int
    granted: bool
    pre_vote: bool
    reason: str


class VoteReceived(EventBase):
    kind: Literal["vote_received"] = "vote_received"
    voter: int
    term: int
    granted: bool
    pre_vote: bool
    votes: int
    needed: int


class EntriesAppended(EventBase):
    """`term` is the term of the last entry appended."""

    kind: Literal["entries_appended"] = "entries_appended"
    first_index: int
    last_index: int
    term: int


class EntriesTruncated(EventBase):
    """Uncommitted entries overwritten by a new leader: the dashboard draws them struck out."""

    kind: Literal["entries_truncated"] = "entries_truncated"
    from_index: int
    to_index: int


class CommitAdvanced(EventBase):
    kind: Literal["commit_advanced"] = "commit_advanced"
    commit_index: int


class EntriesApplied(EventBase):
    kind: Literal["entries_applied"] = "entries_applied"
    applied_index: int


class SnapshotTaken(EventBase):
    kind: Literal["snapshot_taken"] = "snapshot_taken"
    index: int
    term: int


class SnapshotSent(EventBase):
    kind: Literal["snapshot_sent"] = "snapshot_sent"
    to: int
    index: int


class SnapshotInstalled(EventBase):
    kind: Literal["snapshot_installed"] = "snapshot_installed"
    index: int
    term: int


class MembershipChanged(EventBase):
    kind: Literal["membership_changed"] = "membership_changed"
    op: str
    target: int
    voters: Ids
    learners: Ids


class LeaderTransferStarted(EventBase):
    kind: Literal["leader_transfer_started"] = "leader_transfer_started"
    to: int


class LeaderTransferAborted(EventBase):
    kind: Literal["leader_transfer_aborted"] = "leader_transfer_aborted"
    to: int
    reason: str


class CheckQuorumFailed(EventBase):
    """The leader heard from too few followers in an election timeout and stepped down."""

    kind: Literal["check_quorum_failed"] = "check_quorum_failed"
    term: int


class ProposalRefused(EventBase):
    kind: Literal["proposal_refused"] = "proposal_refused"
    reason: str
    leader: int | None


class MessageIgnored(EventBase):
    """`reason`: "unknown group", "stale term", "not a member", ..."""

    kind: Literal["message_ignored"] = "message_ignored"
    message: str
    src: int
    reason: str


class StateLoaded(EventBase):
    """A Raft node was (re)built from its storage: what it starts from, before any change.

    Bootstrap membership and a restart's durable state are no change of the core, so without
    this an observer would not know them. `last_term` is the term of entry `last_index`.
    """

    kind: Literal["state_loaded"] = "state_loaded"
    term: int
    commit_index: int
    applied_index: int
    snapshot_index: int
    snapshot_term: int
    last_index: int
    last_term: int
    voters: Ids
    learners: Ids


# --- network and lab (from the simulator and node layers) ------------------------------------


class MessageSent(EventBase):
    """`msg_id` (optional) names one message so its delivery or drop can be matched exactly
    (Lamport diagrams, ShiViz); copies of a duplicated message share it."""

    kind: Literal["message_sent"] = "message_sent"
    message: str
    src: int
    dst: int
    size: int = 1
    msg_id: int | None = None
    weight: Weight = 1


class MessageDelivered(EventBase):
    kind: Literal["message_delivered"] = "message_delivered"
    message: str
    src: int
    dst: int
    msg_id: int | None = None
    weight: Weight = 1


class MessageDropped(EventBase):
    """`reason`: "partition" and "drop_rate" (the fault filter: lab partition, random loss);
    "node_down" (simulator: the destination is crashed); "malformed" (a node refused a
    payload); on nodes also the transport's other reasons ("queue_full", "too_large",
    "disconnected", "unreachable", "closed", "no_handler") and its refusals of signed traffic
    ("unsigned", "bad_signature", "replayed", "stale", "no_secret"); see `DropReason`."""

    kind: Literal["message_dropped"] = "message_dropped"
    message: str
    src: int
    dst: int
    reason: str
    msg_id: int | None = None
    weight: Weight = 1


class NodeCrashed(EventBase):
    kind: Literal["node_crashed"] = "node_crashed"


class NodeRestarted(EventBase):
    kind: Literal["node_restarted"] = "node_restarted"


class NodeJoined(EventBase):
    kind: Literal["node_joined"] = "node_joined"


class NodeRemoved(EventBase):
    kind: Literal["node_removed"] = "node_removed"


class Partitioned(EventBase):
    kind: Literal["partitioned"] = "partitioned"
    sides: Annotated[tuple[Ids, ...], Strict(False)]


class Healed(EventBase):
    kind: Literal["healed"] = "healed"


class ProposalMade(EventBase):
    kind: Literal["proposal_made"] = "proposal_made"
    index: int
    size: int


class ProposalForwarded(EventBase):
    """A follower handed a proposal of `size` bytes to the leader `to`."""

    kind: Literal["proposal_forwarded"] = "proposal_forwarded"
    to: int
    size: int


class BrokerDisconnected(EventBase):
    kind: Literal["broker_disconnected"] = "broker_disconnected"
    broker: str
    reason: str


class BrokerReconnected(EventBase):
    kind: Literal["broker_reconnected"] = "broker_reconnected"
    broker: str


class PresenceChanged(EventBase):
    """What the retained `presence/{node}` document says of the node, as a `RemoteObserver`
    read it: not emitted by the node. `alive` false with `reason` "connection lost" is the
    broker's last will (the node died, e.g. `kill -9`, or lost the broker without a goodbye);
    "closed" is a clean stop. `reason` is None when the node is back."""

    kind: Literal["presence_changed"] = "presence_changed"
    alive: bool
    reason: str | None = None


class ClustersPlanned(EventBase):
    """The management group (group 0) applied plan `version`: the execution clusters (ids
    and members) and the nodes the manager saw alive."""

    kind: Literal["clusters_planned"] = "clusters_planned"
    version: int
    clusters: Annotated[tuple[Ids, ...], Strict(False)]
    """Members of each execution cluster, in `cluster_ids` order."""
    cluster_ids: Ids
    live: Ids

    @field_validator("cluster_ids")
    @classmethod
    def _one_id_per_cluster(cls, ids: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        clusters = info.data.get("clusters")
        if clusters is not None and len(clusters) != len(ids):
            raise ValueError(
                f"{len(ids)} cluster ids for {len(clusters)} member lists (one id per cluster)"
            )
        return ids


# --- workflows (from the workflow layer; DESIGN.md section 4) --------------------------------


class WorkflowStarted(EventBase):
    """A node began running a committed `WorkflowStart`; `owner` is the first owner, if known."""

    kind: Literal["workflow_started"] = "workflow_started"
    workflow_id: str
    name: str
    version: int
    owner: int | None


class CheckpointProposed(EventBase):
    """The owner proposed the value of checkpoint operation `ordinal` under its `epoch`."""

    kind: Literal["checkpoint_proposed"] = "checkpoint_proposed"
    workflow_id: str
    ordinal: int
    key: str
    epoch: int


class CheckpointCommitted(EventBase):
    """The value for `ordinal` committed at log `index`; it joins this node's queue."""

    kind: Literal["checkpoint_committed"] = "checkpoint_committed"
    workflow_id: str
    ordinal: int
    key: str
    epoch: int
    index: int


class CheckpointConsumed(EventBase):
    """This node's run took the committed value of `ordinal` from its queue."""

    kind: Literal["checkpoint_consumed"] = "checkpoint_consumed"
    workflow_id: str
    ordinal: int
    key: str


class CheckpointDuplicate(EventBase):
    """A later committed value for an ordinal that already had one: dropped (first wins)."""

    kind: Literal["checkpoint_duplicate"] = "checkpoint_duplicate"
    workflow_id: str
    ordinal: int
    key: str


class CheckpointStale(EventBase):
    """A proposal of an old owner's `epoch` reached the log after `current_epoch`: rejected."""

    kind: Literal["checkpoint_stale"] = "checkpoint_stale"
    workflow_id: str
    ordinal: int
    epoch: int
    current_epoch: int


class OwnerChanged(EventBase):
    kind: Literal["owner_changed"] = "owner_changed"
    workflow_id: str
    owner: int
    epoch: int


class WorkflowDivergence(EventBase):
    """This node's `ordinal`-th operation has another key than the committed one."""

    kind: Literal["workflow_divergence"] = "workflow_divergence"
    workflow_id: str
    ordinal: int
    expected_key: str
    actual_key: str


class WorkflowRewound(EventBase):
    """This owner's run went ahead of its commits and the log committed something else (it
    lost the run meanwhile): it runs again from the start, on the `committed` values."""

    kind: Literal["workflow_rewound"] = "workflow_rewound"
    workflow_id: str
    committed: int


class WorkflowSleeping(EventBase):
    """`until` is a wall-clock time in seconds (or virtual time in a simulation)."""

    kind: Literal["workflow_sleeping"] = "workflow_sleeping"
    workflow_id: str
    ordinal: int
    until: float


class WorkflowCompleted(EventBase):
    """`result` (optional) is a short text of the return value (JSON or repr, producer-cut),
    so a remote dashboard can show it; None when the producer does not say."""

    kind: Literal["workflow_completed"] = "workflow_completed"
    workflow_id: str
    name: str
    result: str | None = None


class WorkflowFailedEvent(EventBase):
    kind: Literal["workflow_failed"] = "workflow_failed"
    workflow_id: str
    error_type: str
    message: str


class WorkflowCancelledEvent(EventBase):
    kind: Literal["workflow_cancelled"] = "workflow_cancelled"
    workflow_id: str


MESSAGE_KINDS: frozenset[str] = frozenset({"message_sent", "message_delivered", "message_dropped"})
"""The message-level kinds: by far the most frequent, so publishers may sample them."""

WORKFLOW_KINDS: frozenset[str] = frozenset(
    {
        "workflow_started",
        "checkpoint_proposed",
        "checkpoint_committed",
        "checkpoint_consumed",
        "checkpoint_duplicate",
        "checkpoint_stale",
        "owner_changed",
        "workflow_divergence",
        "workflow_rewound",
        "workflow_sleeping",
        "workflow_completed",
        "workflow_failed",
        "workflow_cancelled",
    }
)
"""The kinds that carry a `workflow_id`."""


# --- the union and its registry --------------------------------------------------------------

_AnyEvent: TypeAlias = (
    RoleChanged
    | ElectionTimeout
    | ElectionStarted
    | VoteCast
    | VoteReceived
    | EntriesAppended
    | EntriesTruncated
    | CommitAdvanced
    | EntriesApplied
    | SnapshotTaken
    | SnapshotSent
    | SnapshotInstalled
    | MembershipChanged
    | LeaderTransferStarted
    | LeaderTransferAborted
    | CheckQuorumFailed
    | ProposalRefused
    | MessageIgnored
    | StateLoaded
    | MessageSent
    | MessageDelivered
    | MessageDropped
    | NodeCrashed
    | NodeRestarted
    | NodeJoined
    | NodeRemoved
    | Partitioned
    | Healed
    | ProposalMade
    | ProposalForwarded
    | BrokerDisconnected
    | BrokerReconnected
    | PresenceChanged
    | ClustersPlanned
    | WorkflowStarted
    | CheckpointProposed
    | CheckpointCommitted
    | CheckpointConsumed
    | CheckpointDuplicate
    | CheckpointStale
    | OwnerChanged
    | WorkflowDivergence
    | WorkflowRewound
    | WorkflowSleeping
    | WorkflowCompleted
    | WorkflowFailedEvent
    | WorkflowCancelledEvent
)
Event: TypeAlias = Annotated[_AnyEvent, Field(discriminator="kind")]
"""Any event; `match` on the class or switch on `.kind`."""

EVENT_TYPES: Mapping[str, type[EventBase]] = MappingProxyType(
    {cls.model_fields["kind"].default: cls for cls in get_args(_AnyEvent)}
)
"""kind -> model class, derived from the union so the two cannot disagree."""

EVENT_KINDS: tuple[str, ...] = tuple(EVENT_TYPES)

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_BASE_KEYS = frozenset({"kind", "v", "node", "group", "seq", "ts", "tick"})


# --- building events -------------------------------------------------------------------------


def make_event(
    kind: str,
    fields: Mapping[str, Any],
    *,
    node: int,
    group: int = 0,
    seq: int,
    ts: float,
    tick: int | None = None,
) -> Event:
    """Validate a trace record into an event; raise `EventSchemaError` naming kind and field.

    There is deliberately no unvalidated variant: pydantic-core validates a dict in about
    2 us, while `model_construct` (pure Python) takes about 4 us and would let a producer's
    bug through silently. So every producer, ours included, uses this one path.
    """
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise _unknown_kind(kind)
    data = {**fields, "node": node, "group": group, "seq": seq, "ts": ts, "tick": tick}
    if len(data) != len(fields) + 5:
        raise _base_clash(kind, fields)
    try:
        return cast(Event, cls.__pydantic_validator__.validate_python(data))
    except ValidationError as exc:
        raise _schema_error(kind, exc.errors(include_url=False)) from None


# --- JSON ------------------------------------------------------------------------------------


def parse_event(data: str | bytes) -> Event:
    """Parse one JSON event (a JSONL line, an MQTT payload) into its model class."""
    try:
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "union_tag_invalid":
            raw = first["input"]
            version = raw.get("v") if isinstance(raw, dict) else None
            raise _unknown_kind(str(first["ctx"]["tag"]), version) from None
        if first["type"] == "union_tag_not_found":
            raise EventSchemaError("event has no 'kind' field", fields=("kind",)) from None
        if not first["loc"]:  # not JSON, or JSON but not an object
            raise EventSchemaError(f"not a JSON event object: {first['msg']}") from None
        kind = str(first["loc"][0])
        raise _schema_error(kind, [{**e, "loc": e["loc"][1:]} for e in errors]) from None


def event_to_json(event: EventBase) -> str:
    """One line of JSON, every field included, that `parse_event` reads back equal."""
    return event.model_dump_json()


# --- error messages --------------------------------------------------------------------------


def _unknown_kind(kind: str, version: object = None) -> EventSchemaError:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        hint = f" (it comes from schema version {version}; this raftoral_lab reads up to "
        hint += f"{SCHEMA_VERSION}: upgrade it)"
    elif close := difflib.get_close_matches(kind, EVENT_KINDS, n=1):
        hint = f"; did you mean {close[0]!r}?"
    else:
        hint = f"; known kinds: {', '.join(EVENT_KINDS)}"
    return EventSchemaError(f"unknown event kind {kind!r}{hint}", kind=kind, fields=("kind",))


def _base_clash(kind: str, fields: Mapping[str, Any]) -> EventSchemaError:
    clash = tuple(sorted(_BASE_KEYS.intersection(fields)))
    return EventSchemaError(
        f"bad {kind!r} event: {', '.join(map(repr, clash))} must not be among the trace "
        "fields (make_event sets them from its keyword arguments)",
        kind=kind,
        fields=clash,
    )


def _schema_error(kind: str, errors: list[ErrorDetails]) -> EventSchemaError:
    problems: list[str] = []
    names: list[str] = []
    for err in errors:
        loc = err["loc"]
        name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        names.append(str(loc[0]) if loc else "")
        if err["type"] == "missing":
            problems.append(f"field {name!r} is missing")
        elif err["type"] == "extra_forbidden":
            problems.append(f"{name!r} is not a field of {kind!r}")
        else:
            ctx = err.get("ctx", {})
            msg = str(ctx["error"]) if err["type"] == "value_error" else err["msg"]
            problems.append(f"field {name!r}: {msg} (got {err['input']!r})")
    return EventSchemaError(
        f"bad {kind!r} event: {'; '.join(problems)}",
        kind=kind,
        fields=tuple(dict.fromkeys(names)),
    )
