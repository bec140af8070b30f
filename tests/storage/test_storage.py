"""Both storages against the persistence contract of the core, plus what only a file can do."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftoral_lab.core.ready import Ready
from raftoral_lab.core.storage import Storage
from raftoral_lab.core.types import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    PersistentState,
    Snapshot,
    SnapshotMeta,
    bootstrap_state,
)
from raftoral_lab.errors import ConfigError, StorageError
from raftoral_lab.storage import MemoryStorage, SQLiteStorage
from raftoral_lab.storage.sqlite import SCHEMA_VERSION


class AnyStorage(Storage, Protocol):
    def bootstrap(self, voters: Iterable[int]) -> None: ...

    @property
    def first_index(self) -> int: ...

    @property
    def last_index(self) -> int: ...


def ready(
    *,
    hard_state: HardState | None = None,
    entries: Iterable[Entry] = (),
    snapshot: Snapshot | None = None,
) -> Ready:
    return Ready(
        hard_state=hard_state,
        entries=tuple(entries),
        snapshot=snapshot,
        committed_entries=(),
        messages=(),
        persisted_messages=(),
        trace=(),
    )


def ents(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(i, term, f"e{i}t{term}".encode()) for i in range(first, last + 1)]


def snap(index: int, term: int, voters: Iterable[int] = (1, 2, 3), data: bytes = b"sm") -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ConfState(frozenset(voters))), data)


def shape(storage: Storage) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in storage.load().entries]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], AnyStorage]]:
    """A factory of fresh, empty storages of one kind (SQLite ones are closed afterwards)."""
    opened: list[SQLiteStorage] = []

    def factory() -> AnyStorage:
        if request.param == "memory":
            return MemoryStorage()
        s = SQLiteStorage(tmp_path / f"node{len(opened)}.db")
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def storage(make: Callable[[], AnyStorage]) -> AnyStorage:
    return make()


# --- the contract, for both ---------------------------------------------------------------------


def test_new_storage_is_empty(storage: AnyStorage) -> None:
    assert storage.load() == PersistentState()
    assert (storage.first_index, storage.last_index) == (1, 0)


def test_round_trip(storage: AnyStorage) -> None:
    entries = [
        Entry(1, 1, b"a"),
        Entry(2, 1),
        Entry(3, 2, b"add_voter:4", EntryKind.CONF_CHANGE),
        Entry(4, 2, bytes(range(256))),
    ]
    hs = HardState(term=2, vote=1, commit=3)
    storage.persist(ready(hard_state=hs, entries=entries))
    assert storage.load() == PersistentState(hs, None, tuple(entries))
    assert (storage.first_index, storage.last_index) == (1, 4)


def test_appends_accumulate(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 3, 1)))
    storage.persist(ready(entries=ents(4, 6, 1)))
    storage.persist(ready())  # an empty Ready changes nothing
    assert storage.load().entries == tuple(ents(1, 6, 1))


def test_overwriting_the_tail_truncates_it(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 5, 1)))
    storage.persist(ready(entries=ents(4, 6, 2)))
    assert storage.load().entries == tuple(ents(1, 3, 1) + ents(4, 6, 2))
    # a shorter conflicting tail removes everything after it too
    storage.persist(ready(entries=ents(2, 2, 3)))
    assert storage.load().entries == tuple(ents(1, 1, 1) + ents(2, 2, 3))
    assert storage.last_index == 2


def test_hard_state_only(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 2, 1)))
    storage.persist(ready(hard_state=HardState(term=3, vote=None, commit=0)))
    assert storage.load() == PersistentState(HardState(3, None, 0), None, tuple(ents(1, 2, 1)))
    storage.persist(ready(hard_state=HardState(term=3, vote=2, commit=2)))
    storage.persist(ready(entries=ents(3, 3, 3)))  # hard_state None: the stored one stays
    assert storage.load().hard_state == HardState(3, 2, 2)


def test_snapshot_keeps_later_matching_entries(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 10, 1)))
    s = snap(5, 1, voters=(1, 2), data=b"state@5")
    storage.persist(ready(snapshot=s))
    state = storage.load()
    assert state.snapshot == s
    assert state.entries == tuple(ents(6, 10, 1))
    assert (storage.first_index, storage.last_index) == (6, 10)


def test_snapshot_with_a_different_term_drops_every_entry(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 10, 1)))
    storage.persist(ready(snapshot=snap(5, 2)))
    assert storage.load().entries == ()
    assert (storage.first_index, storage.last_index) == (6, 5)


def test_snapshot_beyond_the_log_drops_every_entry_and_new_ones_follow(
    storage: AnyStorage,
) -> None:
    storage.persist(ready(entries=ents(1, 3, 1)))
    hs = HardState(4, 2, 20)
    storage.persist(ready(snapshot=snap(20, 3), entries=ents(21, 22, 4), hard_state=hs))
    assert storage.load() == PersistentState(hs, snap(20, 3), tuple(ents(21, 22, 4)))


def test_snapshot_membership_and_data_round_trip(storage: AnyStorage) -> None:
    s = Snapshot(SnapshotMeta(7, 2, ConfState(frozenset({1, 5}), frozenset({9}))), b"\x00\xff")
    storage.persist(ready(snapshot=s))
    assert storage.load().snapshot == s


def test_entries_covered_by_the_snapshot_are_skipped(storage: AnyStorage) -> None:
    storage.persist(ready(snapshot=snap(5, 1)))
    storage.persist(ready(entries=ents(3, 7, 1)))
    assert storage.load().entries == tuple(ents(6, 7, 1))
    storage.persist(ready(entries=ents(2, 4, 1)))  # entirely covered: nothing to do
    assert storage.load().entries == tuple(ents(6, 7, 1))


def test_compact(storage: AnyStorage) -> None:
    storage.persist(ready(hard_state=HardState(2, 1, 8), entries=ents(1, 4, 1) + ents(5, 10, 2)))
    storage.compact(snap(6, 2))
    state = storage.load()
    assert state.snapshot == snap(6, 2)
    assert state.entries == tuple(ents(7, 10, 2))
    assert state.hard_state == HardState(2, 1, 8)
    storage.compact(snap(10, 2))  # up to the last entry: the log is then empty
    assert storage.load().entries == ()
    assert (storage.first_index, storage.last_index) == (11, 10)
    storage.persist(ready(entries=ents(11, 11, 2)))
    assert shape(storage) == [(11, 2)]


def test_compact_refuses_a_snapshot_that_does_not_fit(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 5, 1)))
    storage.compact(snap(3, 1))
    with pytest.raises(StorageError, match="index 9 is beyond the stored log"):
        storage.compact(snap(9, 1))
    with pytest.raises(StorageError, match="term 2 but the stored entry there has term 1"):
        storage.compact(snap(4, 2))
    with pytest.raises(StorageError, match="index 2 is older than the stored snapshot at index 3"):
        storage.compact(snap(2, 1))
    assert storage.load() == PersistentState(snapshot=snap(3, 1), entries=tuple(ents(4, 5, 1)))


def test_bootstrap(storage: AnyStorage) -> None:
    storage.bootstrap([3, 1, 2, 2])
    state = storage.load()
    assert state == bootstrap_state({1, 2, 3})
    assert state.snapshot is not None and state.snapshot.meta.index == 1
    storage.persist(ready(entries=ents(2, 3, 1)))
    assert shape(storage) == [(2, 1), (3, 1)]
    with pytest.raises(StorageError, match="already holds Raft state"):
        storage.bootstrap([1])


def test_bootstrap_refuses_a_node_with_state(storage: AnyStorage) -> None:
    storage.persist(ready(hard_state=HardState(1, 1, 0)))
    with pytest.raises(StorageError, match="bootstrap only a brand-new member"):
        storage.bootstrap([1, 2, 3])


@pytest.mark.parametrize("voters", [[], [True], ["1"]])
def test_bootstrap_checks_voters(storage: AnyStorage, voters: list[object]) -> None:
    with pytest.raises(ConfigError):
        storage.bootstrap(voters)  # type: ignore[arg-type]
    assert storage.load() == PersistentState()


def test_a_gap_is_refused_naming_the_indexes(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 4, 1)))
    with pytest.raises(StorageError, match=r"start at index 7 .* ends at index 4 .* 5\.\.6"):
        storage.persist(ready(entries=ents(7, 8, 1)))
    assert storage.load().entries == tuple(ents(1, 4, 1))


def test_a_gap_after_a_snapshot_is_refused(storage: AnyStorage) -> None:
    storage.persist(ready(snapshot=snap(10, 2)))
    with pytest.raises(StorageError, match="start at index 12"):
        storage.persist(ready(entries=ents(12, 12, 2)))


def test_a_batch_with_holes_is_refused(storage: AnyStorage) -> None:
    with pytest.raises(StorageError, match="from index 1 to 4"):
        storage.persist(ready(entries=[Entry(1, 1), Entry(2, 1), Entry(4, 1)]))


def test_decreasing_terms_are_refused(storage: AnyStorage) -> None:
    storage.persist(ready(entries=ents(1, 3, 2)))
    with pytest.raises(StorageError, match="index 3 has term 2"):
        storage.persist(ready(entries=ents(4, 4, 1)))
    with pytest.raises(StorageError, match="never decrease"):
        storage.persist(ready(entries=[Entry(4, 3), Entry(5, 2)]))


def test_an_older_snapshot_is_refused(storage: AnyStorage) -> None:
    storage.persist(ready(snapshot=snap(10, 2)))
    with pytest.raises(StorageError, match="index 5 is older than the stored snapshot at index 10"):
        storage.persist(ready(snapshot=snap(5, 1)))


def test_a_refused_ready_writes_nothing(storage: AnyStorage) -> None:
    storage.persist(ready(hard_state=HardState(1, 1, 2), entries=ents(1, 5, 1)))
    before = storage.load()
    bad = ready(hard_state=HardState(9, 9, 9), snapshot=snap(3, 1), entries=ents(8, 9, 1))
    with pytest.raises(StorageError):
        storage.persist(bad)
    assert storage.load() == before


# --- differential: the two implementations agree on any sequence of operations -----------------


class PersistOp(NamedTuple):
    snapshot: tuple[int, int] | None  # index, term
    first: int
    size: int
    term: int
    hard_state: bool


class CompactOp(NamedTuple):
    at: int
    term: int | None  # None: the stored term at `at` (a snapshot the node could really take)


_ops = st.lists(
    st.one_of(
        st.builds(
            PersistOp,
            st.none() | st.tuples(st.integers(0, 12), st.integers(0, 4)),
            st.integers(0, 14),
            st.integers(0, 4),
            st.integers(1, 4),
            st.booleans(),
        ),
        st.builds(CompactOp, st.integers(0, 12), st.none() | st.integers(0, 4)),
    ),
    max_size=12,
)


def _apply(storage: Storage, op: PersistOp | CompactOp, step: int) -> str:
    """Run one operation; its outcome as text, so two storages can be compared."""
    try:
        if isinstance(op, CompactOp):
            assert op.term is not None
            storage.compact(snap(op.at, op.term))
        else:
            storage.persist(
                ready(
                    snapshot=None if op.snapshot is None else snap(*op.snapshot),
                    entries=[Entry(op.first + k, op.term) for k in range(op.size)],
                    hard_state=HardState(step, None, step) if op.hard_state else None,
                )
            )
    except StorageError as exc:
        return f"error: {exc}".replace(":memory:", "")
    return "ok"


def _fitting(state: PersistentState, at: int) -> CompactOp:
    """A compaction at (or, past the log's end, at the end of) the stored log, with its term."""
    base = (
        (0, 0) if state.snapshot is None else (state.snapshot.meta.index, state.snapshot.meta.term)
    )
    terms = dict([base, *((e.index, e.term) for e in state.entries)])
    at = min(max(at, base[0]), max(terms))
    return CompactOp(at, terms[at])


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_memory_and_sqlite_agree(ops: list[PersistOp | CompactOp]) -> None:
    mem = MemoryStorage()
    with SQLiteStorage(":memory:") as lite:
        for step, op in enumerate(ops):
            if isinstance(op, CompactOp) and op.term is None:
                op = _fitting(mem.load(), op.at)
            assert _apply(mem, op, step) == _apply(lite, op, step), op
            state = mem.load()
            assert state == lite.load()
            base = 0 if state.snapshot is None else state.snapshot.meta.index
            indexes = [e.index for e in state.entries]
            assert indexes == list(range(base + 1, base + 1 + len(indexes)))


# --- memory only --------------------------------------------------------------------------------


def test_memory_storage_shares_entries() -> None:
    storage = MemoryStorage()
    entries = ents(1, 3, 1)
    storage.persist(ready(entries=entries))
    assert all(a is b for a, b in zip(storage.load().entries, entries, strict=True))


# --- SQLite only --------------------------------------------------------------------------------


def _fill(storage: Storage) -> PersistentState:
    storage.persist(ready(hard_state=HardState(2, 3, 4), entries=ents(1, 6, 1) + ents(7, 8, 2)))
    storage.compact(snap(3, 1))
    storage.persist(ready(entries=ents(8, 9, 3)))
    return storage.load()


def test_sqlite_reopen_after_close(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SQLiteStorage(path) as storage:
        state = _fill(storage)
    assert repr(storage).endswith("closed)")
    with SQLiteStorage(path) as again:
        assert again.load() == state
        assert again.last_index == 9


def test_sqlite_reopen_without_close(tmp_path: Path) -> None:
    """The first object is never closed: a second one sees every committed transaction."""
    path = tmp_path / "node.db"
    first = SQLiteStorage(path)
    state = _fill(first)
    second = SQLiteStorage(path)
    try:
        assert second.load() == state
    finally:
        second.close()
        first.close()


def test_sqlite_survives_a_process_crash(tmp_path: Path) -> None:
    """A child process persists and dies with os._exit (no close, no cleanup): nothing is lost."""
    path = tmp_path / "node.db"
    child = textwrap.dedent(
        f"""
        import os
        from raftoral_lab.core.ready import Ready
        from raftoral_lab.core.types import Entry, HardState
        from raftoral_lab.storage import SQLiteStorage

        s = SQLiteStorage({str(path)!r}, synchronous="FULL")
        s.bootstrap([1, 2, 3])
        for i in range(2, 52):
            s.persist(Ready(HardState(1, 1, i - 1), (Entry(i, 1, b"x%d" % i),), None,
                            (), (), (), ()))
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    with SQLiteStorage(path) as storage:
        state = storage.load()
    assert state.hard_state == HardState(1, 1, 50)
    assert state.snapshot is not None and state.snapshot.meta.conf.voters == {1, 2, 3}
    assert [e.data for e in state.entries] == [b"x%d" % i for i in range(2, 52)]


def test_sqlite_uses_wal_and_records_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    SQLiteStorage(path, synchronous="FULL").close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_sqlite_rejects_a_bad_synchronous_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SQLiteStorage(tmp_path / "node.db", synchronous="OFF")  # type: ignore[arg-type]


def test_sqlite_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist; create it first"):
        SQLiteStorage(tmp_path / "nope" / "node.db")


def test_sqlite_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        SQLiteStorage(tmp_path)


def test_sqlite_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StorageError, match="not a SQLite database or is corrupt"):
        SQLiteStorage(path)


def test_sqlite_damaged_header(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SQLiteStorage(path) as storage:
        _fill(storage)
    raw = bytearray(path.read_bytes())
    raw[0:16] = b"garbage garbage!"
    path.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="restore it from a backup"):
        SQLiteStorage(path)


def test_sqlite_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match=r"another application .*invoices"):
        SQLiteStorage(path)


def test_sqlite_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    SQLiteStorage(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match=r"newer raftoral_lab.*upgrade"):
        SQLiteStorage(path)


def test_sqlite_closed_storage(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "node.db")
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="is closed"):
        storage.load()
    with pytest.raises(StorageError, match="is closed"):
        storage.persist(ready(hard_state=HardState(1)))
