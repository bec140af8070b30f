"""Many nodes in one event loop, no broker: the transport of notebooks, the Lab and tests.

Delivery is asynchronous (the next loop iteration), never inside `send`, so a node that sends
from its message handler is not re-entered. With `codec=True` every batch goes through the wire
codec, so a test sees exactly what MQTT would carry.

The network is also a small in-process MQTT broker for the topic traffic of the node layer
(`publish`/`subscribe`: rpc, control, events, presence): it keeps each transport's
subscriptions and the retained message of each topic, and delivers to subscribers on the event
loop, never inside `publish`. Raft batches do not go through it (they stay a direct hand-over),
so subscribers never see `node/{id}/raft` traffic sent with `send`.

With a cluster secret (`network.transport(id, secret=...)`) every payload is signed as over
MQTT, and Raft batches from or to a transport with a secret always go through the codec and
the signature check, even on a network made with `codec=False`: a node with another secret (or
none) cannot slip messages past the check by direct hand-over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from raftoral_lab.core.messages import Message
from raftoral_lab.errors import ConfigError, TransportError
from raftoral_lab.transport.base import SubscriptionHandler, Transport, running_loop
from raftoral_lab.transport.codec import DEFAULT_MAX_PAYLOAD, encode_batches
from raftoral_lab.transport.faults import FaultFilter
from raftoral_lab.transport.stats import DropReason
from raftoral_lab.transport.topics import DEFAULT_CLUSTER, Topics, parse_topic, topic_matches


class MemoryNetwork:
    """The switchboard: routes batches between the `MemoryTransport`s attached to it, and
    brokers their topic traffic (subscriptions, retained messages, last wills).

    `partition`, `isolate` and `heal` set every attached node's fault filter, mirroring the
    simulator's API; the filters stay the single place where faults live. Like MQTT's, they
    act on Raft traffic only: topics (rpc, control, events, presence) still flow.
    """

    def __init__(
        self,
        *,
        codec: bool = False,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        cluster: str = DEFAULT_CLUSTER,
    ) -> None:
        self.codec = codec
        self.max_payload_bytes = max_payload_bytes
        self.topics = Topics(cluster)
        self.cluster = cluster
        self._nodes: dict[int, MemoryTransport] = {}
        # the broker: full topic filter -> subscribed transports (dicts as ordered sets, so
        # delivery order is the order of subscription and runs are reproducible)
        self._exact_subs: dict[str, dict[MemoryTransport, None]] = {}
        self._wild_subs: dict[str, dict[MemoryTransport, None]] = {}
        self._retained: dict[str, bytes] = {}
        self.wiretap: Callable[[str, bytes], None] | None = None
        """Called with (full topic, payload) of every payload that crosses the network, as a
        raw MQTT client subscribed to `raftoral/#` would see it (Raft batches only when they
        are encoded: with `codec=True` or a secret). Must not block."""

    def inject(self, topic_suffix: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish raw bytes below the cluster root as a plain MQTT client would: unsigned,
        from no transport (for tests and tools; a raft topic reaches the node's Raft)."""
        if "+" in topic_suffix or "#" in topic_suffix:
            raise ConfigError(f"cannot publish to a wildcard topic: {topic_suffix!r}")
        self._publish(self.topics.topic(topic_suffix), bytes(payload), retain)

    def transport(
        self,
        node_id: int,
        *,
        faults: FaultFilter | None = None,
        presence_info: Mapping[str, Any] | None = None,
        presence: bool = True,
        secret: str | bytes | None = None,
    ) -> MemoryTransport:
        """A new transport for `node_id` on this network (attached when started); with a
        cluster `secret` it signs what it sends and refuses what is not signed with it."""
        return MemoryTransport(
            node_id,
            self,
            faults=faults,
            presence_info=presence_info,
            presence=presence,
            secret=secret,
        )

    def retained(self, topic_suffix: str) -> bytes | None:
        """The retained payload of a topic below the cluster root, or None (for tests and
        tools; subscribers get retained messages through `subscribe`)."""
        return self._retained.get(self.topics.topic(topic_suffix))

    @property
    def nodes(self) -> frozenset[int]:
        """Ids of the transports attached now."""
        return frozenset(self._nodes)

    def partition(self, *groups: Iterable[int]) -> None:
        """Nodes talk only within their group; nodes in no group keep talking to everyone."""
        sets = [frozenset(g) for g in groups]
        everyone = frozenset().union(*sets)
        for node_id, t in self._nodes.items():
            mine = next((s for s in sets if node_id in s), None)
            if mine is not None:
                t.faults.blocked = everyone - mine
            else:
                t.faults.heal()

    def isolate(self, node_id: int) -> None:
        """Cut one node off from all others (both directions)."""
        others = self.nodes - {node_id}
        if node_id in self._nodes:
            self._nodes[node_id].faults.blocked = others
        for other in others:
            self._nodes[other].faults.block(node_id)

    def heal(self) -> None:
        for t in self._nodes.values():
            t.faults.heal()

    def _attach(self, t: MemoryTransport) -> None:
        current = self._nodes.get(t.node_id)
        if current is not None and current is not t:
            raise TransportError(f"node {t.node_id} is already attached to this memory network")
        self._nodes[t.node_id] = t

    def _detach(self, t: MemoryTransport) -> None:
        if self._nodes.get(t.node_id) is t:
            del self._nodes[t.node_id]

    # --- the broker ------------------------------------------------------------------------

    def _subscribe(self, t: MemoryTransport, topic_filter: str) -> None:
        """Register `t` for a filter and send it the retained messages that match (as a
        broker does on every SUBSCRIBE, also a repeated one)."""
        table = self._wild_subs if _is_wild(topic_filter) else self._exact_subs
        table.setdefault(topic_filter, {})[t] = None
        for topic, payload in list(self._retained.items()):
            if topic_matches(topic_filter, topic):
                t._schedule_dispatch(topic, payload)

    def _unsubscribe(self, t: MemoryTransport, topic_filter: str) -> None:
        table = self._wild_subs if _is_wild(topic_filter) else self._exact_subs
        subscribers = table.get(topic_filter)
        if subscribers is not None:
            subscribers.pop(t, None)
            if not subscribers:
                del table[topic_filter]

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Store or clear the retained message, then schedule one delivery per subscribed
        transport (however many of its filters match, like Mosquitto)."""
        if self.wiretap is not None:
            self.wiretap(topic, payload)
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
        targets: dict[MemoryTransport, None] = dict(self._exact_subs.get(topic, {}))
        for topic_filter, subscribers in self._wild_subs.items():
            if topic_matches(topic_filter, topic):
                targets.update(subscribers)
        for t in targets:
            t._schedule_dispatch(topic, payload)
        if topic.endswith("/raft"):  # a raw payload on a raft topic reaches the node, as MQTT
            parsed = parse_topic(topic)
            if parsed is not None and parsed.kind == "raft" and parsed.cluster == self.cluster:
                target = self._nodes.get(parsed.node)
                if target is not None:
                    target._schedule_raw_raft(payload)

    def _route(self, sender: MemoryTransport, dst: int, batch: list[Message]) -> None:
        target = self._nodes.get(dst)
        if target is None:
            for msg in batch:
                sender._drop(msg, DropReason.UNREACHABLE)
            return
        if not self.codec and not sender.signed and not target.signed:
            sender.stats.sent += len(batch)
            sender.stats.batches_sent += 1
            target._deliver(batch)
            return
        budget = sender._raft_budget(self.max_payload_bytes)
        payloads, too_large = encode_batches(sender.node_id, batch, budget)
        for msg in too_large:
            sender._drop(msg, DropReason.TOO_LARGE)
        topic = self.topics.raft(dst)
        wiretap = self.wiretap
        for payload, chunk in payloads:
            sender.stats.sent += len(chunk)
            sender.stats.batches_sent += 1
            wire = sender._seal(topic, payload, json_body=True)
            if wiretap is not None:
                wiretap(topic, wire)
            target.receive_payload(wire)


def _is_wild(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class MemoryTransport(Transport):
    """One node's end of a `MemoryNetwork`. Batches per destination within a loop iteration.

    Topic traffic behaves as `MqttTransport`'s: on start the node's retained presence says
    `alive: true`; `close` replaces it with a goodbye (`alive: false`, reason `closed`),
    `abort` with the last will (`alive: false`, reason `connection lost`).
    """

    def __init__(
        self,
        node_id: int,
        network: MemoryNetwork,
        *,
        faults: FaultFilter | None = None,
        presence_info: Mapping[str, Any] | None = None,
        presence: bool = True,
        secret: str | bytes | None = None,
    ) -> None:
        super().__init__(
            node_id,
            faults=faults,
            cluster=network.cluster,
            client_id=f"raftoral-{network.cluster}-{node_id}-memory",
            presence_info=presence_info,
            presence=presence,
            secret=secret,
        )
        self.network = network
        self._raft_topic = self.topics.raft(node_id)
        self._pending: dict[int, list[Message]] = {}
        self._flush_handle: asyncio.Handle | None = None

    async def start(self) -> None:
        if self._closed:
            raise TransportError(f"transport of node {self.node_id} is closed; create a new one")
        if self._started:
            return
        self._loop = running_loop()
        self.network._attach(self)
        self._started = True
        # as MqttTransport's session start: subscribe first, then announce presence
        for topic_filter in self._subs:
            self.network._subscribe(self, topic_filter)
        if self.presence:
            topic = self.topics.presence(self.node_id)
            self.network._publish(
                topic, self._seal(topic, self._presence_payload(alive=True)), retain=True
            )

    async def close(self) -> None:
        """Deliver what was sent, say goodbye on presence (no last will), detach."""
        if self._closed:
            return
        if not self._started:
            self._closed = True
            return
        self._flush()  # what was sent before close still goes out
        self._shutdown(self._presence_payload(alive=False, reason="closed"))

    async def abort(self) -> None:
        """Die like a crashed process: pending Raft messages are lost (dropped as `closed`),
        no goodbye; the network publishes the last will (`alive: false`) in its place."""
        if self._closed:
            return
        if not self._started:
            self._closed = True
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, {}
        for batch in pending.values():
            for msg in batch:
                self._drop(msg, DropReason.CLOSED)
        self._shutdown(self._presence_payload(alive=False, reason="connection lost"))

    def _shutdown(self, last_presence: bytes) -> None:
        self._closed = True
        delayed, self._delayed = self._delayed, {}
        for handle, msg in delayed.items():
            handle.cancel()
            self._drop(msg, DropReason.CLOSED)
        for topic_filter in self._subs:
            self.network._unsubscribe(self, topic_filter)
        self.network._detach(self)
        if self.presence:
            topic = self.topics.presence(self.node_id)
            self.network._publish(topic, self._seal(topic, last_presence), retain=True)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Deliver the pending batches now (messages held back by a fault delay stay held)."""
        if self._started and not self._closed:
            self._flush()
        return True

    def receive_payload(self, payload: bytes) -> None:
        """Check (with a secret), decode and deliver a wire payload that arrived on this
        node's raft topic (used with codec=True or a secret, and by tests that inject bytes)."""
        self._receive_raft(payload, self._payload_limit())

    def _payload_limit(self) -> int:
        return self.network.max_payload_bytes

    # --- topics for the node layer ---------------------------------------------------------

    async def publish(
        self,
        topic_suffix: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Hand the message to the network; subscribers get it on the event loop (after this
        returns). Nothing is ever lost, whatever the qos; `timeout` is unused."""
        self.publish_nowait(topic_suffix, payload, qos, retain)

    def publish_nowait(
        self, topic_suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        topic = self._publish_topic(topic_suffix, qos)
        self.network._publish(topic, self._seal(topic, self._payload_bytes(payload)), retain)
        self.stats.published += 1

    async def subscribe(
        self, topic_suffix: str, callback: SubscriptionHandler, qos: int = 1
    ) -> None:
        topic_filter = self._subscription_filter(topic_suffix)
        self._check_qos(qos)
        self._add_subscription(topic_filter, qos, callback)
        if self.running:
            self.network._subscribe(self, topic_filter)

    async def unsubscribe(
        self, topic_suffix: str, callback: SubscriptionHandler | None = None
    ) -> None:
        topic_filter = self._subscription_filter(topic_suffix)
        if self._remove_subscription(topic_filter, callback) and self.running:
            self.network._unsubscribe(self, topic_filter)

    # --- internals -------------------------------------------------------------------------

    def _schedule_dispatch(self, topic: str, payload: bytes) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._dispatch_if_running, topic, payload)

    def _dispatch_if_running(self, topic: str, payload: bytes) -> None:
        # a transport closed meanwhile gets nothing, as after a DISCONNECT; the own raft topic
        # is Raft's alone (MqttTransport's reader never hands it to subscriptions either)
        if self.running and topic != self._raft_topic:
            self._dispatch(topic, payload)

    def _schedule_raw_raft(self, payload: bytes) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._raw_raft_if_running, payload)

    def _raw_raft_if_running(self, payload: bytes) -> None:
        if self.running:
            self.receive_payload(payload)

    def _enqueue(self, msg: Message) -> None:
        if self._closed:
            self._drop(msg, DropReason.CLOSED)
            return
        batch = self._pending.get(msg.dst)
        if batch is None:
            self._pending[msg.dst] = [msg]
        else:
            batch.append(msg)
        if self._flush_handle is None:
            assert self._loop is not None
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, {}
        for dst, batch in pending.items():
            self.network._route(self, dst, batch)
