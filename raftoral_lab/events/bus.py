"""EventBus: fan events out to many readers without ever making a producer wait.

Raft nodes, the simulator and the workflow engine publish from inside their hot loops, so
`publish` does a few set look-ups and deque appends per subscriber and returns: it never
awaits, never calls a subscriber's code (callbacks run later, from the event loop), and never
raises because of a subscriber.

Each subscriber has its own bounded buffer. A subscriber that falls behind loses its *oldest*
buffered events (the newest are what a dashboard needs) and is told, in band: the next thing it
reads is a `Lost(count)` marker saying how many events fell out of its buffer at that point of
the stream, followed by the events that survived. `Subscription.lost` keeps the running total.

    async for item in bus.subscribe(kinds={"role_changed", "commit_advanced"}):
        if isinstance(item, Lost):
            print(f"missed {item.count} events")
            continue
        draw(item)

    sub = bus.subscribe(on_event, nodes=2)  # callback: called from the loop, in batches
    items = bus.subscribe(buffer=10_000).drain()  # or poll without async (Panel callbacks)

Thread safety: `publish` may run in another thread than the reader (a simulator driven from a
worker thread); wake-ups then go through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import events as _aio_events
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, TypeAlias

from raftoral_lab.errors import ConfigError
from raftoral_lab.events.filters import EventFilter, Ids, Names
from raftoral_lab.events.models import EventBase

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 1024


@dataclass(frozen=True, slots=True)
class Lost:
    """`count` events of this subscription were dropped here because its reader fell behind.

    It has a `kind` ("lost") so code that switches on `item.kind` can handle it too.
    """

    count: int
    kind: Literal["lost"] = "lost"


BusItem: TypeAlias = EventBase | Lost
"""What a subscriber reads: an event, or a marker of events it lost."""

Callback: TypeAlias = Callable[[BusItem], None]


def _positive(value: int, what: str) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


class Subscription:
    """One reader of an `EventBus`: an async iterator, a poller (`drain`), or a callback.

    Use `async with` / `with` or `close()` to stop receiving.
    """

    def __init__(
        self,
        bus: EventBus,
        event_filter: EventFilter | None,
        buffer: int,
        callback: Callback | None,
        markers: bool,
    ) -> None:
        self.bus = bus
        self.filter = event_filter
        self._match = event_filter.compile() if event_filter is not None else None
        self.buffer = buffer
        self.callback = callback
        self.markers = markers
        """False: no `Lost` items in the stream; read `lost` instead."""
        self.lost = 0
        """Events this subscriber lost in total (oldest first) because it fell behind."""
        self.received = 0
        """Events that matched and entered the buffer (lost ones included)."""
        self.errors = 0
        """Exceptions raised by the callback (logged and counted; delivery goes on)."""
        self._queue: deque[EventBase] = deque(maxlen=buffer)
        self._unreported = 0
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        if callback is not None:
            self._loop = _aio_events._get_running_loop()

    # --- the producer's side (called by EventBus.publish) ------------------------------------

    def _offer(self, event: EventBase) -> None:
        queue = self._queue
        if len(queue) == self.buffer:  # the append below pushes the oldest out
            self.lost += 1
            self._unreported += 1
        queue.append(event)
        self.received += 1
        if self._waiter is not None:
            self._wake()
        elif self.callback is not None and not self._scheduled:
            self._schedule()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = waiter.get_loop()
        if _aio_events._get_running_loop() is loop:
            waiter.set_result(None)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, waiter)

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._run_callback()  # no event loop (a plain script): nothing to defer to
            return
        self._scheduled = True
        if _aio_events._get_running_loop() is loop:
            loop.call_soon(self._run_callback)
        else:
            loop.call_soon_threadsafe(self._run_callback)

    def _run_callback(self) -> None:
        self._scheduled = False
        callback = self.callback
        if callback is None:
            return
        for item in self.drain():
            try:
                callback(item)
            except Exception:
                self.errors += 1
                log.exception("event bus callback %r failed", callback)

    # --- the reader's side --------------------------------------------------------------------

    def drain(self) -> list[BusItem]:
        """Everything buffered now (a `Lost` marker first if events were lost), without
        waiting: for readers that poll, such as a dashboard's periodic callback."""
        items: list[BusItem] = []
        if self._unreported:
            if self.markers:
                items.append(Lost(self._unreported))
            self._unreported = 0
        queue = self._queue
        items.extend(queue)
        queue.clear()
        return items

    def get_nowait(self) -> BusItem | None:
        """The next item, or None when the buffer is empty."""
        if self._unreported:
            count, self._unreported = self._unreported, 0
            if self.markers:
                return Lost(count)
        return self._queue.popleft() if self._queue else None

    async def get(self) -> BusItem:
        """The next item, waiting for one; StopAsyncIteration once closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                raise StopAsyncIteration
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                # re-check after publishing the waiter: a producer in another thread may
                # have appended in between and not seen it
                if not self._queue and not self._unreported and not self._closed:
                    await waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[BusItem]:
        return self

    async def __anext__(self) -> BusItem:
        return await self.get()

    def __len__(self) -> int:
        """Events waiting in the buffer."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop receiving; a waiting reader ends at once and what was buffered is dropped."""
        self._queue.clear()
        self._unreported = 0
        self._finish()

    def _finish(self) -> None:
        """Stop receiving but let the reader drain what is buffered (the bus closed)."""
        if self._closed:
            return
        self._closed = True
        self.bus._remove(self)
        self._wake()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        how = "callback" if self.callback is not None else "reader"
        state = "closed" if self._closed else f"{len(self._queue)}/{self.buffer} buffered"
        return f"<Subscription {how} {state}, lost {self.lost}>"


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventBus:
    """Many producers, many subscribers, bounded memory everywhere.

    `buffer` is the default per-subscriber buffer; `history` keeps the last N events for late
    joiners (`subscribe(replay=True)`, `history()`), 0 keeps none. The bus is a listener itself:
    `node.listeners.append(bus.publish)` or `node.listeners.append(bus)`.
    """

    def __init__(self, *, buffer: int = DEFAULT_BUFFER, history: int = 0) -> None:
        self.buffer = _positive(buffer, "buffer")
        if type(history) is not int or history < 0:
            raise ConfigError(f"history must be a non-negative integer, got {history!r}")
        self._history: deque[EventBase] | None = deque(maxlen=history) if history else None
        self._subs: tuple[Subscription, ...] = ()
        self._closed = False
        self.published = 0
        """Events published so far."""

    def publish(self, event: EventBase) -> None:
        """Hand `event` to every matching subscriber; never blocks, never raises for them."""
        self.published += 1
        history = self._history
        if history is not None:
            history.append(event)
        for sub in self._subs:
            match = sub._match
            if match is None or match(event):
                sub._offer(event)

    __call__ = publish

    def subscribe(
        self,
        callback: Callback | None = None,
        *,
        kinds: Names = None,
        nodes: Ids = None,
        groups: Ids = None,
        workflows: Names = None,
        buffer: int | None = None,
        replay: bool = False,
        markers: bool = True,
    ) -> Subscription:
        """A new subscriber for the matching events (see the module docstring).

        With `callback`, items are handed to it from the event loop that was running when
        subscribing, in batches, never from inside `publish` (without a loop they are handed
        over at once). `replay` starts with the matching events of the history.
        """
        if self._closed:
            raise ConfigError("this event bus is closed; make a new one")
        size = self.buffer if buffer is None else _positive(buffer, "buffer")
        event_filter = EventFilter.of(kinds=kinds, nodes=nodes, groups=groups, workflows=workflows)
        sub = Subscription(self, event_filter, size, callback, markers)
        if replay and self._history is not None:
            for event in self._history:
                if event_filter is None or event_filter(event):
                    sub._offer(event)
        self._subs = (*self._subs, sub)
        return sub

    def history(
        self,
        *,
        kinds: Names = None,
        nodes: Ids = None,
        groups: Ids = None,
        workflows: Names = None,
    ) -> list[EventBase]:
        """The kept history (oldest first), filtered like `subscribe`."""
        if self._history is None:
            return []
        event_filter = EventFilter.of(kinds=kinds, nodes=nodes, groups=groups, workflows=workflows)
        if event_filter is None:
            return list(self._history)
        return [e for e in self._history if event_filter(e)]

    @property
    def subscribers(self) -> tuple[Subscription, ...]:
        return self._subs

    @property
    def lost(self) -> int:
        """Events lost by the current subscribers, in total."""
        return sum(sub.lost for sub in self._subs)

    def close(self) -> None:
        """End every subscription; readers still get what was buffered, then stop."""
        self._closed = True
        for sub in self._subs:
            sub._finish()

    def _remove(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)

    def __repr__(self) -> str:
        return f"<EventBus {len(self._subs)} subscribers, {self.published} published>"
