"""Durable storage for the Raft core: `MemoryStorage` for the simulator and tests,
`SQLiteStorage` (one WAL-mode file per node) for nodes that must survive a process restart.

Both implement `raftoral_lab.core.storage.Storage` and add `bootstrap(voters)` for a brand-new
cluster member.
"""

from raftoral_lab.storage.memory import MemoryStorage
from raftoral_lab.storage.sqlite import SQLiteStorage

__all__ = ["MemoryStorage", "SQLiteStorage"]
