"""RemoteObserver: see a cluster from anywhere the broker reaches, through its event streams.

It subscribes to `events/+` (what every `EventPublisher` sends) and feeds each event, parsed
back into the same models, to a `ClusterView`, an `EventBus` and any listeners: a dashboard on
a laptop in class draws the nodes running on other machines with the code it uses in-process.

It trusts nothing it receives: a payload line that is not a valid event (malformed JSON, an
unknown kind, a newer schema) is counted in `malformed` and dropped, never raised. Each node's
`seq` numbers its events, so `gaps` counts events that never arrived (QoS 0 may lose some;
a sampling publisher leaves gaps by design). A retained `presence/{id}` document says which
nodes are up even when their last events were lost with them (`presence`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from raftoral_lab.events import ClusterView, EventBase, EventBus, EventSchemaError, parse_event
from raftoral_lab.transport.base import Transport

log = logging.getLogger(__name__)

EVENTS_FILTER = "events/+"
PRESENCE_FILTER = "presence/+"


class RemoteObserver:
    """Folds the events of every node on the broker into `view` (and `bus`, `listeners`).

    `transport` is any transport of the cluster (MQTT, or memory in tests), typically made
    with `presence=False` so the observer leaves no trace. Use `async with`, or `start()` /
    `stop()`; a transport that was not running is started and, at `stop()`, closed.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        view: ClusterView | None = None,
        bus: EventBus | None = None,
        listeners: Iterable[Callable[[EventBase], None]] = (),
        presence: bool = True,
    ) -> None:
        self.transport = transport
        self.view = view if view is not None else ClusterView()
        self.bus = bus
        self.listeners = list(listeners)
        self.watch_presence = presence
        self.received = 0
        """Events received and fed."""
        self.malformed = 0
        """Payload lines that were not valid events (dropped)."""
        self.last_malformed: str | None = None
        self.gaps = 0
        """Events missing from the nodes' `seq` numbering (lost or sampled out)."""
        self.errors = 0
        """Exceptions raised by a listener (logged, counted; the others still run)."""
        self.presence: dict[int, dict[str, Any]] = {}
        """Node id -> its last presence document (`alive`, `reason`, ...)."""
        self._last_seq: dict[int, int] = {}
        self._owns_transport = False
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        if not self.transport.running:
            await self.transport.start()
            self._owns_transport = True
        await self.transport.subscribe(EVENTS_FILTER, self._on_events, qos=0)
        if self.watch_presence:
            await self.transport.subscribe(PRESENCE_FILTER, self._on_presence, qos=1)
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.transport.running:
            await self.transport.unsubscribe(EVENTS_FILTER, self._on_events)
            if self.watch_presence:
                await self.transport.unsubscribe(PRESENCE_FILTER, self._on_presence)
        if self._owns_transport:
            await self.transport.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- inbound -------------------------------------------------------------------------------

    def _on_events(self, topic: str, payload: bytes) -> None:
        for line in payload.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = parse_event(line)
            except EventSchemaError as error:
                self._malformed(f"{topic}: {error}")
                continue
            self.feed(event)

    def feed(self, event: EventBase) -> None:
        """Fold one event as if it had arrived from the broker (also for tests and replays)."""
        last = self._last_seq.get(event.node)
        if last is not None and event.seq > last + 1:
            self.gaps += event.seq - last - 1
        self._last_seq[event.node] = event.seq  # a lower seq: the node restarted its count
        self.received += 1
        sinks: list[Callable[[EventBase], None]] = [self.view.apply]
        if self.bus is not None:
            sinks.append(self.bus.publish)
        sinks.extend(self.listeners)
        for sink in sinks:
            try:
                sink(event)
            except Exception:
                self.errors += 1
                log.exception("observer: %r failed on a %s event", sink, event.kind)

    def _on_presence(self, topic: str, payload: bytes) -> None:
        try:
            node = int(topic.rsplit("/", 1)[1])
            body = json.loads(payload) if payload else {"alive": False, "reason": "cleared"}
            if not isinstance(body, dict):
                raise ValueError("presence is not a JSON object")
        except ValueError as error:
            self._malformed(f"{topic}: {error}")
            return
        self.presence[node] = body

    def _malformed(self, reason: str) -> None:
        self.malformed += 1
        self.last_malformed = reason
        log.debug("observer dropped a malformed event: %s", reason)

    def alive(self) -> set[int]:
        """Nodes whose presence says they are up."""
        return {node for node, body in self.presence.items() if body.get("alive") is True}

    def __repr__(self) -> str:
        return (
            f"<RemoteObserver {self.received} events, {self.malformed} malformed, "
            f"{self.gaps} missing>"
        )
