"""The in-memory Raft log: a snapshot point, the entries after it, and how far each has got.

Indexes start at 1. `offset` is the index of the last entry folded into the snapshot (0 for a
fresh log); entry `i` lives at `entries[i - offset - 1]`. `stable_index` is the last index the
driver has persisted; everything after it goes out in the next Ready.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftoral_lab.core.types import Entry, Snapshot


class RaftLog:
    __slots__ = (
        "applied_index",
        "commit_index",
        "entries",
        "offset",
        "offset_term",
        "snapshot",
        "stable_index",
    )

    def __init__(
        self, snapshot: Snapshot | None, entries: Sequence[Entry], commit_index: int
    ) -> None:
        self.snapshot = snapshot
        self.offset = snapshot.meta.index if snapshot else 0
        self.offset_term = snapshot.meta.term if snapshot else 0
        self.entries: list[Entry] = list(entries)
        self.stable_index = self.last_index
        self.commit_index = max(commit_index, self.offset)
        self.applied_index = self.offset

    # --- reading ---------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`, or None when it is compacted away or not there."""
        if index == self.offset:
            return self.offset_term
        position = index - self.offset - 1
        if 0 <= position < len(self.entries):
            return self.entries[position].term
        return None

    def slice(self, lo: int, hi: int) -> tuple[Entry, ...]:
        """Entries with index in [lo, hi); `lo` must be above the snapshot."""
        return tuple(self.entries[lo - self.offset - 1 : hi - self.offset - 1])

    def unstable(self) -> tuple[Entry, ...]:
        return self.slice(self.stable_index + 1, self.last_index + 1)

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Paper 5.4.1: a candidate's log is at least as up to date as ours."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (or the snapshot point).

        Both sides of a rejected append use it to skip a whole run of conflicting entries.
        """
        index = min(index, self.last_index)
        while index > self.offset:
            entry_term = self.term(index)
            if entry_term is not None and entry_term <= term:
                break
            index -= 1
        return index

    # --- writing ---------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        self.entries.append(entry)

    def try_append(
        self, prev_index: int, prev_term: int, entries: Sequence[Entry]
    ) -> tuple[int, int | None] | None:
        """A follower's AppendEntries check. None when (prev_index, prev_term) does not match;
        else (last new index, first overwritten index or None)."""
        if self.term(prev_index) != prev_term:
            return None
        last_new = prev_index + len(entries)
        if not entries:
            return last_new, None
        if prev_index == self.last_index:  # the common case: plain extension
            self.entries.extend(entries)
            return last_new, None
        for entry in entries:
            if self.term(entry.index) != entry.term:
                overwritten = entry.index if entry.index <= self.last_index else None
                self._replace_from(entry.index, entries[entry.index - prev_index - 1 :])
                return last_new, overwritten
        return last_new, None

    def _replace_from(self, index: int, entries: Sequence[Entry]) -> None:
        del self.entries[index - self.offset - 1 :]
        self.entries.extend(entries)
        self.stable_index = min(self.stable_index, index - 1)

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to `index`; ignore it if that entry was replaced."""
        if self.term(index) == term and index > self.stable_index:
            self.stable_index = index

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.snapshot = snapshot
        self.offset = snapshot.meta.index
        self.offset_term = snapshot.meta.term
        self.entries = []
        self.commit_index = self.offset
        self.stable_index = self.offset

    def compact(self, snapshot: Snapshot) -> None:
        """Fold the entries up to the snapshot's index into it (a locally taken snapshot)."""
        drop = snapshot.meta.index - self.offset
        del self.entries[:drop]
        self.snapshot = snapshot
        self.offset = snapshot.meta.index
        self.offset_term = snapshot.meta.term
        self.stable_index = max(self.stable_index, self.offset)
