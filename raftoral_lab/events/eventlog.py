"""EventLog: the list of events a Lab, a recording or a notebook holds, with the usual questions.

A plain list would do for storage; this adds what students reach for next: `filter(...)`,
`to_dataframe()`, `view(until=t)` and `save(path)`. It is a listener itself
(`node.listeners.append(log)`), and can be bounded (`maxlen`) so a long-running Lab does not
grow without end; `trimmed` then says how many of the oldest events were let go.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, overload

from raftoral_lab.errors import ConfigError
from raftoral_lab.events.filters import EventFilter, Ids, Names
from raftoral_lab.events.frame import to_dataframe
from raftoral_lab.events.models import EventBase
from raftoral_lab.events.view import ClusterView


class EventLog(Sequence[EventBase]):
    """An ordered, optionally bounded sequence of events (oldest first)."""

    def __init__(self, events: Iterable[EventBase] = (), *, maxlen: int | None = None) -> None:
        if maxlen is not None and (type(maxlen) is not int or maxlen < 1):
            raise ConfigError(f"maxlen must be a positive integer or None, got {maxlen!r}")
        self.maxlen = maxlen
        self.trimmed = 0
        """Events dropped from the front because the log was full."""
        self._items: deque[EventBase] = deque(maxlen=maxlen)
        self.extend(events)

    # --- growing -------------------------------------------------------------------------------

    def append(self, event: EventBase) -> None:
        items = self._items
        if self.maxlen is not None and len(items) == self.maxlen:
            self.trimmed += 1
        items.append(event)

    __call__ = append

    def extend(self, events: Iterable[EventBase]) -> None:
        if self.maxlen is None:
            self._items.extend(events)
            return
        for event in events:
            self.append(event)

    def clear(self) -> None:
        self._items.clear()

    # --- Sequence ------------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> EventBase: ...

    @overload
    def __getitem__(self, index: slice) -> EventLog: ...

    def __getitem__(self, index: int | slice) -> EventBase | EventLog:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self._items))
            if step == 1 and start <= stop:
                return EventLog(islice(self._items, start, stop))
            return EventLog(list(self._items)[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[EventBase]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[EventBase]:
        return reversed(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventLog):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        if isinstance(other, list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kinds = Counter(e.kind for e in self._items).most_common(3)
        top = ", ".join(f"{k} {n}" for k, n in kinds)
        return f"<EventLog {len(self)} events{': ' + top if top else ''}>"

    # --- questions -----------------------------------------------------------------------------

    def filter(
        self,
        *,
        kinds: Names = None,
        nodes: Ids = None,
        groups: Ids = None,
        workflows: Names = None,
        since: float | None = None,
        until: float | None = None,
        where: Callable[[EventBase], bool] | None = None,
    ) -> EventLog:
        """The events that match every given condition (`since <= ts <= until`), in order."""
        event_filter = EventFilter.of(kinds=kinds, nodes=nodes, groups=groups, workflows=workflows)

        def keep(e: EventBase) -> bool:
            if event_filter is not None and not event_filter(e):
                return False
            if since is not None and e.ts < since:
                return False
            if until is not None and e.ts > until:
                return False
            return where is None or where(e)

        return EventLog(e for e in self._items if keep(e))

    def kinds(self) -> Counter[str]:
        """How many events of each kind."""
        return Counter(e.kind for e in self._items)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per event (see `raftoral_lab.events.to_dataframe`)."""
        return to_dataframe(self._items)

    def view(self, until: float | None = None) -> ClusterView:
        """The cluster these events describe, now or as it was at time `until`."""
        if until is None:
            return ClusterView(self._items)
        return ClusterView.at(self._items, until)

    def save(
        self, path: str | Path, *, cluster: str = "lab", config: dict[str, Any] | None = None
    ) -> Path:
        """Write the events as a JSONL recording that `raftoral_lab.events.load` reads back."""
        from raftoral_lab.events.recording import save  # recording builds on this module

        return save(path, self._items, cluster=cluster, config=config)
