"""Where the dashboard's events come from, and the state the views draw.

A `Model` folds events from an `EventSource` into one `ClusterView` and keeps what the views
need besides: the newest events for the feed, message rates per link, how many events were
lost. One model serves every browser session of a server: each session redraws when the
model's `version` moved past what it drew.

Sources: a growing list (`Lab.events`, `Simulation.events`), an `EventBus` subscription
(remote observers), or a recording (`ReplayModel`, with a time cursor).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Protocol

from raftoral_lab.events.bus import EventBus, Lost, Subscription
from raftoral_lab.events.models import MESSAGE_KINDS, EventBase
from raftoral_lab.events.view import ClusterView

FEED_SIZE = 2_000
"""Newest events kept for the feed, message-level and other kinds apart (so that heartbeats
never push an election out of the feed); the view itself keeps no events."""

RATE_WINDOW = 3.0
"""Seconds (or ticks) of history behind a message rate."""

MAX_EVENTS_PER_REFRESH = 50_000
"""Events folded per refresh at most; the rest wait for the next one (the page stays live)."""

STATUS_KINDS = {
    "node_crashed": "crashed",
    "node_restarted": "alive",
    "node_joined": "alive",
    "node_removed": "removed",
}
MAX_STATUS_CHANGES = 256
"""Status changes kept per node (the timeline draws when each node was down)."""


class EventSource(Protocol):
    """Gives the events that arrived since the last call (never blocks)."""

    def poll(self) -> Sequence[EventBase]: ...

    @property
    def lost(self) -> int:
        """Events this source had to drop (a slow reader on a bus); 0 when it never drops."""
        ...


class ListSource:
    """Reads a sequence that someone appends to (`Lab.events`, `Simulation.events`): a list,
    or a bounded `EventLog` (whose `trimmed` counts what fell off its front)."""

    def __init__(self, events: Sequence[EventBase], *, start: int = 0) -> None:
        self.events = events
        self.position = start
        """Events read so far, counted from the first ever appended."""
        self.lost = 0

    def poll(self) -> Sequence[EventBase]:
        events = self.events
        trimmed = int(getattr(events, "trimmed", 0) or 0)
        total = trimmed + len(events)
        if self.position < trimmed:  # the log let go of events we had not read
            self.lost += trimmed - self.position
            self.position = trimmed
        new = min(total - self.position, MAX_EVENTS_PER_REFRESH)
        if new <= 0:
            return ()
        start = self.position - trimmed
        if isinstance(events, list):
            batch: Sequence[EventBase] = events[start : start + new]
        else:  # a deque-backed log: walk from the end, O(new) not O(len)
            skip = len(events) - start - new
            try:
                tail = list(islice(reversed(events), skip, skip + new))
            except RuntimeError:  # appended to by the cluster's thread meanwhile: next time
                return ()
            tail.reverse()
            batch = tail
        self.position += new
        return batch


class BusSource:
    """Drains an `EventBus` subscription; `Lost` markers add to `lost`."""

    def __init__(self, bus_or_subscription: EventBus | Subscription, *, buffer: int = 100_000):
        if isinstance(bus_or_subscription, EventBus):
            self.subscription = bus_or_subscription.subscribe(buffer=buffer, replay=True)
        else:
            self.subscription = bus_or_subscription
        self.lost = 0

    def poll(self) -> Sequence[EventBase]:
        # one item at a time: the publisher may be another thread (popleft is atomic)
        out: list[EventBase] = []
        get = self.subscription.get_nowait
        while len(out) < MAX_EVENTS_PER_REFRESH:
            item = get()
            if item is None:
                break
            if isinstance(item, Lost):
                self.lost += item.count
            else:
                out.append(item)
        return out


class Model:
    """The folded state every view reads, shared by the sessions of one server."""

    def __init__(
        self,
        source: EventSource | None = None,
        *,
        title: str = "cluster",
        mode: str = "live",
        clock: Callable[[], object] | None = None,
        time_unit: str = "s",
    ) -> None:
        self.source = source
        self.title = title
        self.mode = mode
        """"live", "simulator", "replay" or "remote": shown in the header."""
        self.clock = clock
        """Called before each poll (a simulation's driver advances its ticks there)."""
        self.time_unit = time_unit
        self.view = ClusterView()
        self.feed: deque[EventBase] = deque(maxlen=FEED_SIZE)
        """The newest events that are not message-level, oldest first."""
        self.message_feed: deque[EventBase] = deque(maxlen=FEED_SIZE // 4)
        """The newest message-level events (sent, delivered, dropped)."""
        self.version = 0
        """Moves each time something was folded: sessions redraw when it moved."""
        self.folded = 0
        self.t0: float | None = None
        """Time of the first event (the timeline's origin)."""
        self.message_events = 0
        self.status_changes: dict[int, deque[tuple[float, str]]] = {}
        """Node -> (time, "crashed" | "alive" | "removed"), as the lab events said."""
        self._links: deque[tuple[float, dict[tuple[int, int], int]]] = deque()
        self.rates: dict[tuple[int, int], float] = {}
        """(src, dst) -> messages per second (per tick in a simulation) lately."""
        self.notice: str | None = None
        """A line the header shows (e.g. "waiting for events")."""
        self.error: str | None = None
        self._last_poll = 0.0

    # --- folding -------------------------------------------------------------------------------

    def refresh(self, *, min_interval: float = 0.0) -> bool:
        """Fold what arrived; True when the view changed. Cheap to call from every session:
        sessions sharing the model poll at most once per `min_interval` seconds."""
        now = time.monotonic()
        if now - self._last_poll < min_interval:
            return False
        self._last_poll = now
        if self.clock is not None:
            try:
                self.clock()
            except Exception as error:  # a simulation raising: say so, keep the page up
                self.error = f"{type(error).__name__}: {error}"
        if self.source is None:
            return False
        batch = self.source.poll()
        if not batch:
            return False
        self.fold(batch)
        return True

    def fold(self, events: Iterable[EventBase]) -> None:
        apply = self.view.apply
        feed = self.feed.append
        message_feed = self.message_feed.append
        count = 0
        messages = 0
        first: float | None = None
        for event in events:
            apply(event)
            if first is None:
                first = event.ts
            kind = event.kind
            if kind in MESSAGE_KINDS:
                messages += 1
                message_feed(event)
            else:
                feed(event)
                status = STATUS_KINDS.get(kind)
                if status is not None:
                    changes = self.status_changes.get(event.node)
                    if changes is None:
                        changes = self.status_changes[event.node] = deque(maxlen=MAX_STATUS_CHANGES)
                    changes.append((event.ts, status))
            count += 1
        if not count:
            return
        if self.t0 is None:
            self.t0 = first
        self.folded += count
        self.message_events += messages
        if messages or self.rates:
            self._update_rates()
        self.version += 1

    def _update_rates(self) -> None:
        now = self.view.time
        if now is None:
            return
        links = self.view.links
        history = self._links
        history.append((now, dict(links)))
        while len(history) > 2 and now - history[1][0] >= RATE_WINDOW:
            history.popleft()
        then, old = history[0]
        span = now - then
        if span <= 0:
            return
        self.rates = {
            link: (count - old.get(link, 0)) / span
            for link, count in links.items()
            if count - old.get(link, 0) > 0
        }

    @property
    def lost(self) -> int:
        return self.source.lost if self.source is not None else 0

    @property
    def wall_clock(self) -> bool:
        """Whether event times are wall-clock seconds (live nodes), so that time goes on
        between events; a simulation's ticks and a recording's cursor do not."""
        return self.time_unit == "s" and self.mode in ("live", "remote")

    @property
    def now(self) -> float | None:
        """The present of the picture: the newest event's time, or the clock when live."""
        latest = self.view.time
        if latest is None or not self.wall_clock:
            return latest
        return max(latest, time.time())

    def reset(self) -> None:
        self.view = ClusterView()
        self.feed.clear()
        self.message_feed.clear()
        self.status_changes.clear()
        self._links.clear()
        self.rates = {}
        self.t0 = None
        self.folded = 0
        self.message_events = 0
        self.version += 1


class ReplayModel(Model):
    """A recording, folded up to a time cursor the page moves (forward: incrementally;
    backward: folded again from the start)."""

    def __init__(self, events: Sequence[EventBase], *, title: str = "recording") -> None:
        ordered = sorted(events, key=lambda e: e.ts)  # per-node order is kept by a stable sort
        unit = "tick" if ordered and ordered[0].tick is not None else "s"
        super().__init__(None, title=title, mode="replay", time_unit=unit)
        self.events = ordered
        self.start = ordered[0].ts if ordered else 0.0
        self.end = ordered[-1].ts if ordered else 0.0
        self.cursor = self.start
        self._position = 0
        self.t0 = self.start
        self.seek(self.start)

    def seek(self, t: float) -> None:
        """Show the cluster as it was at time `t` (the fold of the events with ts <= t)."""
        if t < self.cursor:
            self.reset()
            self.t0 = self.start
            self._position = 0
        self.cursor = t
        events = self.events
        end = self._position
        while end < len(events) and events[end].ts <= t:
            end += 1
        if end > self._position:
            self.fold(events[self._position : end])
            self._position = end
        else:
            self.version += 1

    def refresh(self, *, min_interval: float = 0.0) -> bool:
        return False
