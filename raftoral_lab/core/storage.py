"""The contract between the core and durable storage.

The core never calls storage: it keeps its log in memory and lists in each `Ready` what must
become durable. A driver persists a Ready with `persist`, a snapshot it took with `compact`,
and rebuilds a restarted node from `load()`. Implementations live in `raftoral_lab.storage`.
"""

from __future__ import annotations

from typing import Protocol

from raftoral_lab.core.ready import Ready
from raftoral_lab.core.types import PersistentState, Snapshot


class Storage(Protocol):
    def load(self) -> PersistentState:
        """Everything persisted so far (empty for a new node)."""
        ...

    def persist(self, ready: Ready) -> None:
        """Make `ready.snapshot`, `ready.entries` and `ready.hard_state` durable, in that order.

        Entries may start inside the stored log: the stored tail from that index on is replaced.
        A snapshot replaces every stored entry at or below its index.
        """
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` and drop the stored entries at or below its index."""
        ...
