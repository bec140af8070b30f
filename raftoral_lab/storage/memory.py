"""Storage in a Python list: what the simulator and the tests persist through.

"Durable" here means "survives the core object": the simulator crashes a node by dropping its
RawNode and keeps its MemoryStorage, so a restart sees exactly what was persisted before it.

The log-shape rules (what a snapshot keeps, where a batch of entries may start) are checked
by the helpers below, which `sqlite.py` shares, so both implementations agree on every edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from raftoral_lab.core.ready import Ready
from raftoral_lab.core.types import (
    Entry,
    HardState,
    PersistentState,
    Snapshot,
    bootstrap_state,
)
from raftoral_lab.errors import StorageError

# --- rules shared by every implementation ---------------------------------------------------


def check_not_bootstrapped(state: PersistentState, where: str) -> None:
    """Refuse to bootstrap over existing state: it would throw away a node's durable log."""
    if state.snapshot is not None or state.entries or state.hard_state != HardState():
        raise StorageError(
            f"{where} already holds Raft state; bootstrap only a brand-new member "
            "(restart an existing one from load() instead)"
        )


def check_snapshot_not_older(snapshot: Snapshot, base_index: int, what: str) -> None:
    """A snapshot behind the stored one would bring back entries already compacted away."""
    if snapshot.meta.index < base_index:
        raise StorageError(
            f"{what} at index {snapshot.meta.index} is older than the stored snapshot at index "
            f"{base_index}; persist Readys and compactions in the order they were produced"
        )


def check_compact(
    snapshot: Snapshot, base_index: int, last_index: int, term_at: Callable[[int], int]
) -> None:
    """A local snapshot must sit on a persisted entry of the same term, else it is not ours."""
    index, term = snapshot.meta.index, snapshot.meta.term
    check_snapshot_not_older(snapshot, base_index, "compact: the snapshot")
    if index > last_index:
        raise StorageError(
            f"compact: the snapshot at index {index} is beyond the stored log (last index "
            f"{last_index}); persist the entries a snapshot covers before compacting"
        )
    stored = term_at(index)
    if stored != term:
        raise StorageError(
            f"compact: the snapshot at index {index} has term {term} but the stored entry there "
            f"has term {stored}; the snapshot does not belong to this log"
        )


def entries_to_write(
    entries: Sequence[Entry],
    base_index: int,
    base_term: int,
    last_index: int,
    term_at: Callable[[int], int],
) -> Sequence[Entry]:
    """The part of `entries` to store (an unchanged reference when nothing is trimmed).

    `base_index`/`base_term` are the snapshot's (0/0 without one), `last_index` the stored
    log's end and `term_at(i)` the stored term for base_index < i <= last_index, all as they
    will be once this Ready's snapshot is in place. Entries at or below the snapshot are
    committed and already covered by it, so they are skipped rather than refused (the core may
    still hold them when a compaction raced ahead). The batch must then join the stored log
    with no gap; its internal order is trusted (only its ends are checked: O(1)).
    """
    if not entries:
        return entries
    first, last = entries[0].index, entries[-1].index
    if last - first != len(entries) - 1:
        raise StorageError(
            f"the {len(entries)} entries to persist run from index {first} to {last}: "
            "a batch must be consecutive indexes in order"
        )
    if last <= base_index:
        return ()
    if first <= base_index:
        entries = entries[base_index + 1 - first :]
        first = base_index + 1
    if first > last_index + 1:
        raise StorageError(
            f"entries start at index {first} but the stored log ends at index {last_index} "
            f"(snapshot at index {base_index}): indexes {last_index + 1}..{first - 1} would be "
            "missing; persist every Ready in the order the core produced it"
        )
    prev_term = base_term if first - 1 == base_index else term_at(first - 1)
    if entries[0].term < prev_term or entries[-1].term < entries[0].term:
        raise StorageError(
            f"entries at index {first}..{last} have terms {entries[0].term}..{entries[-1].term} "
            f"but the stored entry at index {first - 1} has term {prev_term}: terms in a Raft log "
            "never decrease"
        )
    return entries


# --- the implementation ---------------------------------------------------------------------


class MemoryStorage:
    """Storage kept in memory; entries are frozen, so they are shared with the core, not copied.

    Not thread-safe: one driver owns it.
    """

    __slots__ = ("_entries", "_hard_state", "_snapshot")

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        # _entries[0] has index base_index + 1: the entries after the snapshot, in order.
        self._entries: list[Entry] = []

    def bootstrap(self, voters: Iterable[int], learners: Iterable[int] = ()) -> None:
        """Make this empty storage a brand-new member of a cluster of `voters`."""
        check_not_bootstrapped(self.load(), "this MemoryStorage")
        state = bootstrap_state(voters, learners)
        self._snapshot, self._hard_state = state.snapshot, state.hard_state

    def load(self) -> PersistentState:
        """Everything persisted so far (a fresh tuple of the shared entries)."""
        return PersistentState(self._hard_state, self._snapshot, tuple(self._entries))

    @property
    def first_index(self) -> int:
        """Index of the first stored entry (snapshot index + 1, even with no entries)."""
        return self._base()[0] + 1

    @property
    def last_index(self) -> int:
        """Index of the last stored entry, or the snapshot's when no entry follows it."""
        return self._base()[0] + len(self._entries)

    def persist(self, ready: Ready) -> None:
        """Store the Ready's snapshot, entries and hard state; all or nothing on error."""
        base_index, base_term = self._base()
        log = self._entries
        snapshot = ready.snapshot
        if snapshot is not None:
            check_snapshot_not_older(snapshot, base_index, "the Ready's snapshot")
            index = snapshot.meta.index
            if self._term_or_none(index) == snapshot.meta.term:
                log = log[index - base_index :]  # keep the entries after it: they match
            else:
                log = []  # a different history (or none) at the snapshot: nothing after it holds
            base_index, base_term = index, snapshot.meta.term

        def term_at(i: int, log: list[Entry] = log, base: int = base_index) -> int:
            return log[i - base - 1].term

        new = entries_to_write(ready.entries, base_index, base_term, base_index + len(log), term_at)
        # Every check passed: from here on nothing raises, so a failure leaves no half-write.
        if new:
            del log[new[0].index - base_index - 1 :]
            log.extend(new)
        if snapshot is not None:
            self._snapshot = snapshot
        self._entries = log
        if ready.hard_state is not None:
            self._hard_state = ready.hard_state

    def compact(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` (taken locally) and drop the entries it covers."""
        base_index, base_term = self._base()

        def term_at(i: int) -> int:
            return base_term if i == base_index else self._entries[i - base_index - 1].term

        check_compact(snapshot, base_index, self.last_index, term_at)
        del self._entries[: snapshot.meta.index - base_index]
        self._snapshot = snapshot

    def _base(self) -> tuple[int, int]:
        """Index and term the stored log starts after (the snapshot's; 0, 0 without one)."""
        snap = self._snapshot
        return (0, 0) if snap is None else (snap.meta.index, snap.meta.term)

    def _term_or_none(self, index: int) -> int | None:
        """The stored term at `index`, None when the stored log does not reach it."""
        base_index, base_term = self._base()
        if index == base_index:
            return base_term
        if base_index < index <= base_index + len(self._entries):
            return self._entries[index - base_index - 1].term
        return None
