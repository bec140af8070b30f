"""The seam between the async node layer and whatever moves its messages.

The node calls `send` with the messages of a `Ready` and gets the messages of its peers through
`on_message`. Implementations (memory, MQTT) share the bookkeeping here, so fault injection,
counters and drop events mean the same thing whichever one runs.

Besides Raft, every transport carries topic traffic for the node layer (DESIGN section 5):
`publish`/`publish_nowait`/`subscribe`/`unsubscribe` on topics below `raftoral/{cluster}/`
(`node/{id}/rpc`, `node/{id}/control`, `events/{id}`, `presence/{id}`), with MQTT semantics:
`+`/`#` filters, retained messages (an empty retained payload clears one), and a retained
presence document per node whose last will says `alive: false` when the node dies without
`close` (`abort`, a crash). The fault filter acts on Raft traffic only, never on topics.

With a cluster `secret`, every payload the transport publishes (Raft batches, topic traffic,
presence and its last will) is signed, and every payload it receives is checked before anything
parses it (see `signing`): unsigned, forged, moved and replayed payloads are dropped, counted
in `stats.dropped` by reason and reported through `on_drop`; they never reach `on_message` or
a subscription callback. Empty payloads (how MQTT clears a retained message) carry nothing and
pass as they are on topics. Without a secret nothing is signed or checked, but signed payloads
from others are refused (`no_secret`) rather than parsed as garbage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from raftoral_lab.core.messages import Message
from raftoral_lab.errors import ConfigError, MalformedMessage, TransportError
from raftoral_lab.transport.codec import DEFAULT_MAX_PAYLOAD, decode_batch
from raftoral_lab.transport.faults import FaultFilter
from raftoral_lab.transport.signing import SIGNED_OVERHEAD, Refused, Signer, looks_signed
from raftoral_lab.transport.stats import DropReason, TransportStats
from raftoral_lab.transport.topics import (
    DEFAULT_CLUSTER,
    Topics,
    topic_matches,
    validate_node_id,
    validate_topic_filter,
)

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], None]
"""Receives each inbound message; called from the event loop, must not block."""
DropHandler = Callable[[str, int, int, str], None]
"""`on_drop(kind, src, dst, reason)`: a message was dropped; the node turns it into an event."""
MalformedHandler = Callable[[str], None]
"""`on_malformed(reason)`: an inbound payload was refused; the reason says what was wrong."""
ConnectionHandler = Callable[[bool, str | None], None]
"""`on_connection(connected, reason)`: the link to the network was lost (False, with why) or
is back (True, reason None). Called only on changes after the first connection, never for a
`close` or `abort` on purpose; the node turns it into `broker_disconnected`/`_reconnected`."""
SubscriptionHandler = Callable[[str, bytes], None]
"""`callback(topic_suffix, payload)` for a `subscribe`d topic; the suffix is below the cluster
root (e.g. `events/3`). Called from the event loop, never inside `publish`; must not block."""

PRESENCE_VERSION = 1
"""Schema version of the presence document on `presence/{id}`."""

REFUSALS_REPORTED_PER_SECOND = 10
"""Refused payloads (bad signature, replays, ...) reported through `on_drop` per reason and
second; the rest are counted only, so a flood of forgeries does not become a flood of events."""


class Transport(ABC):
    """Moves Raft messages for one node. Use as `async with transport: ...`.

    `send` never blocks and never raises for network trouble: messages that cannot go out are
    dropped and counted (Raft retransmits). Only misuse raises (sending before `start`,
    or a message whose `src` is not this node).

    Topic traffic (`publish`, `subscribe`, ...) is described in the module docstring.
    """

    def __init__(
        self,
        node_id: int,
        *,
        faults: FaultFilter | None = None,
        cluster: str = DEFAULT_CLUSTER,
        client_id: str | None = None,
        presence_info: Mapping[str, Any] | None = None,
        presence: bool = True,
        secret: str | bytes | None = None,
    ) -> None:
        self.node_id: int = validate_node_id(node_id)
        self._signer: Signer | None = Signer(secret, self.node_id) if secret is not None else None
        self._refusal_second = 0
        self._refusals_reported: dict[str, int] = {}
        self.presence: bool = presence
        """Announce this endpoint on `presence/{id}` (a node); clients such as
        `raftoral-lab status` pass False and leave no retained trace or last will."""
        self.topics: Topics = Topics(cluster)
        self.cluster: str = cluster
        self.client_id: str = client_id or f"raftoral-{cluster}-{node_id}-{secrets.token_hex(4)}"
        self.faults: FaultFilter = faults if faults is not None else FaultFilter()
        self.stats: TransportStats = TransportStats()
        self.on_message: MessageHandler | None = None
        self.on_drop: DropHandler | None = None
        self.on_malformed: MalformedHandler | None = None
        self.on_connection: ConnectionHandler | None = None
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delayed: dict[asyncio.TimerHandle, Message] = {}
        """Messages held back by the fault filter's delay, by their timer."""
        self._presence_info: dict[str, Any] = dict(presence_info or {})
        self._subs: dict[str, tuple[int, list[SubscriptionHandler]]] = {}
        """Full topic filter -> (highest qos asked, callbacks in subscription order)."""

    # --- the interface ---------------------------------------------------------------------

    @abstractmethod
    async def start(self) -> None:
        """Attach to the network; after this `send` works and messages arrive."""

    @abstractmethod
    async def close(self) -> None:
        """Detach cleanly: queued messages are flushed where possible (the rest dropped as
        `closed`), and presence says goodbye (`alive: false`, reason `closed`), no last will."""

    @abstractmethod
    async def abort(self) -> None:
        """Die like a crashed process: queued messages are lost (dropped as `closed`), no
        goodbye; the last will (`alive: false`, reason `connection lost`) replaces presence."""

    def send(self, messages: Iterable[Message]) -> None:
        """Queue messages for their destinations; batching and sending happen in the background."""
        stats = self.stats
        for msg, delay in self._admit(messages):
            stats.sent_by_group[msg.group] += 1
            entries = getattr(msg, "entries", None)
            if entries:
                stats.entries_by_group[msg.group] += len(entries)
            if delay > 0.0:
                self._send_later(msg, delay)
            else:
                self._enqueue(msg)

    @abstractmethod
    def _enqueue(self, msg: Message) -> None:
        """Queue one admitted message for its destination (each transport batches its way)."""

    def _send_later(self, msg: Message, delay: float) -> None:
        """Hold a message for the fault filter's added delay; `_delayed` lets close drop it."""
        assert self._loop is not None
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._delayed.pop(handle, None)
            self._enqueue(msg)

        handle = self._loop.call_later(delay, fire)
        self._delayed[handle] = msg

    @abstractmethod
    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was sent is on its way (delayed messages excepted); False on timeout."""

    # --- topics for the node layer (rpc, control, events, presence) -----------------------

    @abstractmethod
    async def publish(
        self,
        topic_suffix: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish to `raftoral/{cluster}/{topic_suffix}` and wait until the network has it.

        `retain` keeps the message for later subscribers of the topic; an empty retained
        payload clears the retained message (current subscribers get the empty payload).
        ConfigError for a wildcard topic or a bad qos; TransportError when not running or
        (MQTT) when the broker cannot be reached within `timeout`."""

    @abstractmethod
    def publish_nowait(
        self, topic_suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish without waiting (for event streams); never blocks, never runs callbacks.
        Errors as `publish`, except that network trouble drops and counts instead of raising."""

    @abstractmethod
    async def subscribe(
        self, topic_suffix: str, callback: SubscriptionHandler, qos: int = 1
    ) -> None:
        """Call `callback(suffix, payload)` for messages on a topic or filter below the cluster
        root (`node/3/rpc`, `events/+`, `node/#`). Retained messages of matching topics are
        delivered after subscribing. Allowed before `start` (takes effect on start)."""

    @abstractmethod
    async def unsubscribe(
        self, topic_suffix: str, callback: SubscriptionHandler | None = None
    ) -> None:
        """Remove one callback, or (callback None) every callback of the filter."""

    @property
    def running(self) -> bool:
        return self._started and not self._closed

    @property
    def signed(self) -> bool:
        """Whether this transport has a cluster secret (signs and checks every payload)."""
        return self._signer is not None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else ("closed" if self._closed else "new")
        return f"{type(self).__name__}(node_id={self.node_id}, {state})"

    # --- shared bookkeeping for implementations --------------------------------------------

    def _admit(self, messages: Iterable[Message]) -> Iterator[tuple[Message, float]]:
        """Check ownership and apply the fault filter; yields (message, delay) to send."""
        if not self._started:
            raise TransportError(f"transport of node {self.node_id} is not started; await start()")
        if self._closed:
            for msg in messages:
                self._drop(msg, DropReason.CLOSED)
            return
        faults = self.faults
        node_id = self.node_id
        for msg in messages:
            if msg.src != node_id:
                raise TransportError(
                    f"node {node_id} cannot send a {msg.kind} whose src is node {msg.src}"
                )
            if not faults.active:
                yield msg, 0.0
                continue
            verdict = faults.decide(msg.dst)
            if verdict.deliver:
                yield msg, verdict.delay
            else:
                self._drop(msg, verdict.reason or "fault")

    def _connection_changed(self, connected: bool, reason: str | None = None) -> None:
        """Tell `on_connection` the link went down or came back; a failing handler is logged."""
        if self.on_connection is not None:
            try:
                self.on_connection(connected, reason)
            except Exception:
                log.exception("on_connection handler of node %d failed", self.node_id)

    def _drop(self, msg: Message, reason: str) -> None:
        self.stats.dropped[reason] += 1
        if self.on_drop is not None:
            try:
                self.on_drop(msg.kind, msg.src, msg.dst, str(reason))
            except Exception:
                log.exception("on_drop handler of node %d failed", self.node_id)

    # --- signing ---------------------------------------------------------------------------

    def _payload_limit(self) -> int:
        """The largest payload accepted (before the envelope); implementations override."""
        return DEFAULT_MAX_PAYLOAD

    def _raft_budget(self, max_bytes: int) -> int:
        """Bytes a Raft batch may take so that its envelope stays within `max_bytes`."""
        return max_bytes - SIGNED_OVERHEAD if self._signer is not None else max_bytes

    def _seal(self, topic: str, payload: bytes, *, json_body: bool | None = None) -> bytes:
        """`payload` as it goes on the wire to the full `topic`: signed with a secret, as it is
        without one. Empty payloads (clearing a retained message) are never wrapped."""
        signer = self._signer
        if signer is None or not payload:
            return payload
        return signer.seal(topic, payload, json_body=json_body)

    def _open(self, topic: str, payload: bytes, *, max_bytes: int | None = None) -> bytes | None:
        """The payload to act on, or None when it was refused (then counted and reported).
        With a secret, a payload over twice `max_bytes` (room for a body carried as escaped
        text or base64) is refused as malformed before any MAC is computed, so a flood of huge
        forgeries costs little; the body itself is held to `max_bytes` by its reader."""
        signer = self._signer
        if signer is None:
            if looks_signed(payload):
                self._refuse(
                    topic,
                    Refused(
                        DropReason.NO_SECRET,
                        "signed payload, but this transport has no cluster secret to check it "
                        "(give it the cluster's secret)",
                    ),
                )
                return None
            return payload
        if max_bytes is not None and len(payload) > 2 * max_bytes + SIGNED_OVERHEAD:
            self._malformed(
                f"payload of {len(payload)} bytes is over the limit of {max_bytes} bytes"
            )
            return None
        suffix = self.topics.suffix(topic) or ""
        try:
            _, body = signer.open(topic, payload, check_replay=not suffix.startswith("presence/"))
        except Refused as refused:
            self._refuse(topic, refused)
            return None
        return body

    def _refuse(self, topic: str, refused: Refused) -> None:
        """Count a refused payload and report it (rate-limited); the detail names no secret."""
        reason = str(refused.reason)
        self.stats.dropped[reason] += 1
        self.stats.last_refused = f"{reason} on {topic}: {refused.detail}"
        second = int(time.monotonic())
        if second != self._refusal_second:
            self._refusal_second = second
            self._refusals_reported.clear()
        reported = self._refusals_reported.get(reason, 0)
        if reported >= REFUSALS_REPORTED_PER_SECOND:
            return
        self._refusals_reported[reason] = reported + 1
        level = logging.WARNING if self.stats.dropped[reason] == 1 else logging.DEBUG
        log.log(level, "node %d refused a payload: %s", self.node_id, self.stats.last_refused)
        if self.on_drop is not None:
            src = refused.src if refused.src is not None else -1
            try:
                self.on_drop(_channel(self.topics.suffix(topic)), src, self.node_id, reason)
            except Exception:
                log.exception("on_drop handler of node %d failed", self.node_id)

    def _receive_raft(self, payload: bytes, max_bytes: int) -> None:
        """A payload that arrived on this node's raft topic: check, decode, deliver."""
        if not payload and self._signer is not None:
            self._refuse(
                self.topics.raft(self.node_id),
                Refused(DropReason.UNSIGNED, "empty payload on the raft topic"),
            )
            return
        body = self._open(self.topics.raft(self.node_id), payload, max_bytes=max_bytes)
        if body is None:
            return
        try:
            batch = decode_batch(body, expect_dst=self.node_id, max_bytes=max_bytes)
        except MalformedMessage as exc:
            self._malformed(str(exc))
            return
        self._deliver(batch)

    def _malformed(self, reason: str) -> None:
        self.stats.malformed += 1
        self.stats.last_malformed = reason
        log.debug("node %d dropped a malformed payload: %s", self.node_id, reason)
        if self.on_malformed is not None:
            try:
                self.on_malformed(reason)
            except Exception:
                log.exception("on_malformed handler of node %d failed", self.node_id)

    # --- shared topic bookkeeping ----------------------------------------------------------

    def _publish_topic(self, topic_suffix: str, qos: int) -> str:
        """The full topic to publish to; ConfigError for a wildcard or a bad qos,
        TransportError when the transport is not running."""
        if "+" in topic_suffix or "#" in topic_suffix:
            raise ConfigError(f"cannot publish to a wildcard topic: {topic_suffix!r}")
        topic = self.topics.topic(topic_suffix)
        self._check_qos(qos)
        if not self.running:
            raise TransportError(f"transport of node {self.node_id} is not running")
        return topic

    def _subscription_filter(self, topic_suffix: str) -> str:
        return validate_topic_filter(self.topics.topic(topic_suffix))

    @staticmethod
    def _check_qos(qos: int) -> int:
        if qos not in (0, 1, 2) or type(qos) is not int:
            raise ConfigError(f"qos must be 0, 1 or 2, got {qos!r}")
        return qos

    @staticmethod
    def _payload_bytes(payload: bytes | str) -> bytes:
        return payload.encode() if isinstance(payload, str) else bytes(payload)

    def _add_subscription(self, topic_filter: str, qos: int, callback: SubscriptionHandler) -> bool:
        """Record a callback; True if the filter is new for this transport."""
        entry = self._subs.get(topic_filter)
        if entry is None:
            self._subs[topic_filter] = (qos, [callback])
            return True
        self._subs[topic_filter] = (max(qos, entry[0]), [*entry[1], callback])
        return False

    def _remove_subscription(self, topic_filter: str, callback: SubscriptionHandler | None) -> bool:
        """Forget one callback (or all); True if the filter has no callback left."""
        entry = self._subs.get(topic_filter)
        if entry is None:
            return False
        rest = [] if callback is None else [cb for cb in entry[1] if cb is not callback]
        if rest:
            self._subs[topic_filter] = (entry[0], rest)
            return False
        del self._subs[topic_filter]
        return True

    def _dispatch(self, topic: str, payload: bytes) -> None:
        """Hand an inbound topic message to every callback whose filter matches (a callback
        subscribed under two matching filters runs twice, as with MQTT). A raising callback is
        logged and counted; the others still run."""
        suffix = self.topics.suffix(topic)
        if suffix is None:
            return
        if payload:
            opened = self._open(topic, payload, max_bytes=self._payload_limit())
            if opened is None:
                return
            payload = opened
        self.stats.publishes_received += 1
        for topic_filter, (_, callbacks) in list(self._subs.items()):
            if topic_matches(topic_filter, topic):
                for cb in callbacks:
                    try:
                        cb(suffix, payload)
                    except Exception:
                        self.stats.callback_errors += 1
                        log.exception(
                            "node %d: subscription callback for %s failed", self.node_id, topic
                        )

    def _presence_payload(self, *, alive: bool, reason: str | None = None) -> bytes:
        body: dict[str, Any] = {
            **self._presence_info,
            "v": PRESENCE_VERSION,
            "node": self.node_id,
            "cluster": self.cluster,
            "alive": alive,
            "client_id": self.client_id,
        }
        if reason is not None:
            body["reason"] = reason
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def _deliver(self, messages: Iterable[Message]) -> None:
        """Hand inbound messages to the node; a failing handler is logged, never fatal."""
        self.stats.batches_received += 1
        faults = self.faults
        for msg in messages:
            if faults.is_blocked(msg.src):
                self._drop(msg, DropReason.PARTITION)
                continue
            handler = self.on_message
            if handler is None:
                self._drop(msg, DropReason.NO_HANDLER)
                continue
            self.stats.received += 1
            try:
                handler(msg)
            except Exception:
                self.stats.handler_errors += 1
                log.exception("on_message handler of node %d failed on %s", self.node_id, msg.kind)


def _channel(suffix: str | None) -> str:
    """What a refused payload was, for the drop event: `raft`, `rpc`, `events`, `presence`..."""
    if not suffix:
        return "unknown"
    levels = suffix.split("/")
    return levels[-1] if levels[0] == "node" else levels[0]


def running_loop() -> asyncio.AbstractEventLoop:
    """The running loop, with an error that says why one is needed."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise TransportError(
            "transports run inside an asyncio event loop; call this from async code"
        ) from None
