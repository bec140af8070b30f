"""EventPublisher: a node's events on `events/{id}`, so a process elsewhere sees the cluster.

Events go out with `publish_nowait` at QoS 0: the node never waits for the broker, and a lost
event costs a dashboard one frame, never a node its progress. Each payload is one or more
events as JSON lines (`event_to_json`, newline separated): the events of one event-loop
iteration travel together, which keeps the broker's message rate (the scarce resource: about
17k publishes/s per aiomqtt client) far below the event rate; `mosquitto_sub -t
'raftoral/+/events/#'` still shows one readable event per line.

Message-level events (sent, delivered, dropped) are most of the stream; `sample_messages=0.1`
publishes one in ten of them, evenly spaced and deterministic, each with `weight` 10 (so a
remote view's counts and rates stay right on average), and counts the rest in `skipped`.
Everything else is always published. `enabled` switches the stream off and on live.

A `broker_disconnected` event cannot reach the broker it is about. From it until
`broker_reconnected`, the publisher holds the events itself (the last MAX_HELD; older ones are
counted in `lost`, the disconnect is always kept) and hands them over, in order, once the
broker is back: an observer sees the outage where it happened, and always sees that it did.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from raftoral_lab.errors import ConfigError, RaftoralError
from raftoral_lab.events import MESSAGE_KINDS, EventBase, event_to_json
from raftoral_lab.node.node import Node
from raftoral_lab.transport.base import Transport

log = logging.getLogger(__name__)

MAX_BATCH = 128
"""Events per payload at most (a payload stays well below any broker's size limit)."""
MAX_HELD = 10_000
"""Events held while the node's broker is away (beside the `broker_disconnected` itself)."""


class EventPublisher:
    """Publishes every event of `node` on `events/{node.id}` through `transport` (default: the
    node's own). Registers itself as a node listener; `close()` unregisters it."""

    def __init__(
        self,
        node: Node,
        transport: Transport | None = None,
        *,
        enabled: bool = True,
        sample_messages: float = 1.0,
        batch: bool = True,
    ) -> None:
        if not isinstance(sample_messages, int | float) or not 0.0 <= sample_messages <= 1.0:
            raise ConfigError(f"sample_messages must be between 0 and 1, got {sample_messages!r}")
        self.node = node
        self.transport = transport if transport is not None else node.transport
        self.topic = f"events/{node.id}"
        self.enabled = enabled
        """False: events are not published (counted in `suppressed`); may be switched live."""
        self.sample_messages = float(sample_messages)
        self._weight = max(1, round(1.0 / sample_messages)) if sample_messages > 0 else 1
        """What a published message event stands for: one in N is published, weight N."""
        self.batch = batch
        """False: one payload per event (for tools that expect exactly one JSON per message)."""
        self.published = 0
        """Events handed to the transport."""
        self.payloads = 0
        """Payloads handed to the transport (fewer than events when batching)."""
        self.skipped = 0
        """Message-level events left out by sampling."""
        self.suppressed = 0
        """Events not published because the publisher was disabled."""
        self.failed = 0
        """Events the transport refused (not running, closed): lost, as QoS 0 allows."""
        self.lost = 0
        """Events that did not fit in the hold while the broker was away (the oldest)."""
        self._holds_outages = self.transport is node.transport
        """The node's broker events are about this transport's connection."""
        self._outage: str | None = None
        """The held `broker_disconnected` line, while the broker is away."""
        self._held: deque[str] = deque()
        self._credit = 0.0
        self._pending: list[str] = []
        self._scheduled = False
        self._closed = False
        node.listeners.append(self)

    def __call__(self, event: EventBase) -> None:
        """The node listener: never blocks, never raises (a node's pump must go on)."""
        if self._outage is not None and event.kind == "broker_reconnected":
            self._release()  # the outage first, then (below) the reconnection
        if not self.enabled or self._closed:
            self.suppressed += 1
            return
        if event.kind in MESSAGE_KINDS and self.sample_messages < 1.0:
            self._credit += self.sample_messages
            if self._credit < 1.0 - 1e-9:  # ten times 0.1 adds up to 0.999...
                self.skipped += 1
                return
            self._credit -= 1.0
            event = event.model_copy(update={"weight": self._weight})
        line = event_to_json(event)
        if self._outage is not None:
            if len(self._held) >= MAX_HELD:
                self._held.popleft()
                self.lost += 1
            self._held.append(line)
            return
        if event.kind == "broker_disconnected" and self._holds_outages:
            self.flush()  # what came before is queued by the transport ahead of the outage
            self._outage = line
            return
        if not self.batch:
            self._send([line])
            return
        pending = self._pending
        pending.append(line)
        if len(pending) >= MAX_BATCH:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): nothing to batch with
                self.flush()
                return
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Publish what is batched now."""
        self._scheduled = False
        lines, self._pending = self._pending, []
        if lines:
            self._send(lines)

    def _release(self) -> None:
        """Hand what was held during a broker outage to the transport, oldest first."""
        assert self._outage is not None
        lines = [self._outage, *self._held]
        self._outage = None
        self._held.clear()
        step = MAX_BATCH if self.batch else 1
        for start in range(0, len(lines), step):
            self._send(lines[start : start + step])

    def _send(self, lines: list[str]) -> None:
        try:
            self.transport.publish_nowait(self.topic, "\n".join(lines), qos=0)
        except RaftoralError as error:
            self.failed += len(lines)
            log.debug("node %d: %d events not published: %s", self.node.id, len(lines), error)
            return
        except Exception:  # a transport bug must not stop the node
            self.failed += len(lines)
            log.exception("node %d: publishing events failed", self.node.id)
            return
        self.published += len(lines)
        self.payloads += 1

    def close(self) -> None:
        """Publish what is batched and stop listening to the node."""
        if self._closed:
            return
        self.flush()
        if self._outage is not None:  # stopped in an outage: the transport may still get them
            self._release()
        self._closed = True
        if self in self.node.listeners:
            self.node.listeners.remove(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("on" if self.enabled else "off")
        return (
            f"<EventPublisher node {self.node.id} {state}: {self.published} published, "
            f"{self.skipped} sampled out, {self.failed} failed>"
        )
