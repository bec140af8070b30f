"""Storage in one SQLite file (WAL mode): what a real node keeps across process restarts.

Each `persist` and `compact` is one transaction, so a crash leaves either all of a Ready on
disk or none of it: the core's rule "durable before the dependent messages go out" then holds
for the whole batch. WAL with `synchronous=NORMAL` survives a process crash; a power loss may
lose the last transactions (never corrupt the file). `synchronous="FULL"` also survives that, at
the price of an fsync per transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal

from raftoral_lab.core.ready import Ready
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
from raftoral_lab.storage.memory import (
    check_compact,
    check_not_bootstrapped,
    check_snapshot_not_older,
    entries_to_write,
)

SCHEMA_VERSION = 1
"""Kept in the file header (`PRAGMA user_version`); bump it with every change of the tables."""

APPLICATION_ID = 0x52414654  # "RAFT": tells our files apart from other SQLite databases

_SCHEMA = """
CREATE TABLE hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL,
    vote INTEGER,
    commit_index INTEGER NOT NULL
);
CREATE TABLE entries (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    idx INTEGER NOT NULL,
    term INTEGER NOT NULL,
    voters TEXT NOT NULL,
    learners TEXT NOT NULL,
    data BLOB NOT NULL
);
"""
_TABLES = frozenset({"hard_state", "entries", "snapshot"})
_KINDS = {kind.value: kind for kind in EntryKind}

Synchronous = Literal["NORMAL", "FULL"]


class SQLiteStorage:
    """Storage in a SQLite database file; use as a context manager or call `close()`.

    Calls are serialized by a lock, so a driver may hand them to a worker thread, but they are
    meant for one node: two SQLiteStorage objects on one file would each think they own it.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: Synchronous = "NORMAL"
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f'synchronous must be "NORMAL" or "FULL", got {synchronous!r}')
        self.path = str(path)
        self._lock = threading.Lock()
        self._check_path()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot open the storage file {self.path}: {exc}; check that the path is "
                "writable by this process"
            ) from exc
        try:
            self._open(synchronous)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    # --- the Storage protocol ----------------------------------------------------------------

    def bootstrap(self, voters: Iterable[int], learners: Iterable[int] = ()) -> None:
        """Make this empty database a brand-new member of a cluster of `voters`."""
        state = bootstrap_state(voters, learners)
        assert state.snapshot is not None
        with self._transaction() as db:
            check_not_bootstrapped(self._load(db), f"the storage file {self.path}")
            self._write_snapshot(db, state.snapshot)
            self._write_hard_state(db, state.hard_state)

    def load(self) -> PersistentState:
        """Everything persisted so far, read in one consistent transaction."""
        with self._transaction(write=False) as db:
            return self._load(db)

    @property
    def first_index(self) -> int:
        """Index of the first stored entry (snapshot index + 1, even with no entries)."""
        with self._transaction(write=False) as db:
            return self._base(db)[0] + 1

    @property
    def last_index(self) -> int:
        """Index of the last stored entry, or the snapshot's when no entry follows it."""
        with self._transaction(write=False) as db:
            return self._last_index(db)

    def persist(self, ready: Ready) -> None:
        """Store the Ready's snapshot, entries and hard state in one transaction."""
        if ready.snapshot is None and not ready.entries and ready.hard_state is None:
            return  # nothing durable in this Ready: skip the transaction (and its fsync)
        with self._transaction() as db:
            base_index, base_term = self._base(db)
            last_index = self._last_index(db)
            snapshot = ready.snapshot
            if snapshot is not None:
                check_snapshot_not_older(snapshot, base_index, "the Ready's snapshot")
                index = snapshot.meta.index
                if self._term_or_none(db, index, base_index, base_term) == snapshot.meta.term:
                    db.execute("DELETE FROM entries WHERE idx <= ?", (index,))
                    last_index = max(last_index, index)
                else:
                    db.execute("DELETE FROM entries")
                    last_index = index
                self._write_snapshot(db, snapshot)
                base_index, base_term = index, snapshot.meta.term

            def term_at(i: int) -> int:
                return self._stored_term(db, i)

            new = entries_to_write(ready.entries, base_index, base_term, last_index, term_at)
            if new:
                db.execute("DELETE FROM entries WHERE idx >= ?", (new[0].index,))
                db.executemany(
                    "INSERT INTO entries (idx, term, kind, data) VALUES (?, ?, ?, ?)",
                    [(e.index, e.term, e.kind.value, e.data) for e in new],
                )
            if ready.hard_state is not None:
                self._write_hard_state(db, ready.hard_state)

    def _write_hard_state(self, db: sqlite3.Connection, hs: HardState) -> None:
        db.execute(
            "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (0, ?, ?, ?)",
            (hs.term, hs.vote, hs.commit),
        )

    def compact(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` (taken locally) and drop the entries it covers, in one transaction."""
        with self._transaction() as db:
            base_index, base_term = self._base(db)

            def term_at(i: int) -> int:
                return base_term if i == base_index else self._stored_term(db, i)

            check_compact(snapshot, base_index, self._last_index(db), term_at)
            db.execute("DELETE FROM entries WHERE idx <= ?", (snapshot.meta.index,))
            self._write_snapshot(db, snapshot)

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (a WAL checkpoint folds the log back into the file). Idempotent."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SQLiteStorage({self.path!r}, {state})"

    # --- opening -------------------------------------------------------------------------------

    def _check_path(self) -> None:
        """Catch the usual path mistakes before SQLite turns them into a vague message."""
        if self.path == ":memory:":
            return
        p = Path(self.path)
        if p.is_dir():
            raise StorageError(
                f"the storage path {self.path} is a directory; pass a file path inside it, "
                f"e.g. {p / 'node.db'}"
            )
        if not p.parent.is_dir():
            raise StorageError(
                f"cannot create the storage file {self.path}: the directory {p.parent} does not "
                "exist; create it first or choose another path"
            )

    def _open(self, synchronous: Synchronous) -> None:
        """Check the file is ours and of a schema we read, create the tables in a new one."""
        conn = self._conn
        assert conn is not None
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path} is not a SQLite database or is corrupt ({exc}); if it is this "
                "node's Raft log, restore it from a backup, otherwise choose another path"
            ) from exc
        fresh = app_id == 0 and not tables
        if not fresh and app_id != APPLICATION_ID:
            raise StorageError(
                f"{self.path} is a SQLite database of another application "
                f"(tables: {', '.join(sorted(tables)) or 'none'}); raftoral_lab will not write "
                "into it: choose another path"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has storage schema version {version}, written by a newer "
                f"raftoral_lab; this one reads up to version {SCHEMA_VERSION}: upgrade "
                "raftoral_lab to open it"
            )
        if not fresh and (version < 1 or not tables >= _TABLES):
            raise StorageError(
                f"{self.path} is a raftoral_lab storage file but its schema is damaged (version "
                f"{version}, tables: {', '.join(sorted(tables)) or 'none'}); restore it from a "
                "backup or choose another path"
            )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StorageError(
                    f"{self.path}: SQLite could not switch to WAL mode (got {mode!r}), which "
                    "this storage needs for crash safety; use a local disk, not a network share"
                )
            conn.execute(f"PRAGMA synchronous={synchronous}")
            if fresh:
                with self._transaction() as db:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot prepare the storage file {self.path}: {exc}") from exc

    # --- transactions and reads ----------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit: committed when the block ends, rolled back when it raises.

        Writers take the write lock up front (IMMEDIATE) so a transaction never fails halfway
        on a lock upgrade; readers start deferred and see one consistent snapshot of the file.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(
                    f"the storage file {self.path} is closed; open a new SQLiteStorage"
                )
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"storage file {self.path}: {exc}") from exc

    def _load(self, db: sqlite3.Connection) -> PersistentState:
        row = db.execute("SELECT term, vote, commit_index FROM hard_state").fetchone()
        hard_state = HardState() if row is None else HardState(row[0], row[1], row[2])
        snapshot = self._read_snapshot(db)
        try:
            entries = tuple(
                Entry(idx, term, data, _KINDS[kind])
                for idx, term, kind, data in db.execute(
                    "SELECT idx, term, kind, data FROM entries ORDER BY idx"
                )
            )
        except KeyError as exc:
            raise StorageError(
                f"{self.path} holds an entry of unknown kind {exc.args[0]!r}; the file was "
                "written by another program or is damaged"
            ) from exc
        base = 0 if snapshot is None else snapshot.meta.index
        if entries and (
            entries[0].index != base + 1 or entries[-1].index - entries[0].index != len(entries) - 1
        ):
            raise StorageError(
                f"{self.path} holds entries {entries[0].index}..{entries[-1].index} "
                f"({len(entries)} rows) after a snapshot at index {base}: the log has holes; "
                "the file is damaged, restore it from a backup"
            )
        return PersistentState(hard_state, snapshot, entries)

    def _read_snapshot(self, db: sqlite3.Connection) -> Snapshot | None:
        row = db.execute("SELECT idx, term, voters, learners, data FROM snapshot").fetchone()
        if row is None:
            return None
        idx, term, voters, learners, data = row
        try:
            conf = ConfState(frozenset(json.loads(voters)), frozenset(json.loads(learners)))
        except (ValueError, TypeError) as exc:
            raise StorageError(
                f"{self.path} holds a snapshot whose membership cannot be read ({exc}); the file "
                "is damaged, restore it from a backup"
            ) from exc
        return Snapshot(SnapshotMeta(idx, term, conf), data)

    def _write_snapshot(self, db: sqlite3.Connection, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        db.execute(
            "INSERT OR REPLACE INTO snapshot (id, idx, term, voters, learners, data) "
            "VALUES (0, ?, ?, ?, ?, ?)",
            (
                meta.index,
                meta.term,
                json.dumps(sorted(meta.conf.voters)),
                json.dumps(sorted(meta.conf.learners)),
                snapshot.data,
            ),
        )

    def _base(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Index and term the stored log starts after (the snapshot's; 0, 0 without one)."""
        row = db.execute("SELECT idx, term FROM snapshot").fetchone()
        return (0, 0) if row is None else (row[0], row[1])

    def _last_index(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT MAX(idx) FROM entries").fetchone()
        return self._base(db)[0] if row[0] is None else int(row[0])

    def _stored_term(self, db: sqlite3.Connection, index: int) -> int:
        row = db.execute("SELECT term FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise StorageError(f"{self.path} has no entry at index {index}; the file is damaged")
        return int(row[0])

    def _term_or_none(
        self, db: sqlite3.Connection, index: int, base_index: int, base_term: int
    ) -> int | None:
        if index == base_index:
            return base_term
        row = db.execute("SELECT term FROM entries WHERE idx = ?", (index,)).fetchone()
        return None if row is None else int(row[0])
