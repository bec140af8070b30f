"""What a node applies committed entries to. Workflows plug in their own state machine."""

from __future__ import annotations

import json
from typing import Protocol

from raftoral_lab.core import Entry, EntryKind


class StateMachine(Protocol):
    def apply(self, entry: Entry) -> object:
        """Apply one committed entry; the value goes back to whoever proposed it."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, for compaction and for nodes that join late."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot (b"" is the empty state)."""
        ...


class CommandLog:
    """The simplest useful state machine: the list of commands in commit order."""

    def __init__(self) -> None:
        self.commands: list[bytes] = []

    def apply(self, entry: Entry) -> object:
        if entry.kind is EntryKind.NORMAL and entry.data:
            self.commands.append(entry.data)
        return entry.index

    def snapshot(self) -> bytes:
        return json.dumps([c.decode("latin-1") for c in self.commands]).encode()

    def restore(self, data: bytes) -> None:
        self.commands = [c.encode("latin-1") for c in json.loads(data)] if data else []
