"""The sans-I/O Raft core: no sockets, no clock, no global random; stdlib only."""

from raftoral_lab.core.config import RaftConfig
from raftoral_lab.core.messages import (
    MESSAGE_KINDS,
    MESSAGE_TYPES,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.core.progress import PeerStatus, ReplicationState
from raftoral_lab.core.raft import RawNode, Status
from raftoral_lab.core.ready import Ready, Trace
from raftoral_lab.core.storage import Storage
from raftoral_lab.core.types import (
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    PersistentState,
    Role,
    Snapshot,
    SnapshotMeta,
    bootstrap_state,
)

__all__ = [
    "MESSAGE_KINDS",
    "MESSAGE_TYPES",
    "AppendEntries",
    "AppendResponse",
    "ConfChange",
    "ConfChangeOp",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "Message",
    "PeerStatus",
    "PersistentState",
    "RaftConfig",
    "RawNode",
    "Ready",
    "ReplicationState",
    "RequestVote",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "Status",
    "Storage",
    "TimeoutNow",
    "Trace",
    "VoteResponse",
    "bootstrap_state",
]
