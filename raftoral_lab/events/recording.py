"""Recording and replay: events as JSON lines, one file per run.

The first line is a header, every other line one event exactly as `event_to_json` writes it:

    {"kind": "header", "schema": 1, "cluster": "lab", "config": {...}, "created": "2025-..."}
    {"kind": "role_changed", "v": 1, "node": 2, "group": 0, "seq": 7, "ts": 12.0, ...}

JSON lines because a recording must survive the process that wrote it being killed (every
complete line stays readable), be greppable in class (`grep role_changed run.jsonl`), and load
into the same models the live cluster produces, so `ClusterView` replays it with the same code.
A `.gz` suffix writes and reads gzip.

`load` refuses what it cannot read faithfully and says where: an unknown kind, a malformed
line or a newer schema version is an error naming the file and the line number. The one
exception is a torn last line (no final newline, as a process killed mid-write leaves it),
which is skipped by default and reported in `Recording.torn_tail`.
"""

from __future__ import annotations

import datetime
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from raftoral_lab.errors import EventSchemaError
from raftoral_lab.events.eventlog import EventLog
from raftoral_lab.events.models import SCHEMA_VERSION, EventBase, event_to_json, parse_event
from raftoral_lab.events.view import ClusterView


class RecordingError(EventSchemaError):
    """A recording line that cannot be read; `path` and `line` (1-based) say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int,
        kind: str | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{path}, line {line}: {message}", kind=kind, fields=fields)
        self.path = path
        self.line = line


@dataclass(frozen=True)
class RecordingHeader:
    """What a recording says about itself: event schema version, cluster name, the config the
    run used (free-form JSON: tick length, seed, Raft settings...), and when it was made."""

    cluster: str = "lab"
    config: Mapping[str, Any] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )
    schema: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "header",
                "schema": self.schema,
                "cluster": self.cluster,
                "config": dict(self.config),
                "created": self.created,
            },
            separators=(",", ":"),
            default=str,
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, path: str = "<recording>") -> RecordingHeader:
        """Parse and check line 1; RecordingError naming line 1 when it is not a header this
        version can read."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordingError(
                f"not a recording header (not JSON: {exc})", path=path, line=1
            ) from None
        if not isinstance(data, dict) or data.get("kind") != "header":
            raise RecordingError(
                'not a recording header: the first line must be {"kind": "header", ...}; was '
                "this file written by raftoral_lab's Recorder?",
                path=path,
                line=1,
                fields=("kind",),
            )
        schema = data.get("schema")
        if type(schema) is not int or schema < 1:
            raise RecordingError(
                f"header field 'schema' must be a positive integer, got {schema!r}",
                path=path,
                line=1,
                fields=("schema",),
            )
        if schema > SCHEMA_VERSION:
            raise RecordingError(
                f"recording schema version {schema} is newer than this raftoral_lab reads "
                f"({SCHEMA_VERSION}); upgrade raftoral_lab to read it",
                path=path,
                line=1,
                fields=("schema",),
            )
        cluster, config, created = data.get("cluster"), data.get("config", {}), data.get("created")
        for name, value, typ in (
            ("cluster", cluster, str),
            ("config", config, dict),
            ("created", created, str),
        ):
            if not isinstance(value, typ):
                raise RecordingError(
                    f"header field {name!r} must be a {typ.__name__}, got {value!r}",
                    path=path,
                    line=1,
                    fields=(name,),
                )
        return cls(cluster=cluster, config=config, created=created, schema=schema)  # type: ignore[arg-type]


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


class Recorder:
    """Writes events to a JSONL recording; a listener (`node.listeners.append(recorder)`).

    `Recorder(path, header)` with a `RecordingHeader`, a header dict, or None (then `cluster`
    and `config` make one). For the simulator, `recorder.extend(sim.events)`. `flush_each`
    flushes after every event, for processes that may be killed (a few microseconds more per
    event); otherwise lines reach the disk in blocks and at `close()`.
    """

    def __init__(
        self,
        path: str | Path,
        header: RecordingHeader | Mapping[str, Any] | None = None,
        *,
        cluster: str = "lab",
        config: Mapping[str, Any] | None = None,
        flush_each: bool = False,
    ) -> None:
        self.path = Path(path)
        if header is None:
            header = RecordingHeader(cluster=cluster, config=dict(config or {}))
        elif not isinstance(header, RecordingHeader):
            defaults = RecordingHeader(cluster=cluster, config=dict(config or {}))
            data = json.loads(defaults.to_json()) | dict(header)
            header = RecordingHeader.from_json(json.dumps(data, default=str), path=str(path))
        self.header = header
        self.flush_each = flush_each
        self.count = 0
        """Events written."""
        self._file: IO[str] | None = _open(self.path, "w")
        self._file.write(header.to_json() + "\n")
        self._file.flush()

    def record(self, event: EventBase) -> None:
        file = self._file
        if file is None:
            return  # closed: a listener left behind must not break its node
        file.write(event_to_json(event) + "\n")
        self.count += 1
        if self.flush_each:
            file.flush()

    __call__ = record

    def extend(self, events: Iterable[EventBase]) -> None:
        for event in events:
            self.record(event)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Recorder {self.path} {self.count} events{' closed' if self.closed else ''}>"


@dataclass
class Recording:
    """A loaded recording: its header and its events (an `EventLog`)."""

    header: RecordingHeader
    events: EventLog
    path: Path | None = None
    torn_tail: bool = False
    """True when an incomplete last line (a writer killed mid-line) was skipped."""

    def view(self, until: float | None = None) -> ClusterView:
        """The recorded cluster at the end, or at time `until`."""
        return self.events.view(until)

    def to_dataframe(self) -> Any:
        return self.events.to_dataframe()

    def __len__(self) -> int:
        return len(self.events)


def load(path: str | Path, *, allow_torn_tail: bool = True) -> Recording:
    """Read a recording written by `Recorder` (or `save`); RecordingError names the line."""
    path = Path(path)
    where = str(path)
    events = EventLog()
    torn = False
    with _open(path, "r") as file:
        first = file.readline()
        if not first:
            raise RecordingError("empty file: no recording header", path=where, line=1)
        header = RecordingHeader.from_json(first, path=where)
        number = 1
        for text in file:
            number += 1
            if not text.strip():
                continue
            try:
                event = parse_event(text)
            except EventSchemaError as exc:
                if allow_torn_tail and not text.endswith("\n") and not file.readline():
                    torn = True
                    break
                raise RecordingError(
                    str(exc), path=where, line=number, kind=exc.kind, fields=exc.fields
                ) from None
            events.append(event)
    return Recording(header, events, path, torn)


def save(
    path: str | Path,
    events: Iterable[EventBase],
    *,
    header: RecordingHeader | Mapping[str, Any] | None = None,
    cluster: str = "lab",
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write `events` as a recording in one go; returns the path."""
    with Recorder(path, header, cluster=cluster, config=config) as recorder:
        recorder.extend(events)
    return recorder.path
