"""The messages Raft nodes exchange. Every message names its Raft group, sender and receiver.

One class per message type (the paper's RPCs and their replies, plus heartbeats and
TimeoutNow), so a handler's signature says what it gets. `kind` is the stable name used in
counters, events and the wire codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from raftoral_lab.core.types import Entry, Snapshot


@dataclass(frozen=True, slots=True)
class RequestVote:
    """A candidate asks for a vote. With `pre_vote` the term is the one it *would* use."""

    group: int
    src: int
    dst: int
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # sent after TimeoutNow: ignore the leader lease

    @property
    def kind(self) -> str:
        return "pre_vote" if self.pre_vote else "request_vote"


@dataclass(frozen=True, slots=True)
class VoteResponse:
    group: int
    src: int
    dst: int
    term: int
    granted: bool
    pre_vote: bool = False

    @property
    def kind(self) -> str:
        return "pre_vote_response" if self.pre_vote else "vote_response"


@dataclass(frozen=True, slots=True)
class AppendEntries:
    group: int
    src: int
    dst: int
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    kind: ClassVar[str] = "append_entries"


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Reply to AppendEntries and InstallSnapshot.

    On success `match_index` is the last index the follower now has from this leader. On a
    rejection, `match_index` is the rejected `prev_log_index` and (`hint_index`, `hint_term`)
    point at the follower's last entry that may still match, so the leader can skip a whole
    term of conflicting entries per round trip instead of one entry.
    """

    group: int
    src: int
    dst: int
    term: int
    success: bool
    match_index: int
    hint_index: int = 0
    hint_term: int = 0
    kind: ClassVar[str] = "append_response"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader liveness. `commit` is capped at what the follower is known to hold."""

    group: int
    src: int
    dst: int
    term: int
    commit: int
    kind: ClassVar[str] = "heartbeat"


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    group: int
    src: int
    dst: int
    term: int
    kind: ClassVar[str] = "heartbeat_response"


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    group: int
    src: int
    dst: int
    term: int
    snapshot: Snapshot
    kind: ClassVar[str] = "install_snapshot"


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: the receiver starts an election at once."""

    group: int
    src: int
    dst: int
    term: int
    kind: ClassVar[str] = "timeout_now"


Message = (
    RequestVote
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | TimeoutNow
)

MESSAGE_TYPES: tuple[type[Message], ...] = (
    RequestVote,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    TimeoutNow,
)

MESSAGE_KINDS: tuple[str, ...] = (
    "pre_vote",
    "pre_vote_response",
    "request_vote",
    "vote_response",
    "append_entries",
    "append_response",
    "heartbeat",
    "heartbeat_response",
    "install_snapshot",
    "timeout_now",
)
