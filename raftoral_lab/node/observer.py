"""RemoteObserver: see a cluster from anywhere the broker reaches, through its event streams.

It subscribes to `events/+` (what every `EventPublisher` sends) and feeds each event, parsed
back into the same models, to a `ClusterView`, an `EventBus` and any listeners: a dashboard on
a laptop in class draws the nodes running on other machines with the code it uses in-process.

It trusts nothing it receives: a payload line that is not a valid event (malformed JSON, an
unknown kind, a newer schema) is counted in `malformed` and dropped, never raised. Each node's
`seq` numbers its events, so `gaps` counts events that never arrived (QoS 0 may lose some;
a sampling publisher leaves gaps by design). A retained `presence/{id}` document says which
nodes are up even when their last events were lost with them (`presence`).

Two things make the picture right for an observer that is not there from the start:

- Nodes emit events only when something changes, so an observer opened on a quiet cluster
  would learn nothing. Whenever presence says a node is alive (the retained documents arrive
  right after subscribing, and again when a node comes up), the observer sends that node an
  `announce` control (`node/{id}/control`, signed like any payload when the transport has the
  cluster secret), and the node reports its current state as events (`Node.announce`).
- A node killed with `kill -9` sends no last event; only the broker's last will on its
  presence says it is gone. When presence says a node is down (or back) and the view does not
  show it so, the observer folds a `presence_changed` event (what the presence document
  says: `alive`, `reason`) followed by `node_crashed` (or `node_removed`, when the view's
  membership of group 0 no longer has the node) or `node_restarted`, attributed to that node.
  These are counted in `from_presence`, not in `received`, and they are not part of the
  node's `seq` numbering (they reuse the last `seq` seen from it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from raftoral_lab.errors import MalformedMessage, RaftoralError
from raftoral_lab.events import (
    ClusterView,
    EventBase,
    EventBus,
    EventSchemaError,
    make_event,
    parse_event,
)
from raftoral_lab.node.client import parse_presence
from raftoral_lab.node.control import CONTROL_VERSION
from raftoral_lab.node.rpc import payload_limit
from raftoral_lab.transport.base import Transport

log = logging.getLogger(__name__)

EVENTS_FILTER = "events/+"
PRESENCE_FILTER = "presence/+"
MAX_REASON = 200
"""Characters of a presence document's `reason` kept in a `presence_changed` event."""


class RemoteObserver:
    """Folds the events of every node on the broker into `view` (and `bus`, `listeners`).

    `transport` is any transport of the cluster (MQTT, or memory in tests), typically made
    with `presence=False` so the observer leaves no trace. Use `async with`, or `start()` /
    `stop()`; a transport that was not running is started and, at `stop()`, closed.

    `presence=False` ignores `presence/+` (then nothing is announced or derived from it);
    `announce=False` sends no `announce` controls on presence (`announce()` still can).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        view: ClusterView | None = None,
        bus: EventBus | None = None,
        listeners: Iterable[Callable[[EventBase], None]] = (),
        presence: bool = True,
        announce: bool = True,
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
        self.announce_on_presence = announce
        self.announces = 0
        """`announce` controls sent."""
        self.announce_failures = 0
        """`announce` controls the transport refused (not running, broker unreachable)."""
        self.from_presence = 0
        """Events derived from presence documents (`presence_changed` and the status event)."""
        self._last_seq: dict[int, int] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self._owns_transport = False
        self._started = False
        self._stopping = False

    async def start(self) -> None:
        if self._started:
            return
        self._stopping = False
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
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        self._sink(event)

    def _sink(self, event: EventBase) -> None:
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
            node, doc = parse_presence(topic, payload, max_bytes=payload_limit(self.transport))
        except MalformedMessage as error:
            self._malformed(f"{topic}: {error}")
            return
        if doc is None:  # a cleared retained message: says nothing of how the node is
            self.presence[node] = {"node": node, "alive": False, "reason": "cleared"}
            return
        self.presence[node] = doc
        if node == self.transport.node_id:
            return
        status = self._status(node)
        if doc["alive"]:
            if status in ("crashed", "removed"):
                self._derive(node, "node_restarted", alive=True, reason=None)
            if self.announce_on_presence:
                self._spawn_announce(node)
        elif status not in ("crashed", "removed"):
            reason = doc.get("reason")
            reason = reason[:MAX_REASON] if isinstance(reason, str) else None
            kind = "node_removed" if self._removed(node) else "node_crashed"
            self._derive(node, kind, alive=False, reason=reason)

    def _status(self, node: int) -> str | None:
        state = self.view.nodes.get(node)
        return None if state is None else state.status

    def _removed(self, node: int) -> bool:
        """Whether the view knows the membership of group 0 and `node` is not in it."""
        membership = self.view.membership(0)
        return membership is not None and node not in (*membership[0], *membership[1])

    def _derive(self, node: int, kind: str, *, alive: bool, reason: str | None) -> None:
        """Fold what presence says of `node`: `presence_changed`, then the status event."""
        seq = self._last_seq.get(node, 0)
        ts = time.time()
        for event_kind, fields in (
            ("presence_changed", {"alive": alive, "reason": reason}),
            (kind, {}),
        ):
            event = make_event(event_kind, fields, node=node, seq=seq, ts=ts)
            self.from_presence += 1
            self._sink(event)

    # --- announcing ------------------------------------------------------------------------------

    async def announce(self, nodes: Iterable[int] | None = None) -> list[int]:
        """Ask `nodes` (default: those presence says are alive) to report their current state
        as events (an `announce` control each); returns the nodes the control went to."""
        targets = sorted((self.alive() if nodes is None else set(nodes)) - {self.transport.node_id})
        sent = await asyncio.gather(*(self._send_announce(node) for node in targets))
        return [node for node, ok in zip(targets, sent, strict=True) if ok]

    def _spawn_announce(self, node: int) -> None:
        if self._stopping:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._send_announce(node))
        except RuntimeError:  # no loop (a synchronous caller feeding presence by hand)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_announce(self, node: int) -> bool:
        body = json.dumps({"v": CONTROL_VERSION, "op": "announce"})
        try:
            await self.transport.publish(f"node/{node}/control", body, qos=1)
        except RaftoralError as error:
            self.announce_failures += 1
            log.debug("observer: no announce to node %d: %s", node, error)
            return False
        self.announces += 1
        return True

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
            f"{self.gaps} missing, {self.from_presence} from presence>"
        )
