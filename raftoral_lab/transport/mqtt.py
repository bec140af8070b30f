"""Raft over an MQTT broker (the embedded one, Mosquitto, or any MQTT 3.1.1 broker).

The only module of the package that imports aiomqtt. One connection per node:

- Raft batches go QoS 0 to `node/{dst}/raft` (Raft retransmits, so losing one is fine); the
  node subscribes to its own raft topic.
- `presence/{id}` holds a retained JSON `{"alive": true, ...}`; the last will replaces it with
  `"alive": false` when the connection dies without a goodbye, and `close` says goodbye.
- A supervisor task keeps the connection: it reconnects with capped exponential backoff and
  subscribes again; `on_connection` hears when the link is lost and when it is back. Per
  connection, one writer task drains the outbound queue and puts all messages for one
  destination into one publish: aiomqtt manages ~17k awaited publishes/s per client
  (DESIGN 8), so batching is what makes it fast.
- While the broker is away the queue is bounded: the oldest Raft message makes room and is
  counted as dropped (`queue_full`).
- With a cluster `secret`, every payload is signed when it goes out (in the writer, so a
  message queued during an outage gets a fresh counter) and checked when it comes in (see
  `signing`). The last will is signed when the connection is made.
- MQTT credentials (`username`/`password`, or in the URL) and TLS (`tls=True`, an
  `ssl.SSLContext`, or `tls_ca_file` for a broker with a private CA) are passed to the broker;
  a broker that refuses the credentials or the certificate fails `start` at once with a
  TransportError saying so, instead of retrying until `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from raftoral_lab.core.messages import Message
from raftoral_lab.errors import ConfigError, TransportError
from raftoral_lab.transport.base import (
    PRESENCE_VERSION,
    SubscriptionHandler,
    Transport,
    running_loop,
)
from raftoral_lab.transport.codec import DEFAULT_MAX_PAYLOAD, encode_batches
from raftoral_lab.transport.faults import FaultFilter
from raftoral_lab.transport.stats import DropReason
from raftoral_lab.transport.topics import DEFAULT_CLUSTER

log = logging.getLogger(__name__)

DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"

__all__ = [
    "DEFAULT_BROKER_URL",
    "PRESENCE_VERSION",
    "BrokerAddress",
    "MqttTransport",
    "SubscriptionHandler",
    "parse_broker_url",
]


# --- broker URLs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The URL without credentials (safe to log and show)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://host[:port]` (default 1883) or `mqtts://host[:port]` (TLS, default 8883).

    Credentials may be given as `mqtt://user:password@host`; anything else is a ConfigError.
    """
    example = "e.g. mqtt://127.0.0.1:1883 or mqtts://broker.example:8883"
    if not isinstance(url, str) or not url:
        raise ConfigError(f"broker URL must be a non-empty string ({example}), got {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"broker URL {url!r} is not valid ({exc}); {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError(
            f"broker URL {url!r} must start with mqtt:// or mqtts://"
            + (f", not {scheme}://" if scheme else "")
            + f"; {example}"
        )
    if not parts.hostname:
        raise ConfigError(f"broker URL {url!r} has no host; {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"broker URL {url!r} must not have a path, query or fragment; {example}")
    if port == 0:
        raise ConfigError(f"broker URL {url!r}: port must be in 1..65535")
    tls = scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{what} must be a positive number, got {value!r}")
    return float(value)


_AUTH_CODES = frozenset({4, 5, 134, 135})
"""CONNACK codes for refused credentials: 3.1.1 `bad user name or password` and `not
authorised`, and the 5.0 codes paho maps them to."""


def _refusal(exc: BaseException, username: str | None) -> str | None:
    """Why the broker will never accept this client as configured, or None for a transient
    failure (broker away, network trouble) worth retrying."""
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            who = f"user name {username!r}" if username else "no user name"
            return (
                f"the broker refused the credentials ({exc}; {who} given): check the MQTT "
                "user name and password (--username, --password or $RAFTORAL_MQTT_PASSWORD)"
            )
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the broker's TLS certificate was not accepted ({cause.verify_message}): give "
                "the CA that signed it (tls_ca_file) or check the host name in the URL"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's "disconnected" future as seen.

    When a session ends through the writer (a failed publish) rather than the reader, nobody
    looks at that future's exception and asyncio logs "Future exception was never retrieved"
    when it is collected. We already recorded why the session ended.
    """
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()


# --- the transport ---------------------------------------------------------------------------


class MqttTransport(Transport):
    """One node's connection to an MQTT broker, carrying its Raft traffic and more.

    Besides Raft, `publish`/`publish_nowait` and `subscribe` serve the node layer's rpc,
    control and event topics (suffixes below `raftoral/{cluster}/`, see `topics`).
    """

    def __init__(
        self,
        node_id: int,
        cluster: str = DEFAULT_CLUSTER,
        broker_url: str = DEFAULT_BROKER_URL,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool | ssl.SSLContext = False,
        tls_ca_file: str | os.PathLike[str] | None = None,
        secret: str | bytes | None = None,
        faults: FaultFilter | None = None,
        max_queued: int = 10_000,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        keepalive: int = 30,
        connect_timeout: float = 10.0,
        operation_timeout: float = 10.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        client_id: str | None = None,
        presence_info: Mapping[str, Any] | None = None,
        presence: bool = True,
    ) -> None:
        super().__init__(
            node_id,
            faults=faults,
            cluster=cluster,
            client_id=client_id,
            presence_info=presence_info,
            presence=presence,
            secret=secret,
        )
        self.address = parse_broker_url(broker_url)
        if type(max_queued) is not int or max_queued < 1:
            raise ConfigError(f"max_queued must be a positive integer, got {max_queued!r}")
        if type(keepalive) is not int or keepalive < 1:
            raise ConfigError(f"keepalive must be a positive number of seconds, got {keepalive!r}")
        if type(max_payload_bytes) is not int or max_payload_bytes < 1024:
            raise ConfigError(
                f"max_payload_bytes must be an integer >= 1024, got {max_payload_bytes!r}"
            )
        self.connect_timeout = _positive(connect_timeout, "connect_timeout")
        self.operation_timeout = _positive(operation_timeout, "operation_timeout")
        self.backoff_initial = _positive(backoff_initial, "backoff_initial")
        self.backoff_max = max(_positive(backoff_max, "backoff_max"), self.backoff_initial)
        self.max_queued = max_queued
        self.max_payload_bytes = max_payload_bytes
        self.keepalive = keepalive
        self._username = username if username is not None else self.address.username
        self._password = password if password is not None else self.address.password
        if isinstance(tls, ssl.SSLContext):
            if tls_ca_file is not None:
                raise ConfigError("give either an ssl.SSLContext as tls or tls_ca_file, not both")
            self._tls_context: ssl.SSLContext | None = tls
        elif tls or self.address.tls or tls_ca_file is not None:
            try:
                self._tls_context = ssl.create_default_context(
                    cafile=os.fspath(tls_ca_file) if tls_ca_file is not None else None
                )
            except (OSError, ValueError, ssl.SSLError) as exc:  # ValueError: a NUL in the path
                raise ConfigError(f"cannot use the TLS CA file {tls_ca_file!r}: {exc}") from None
        else:
            self._tls_context = None
        self._raft_topic = self.topics.raft(node_id)
        # The MQTT client's own log, quiet while we close or abort on purpose (a crash we stage
        # is not an error worth a line in a lesson's output).
        self._client_log = logging.getLogger(f"{__name__}.client.{node_id}")
        self._client_log.addFilter(lambda _record: not self._closing)

        self.last_error: str | None = None
        """Why the last connection attempt or connection failed (None while all is well)."""
        self._refused: str | None = None
        """Set when the broker refused us for good (credentials, certificate) during start."""

        self._raft_q: collections.deque[Message] = collections.deque()
        self._pub_q: collections.deque[tuple[str, bytes, int, bool]] = collections.deque()
        self._client: aiomqtt.Client | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._link_up = False
        """A session is established (for `on_connection`: it hears changes, not attempts)."""
        self._was_up = False
        """Some session was established before: the next one is a reconnection."""
        self._backoff_rng = random.Random()
        # asyncio primitives are made in start(), inside the loop that will use them
        self._connected_ev: asyncio.Event | None = None
        self._first_outcome: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected_ev is not None and self._connected_ev.is_set()

    @property
    def broker_url(self) -> str:
        return self.address.url

    async def start(self) -> None:
        """Connect, retrying until `connect_timeout`; TransportError if the broker is away."""
        if self._closed:
            raise TransportError(f"transport of node {self.node_id} is closed; create a new one")
        if self._started:
            return
        self._loop = running_loop()
        self._connected_ev = asyncio.Event()
        self._first_outcome = asyncio.Event()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = True
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"raftoral-mqtt-node-{self.node_id}"
        )
        try:
            await asyncio.wait_for(self._first_outcome.wait(), self.connect_timeout)
        except TimeoutError:
            await self._stop(reason=DropReason.CLOSED)
            raise TransportError(
                f"node {self.node_id} could not connect to the MQTT broker at {self.broker_url} "
                f"within {self.connect_timeout:g} s (last error: {self.last_error or 'none'}); "
                "is the broker running and the URL right (mqtts:// for a TLS port)?"
            ) from None
        if self._refused is not None:
            await self._stop(reason=DropReason.CLOSED)
            raise TransportError(
                f"node {self.node_id} cannot connect to the MQTT broker at {self.broker_url}: "
                f"{self._refused}"
            )

    async def close(self, *, flush_timeout: float = 2.0) -> None:
        """Flush what is queued (if connected), say goodbye on presence, disconnect cleanly."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closing = True
        client = self._client
        if client is not None and self.connected:
            await self.flush(flush_timeout)
        if client is not None and self.connected and self.presence:
            topic = self.topics.presence(self.node_id)
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(
                    topic,
                    self._seal(topic, self._presence_payload(alive=False, reason="closed")),
                    qos=1,
                    retain=True,
                    timeout=min(self.operation_timeout, 2.0),
                )
        await self._stop(reason=DropReason.CLOSED)

    async def abort(self) -> None:
        """Die like a crashed process: drop the connection without DISCONNECT or goodbye, so
        the broker publishes the last will (`alive: false`). Queued messages are lost."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closing = True
        client = self._client
        if client is not None:
            # aiomqtt has no public "drop the socket" call; the paho client beneath has one
            paho = getattr(client, "_client", None)
            sock = paho.socket() if paho is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self._stop(reason=DropReason.CLOSED)

    async def _stop(self, *, reason: str) -> None:
        self._closing = True
        self._closed = True
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        delayed, self._delayed = self._delayed, {}
        for handle, msg in delayed.items():
            handle.cancel()
            self._drop(msg, reason)
        while self._raft_q:
            self._drop(self._raft_q.popleft(), reason)
        self.stats.publishes_dropped += len(self._pub_q)
        self._pub_q.clear()
        if self._idle is not None:
            self._idle.set()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued has been handed to the broker connection; False if
        that did not happen within `timeout` (for instance while the broker is away)."""
        if self._idle is None or self._closed:
            return not (self._raft_q or self._pub_q)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait for a (re)connection; False on timeout."""
        if self._connected_ev is None:
            return False
        try:
            await asyncio.wait_for(self._connected_ev.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- Raft traffic ----------------------------------------------------------------------

    def _enqueue(self, msg: Message) -> None:
        if self._closed:
            self._drop(msg, DropReason.CLOSED)
            return
        q = self._raft_q
        if len(q) >= self.max_queued:
            self._drop(q.popleft(), DropReason.QUEUE_FULL)
        q.append(msg)
        self._kick()

    def _kick(self) -> None:
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        self._wake.set()

    # --- generic topics for the node layer -------------------------------------------------

    async def publish(
        self,
        topic_suffix: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish now and wait for the broker (PUBACK for QoS 1). Waits for a reconnection
        up to `timeout` (default `operation_timeout`); TransportError if that fails."""
        topic = self._publish_topic(topic_suffix, qos)
        limit = self.operation_timeout if timeout is None else timeout
        if not await self.wait_connected(limit):
            raise TransportError(
                f"publish to {topic} failed: not connected to {self.broker_url} within {limit:g} s"
                f" (last error: {self.last_error or 'none'})"
            )
        client = self._client
        if client is None:
            raise TransportError(f"publish to {topic} failed: connection lost")
        data = self._seal(topic, self._payload_bytes(payload))
        try:
            await client.publish(topic, data, qos=qos, retain=retain, timeout=limit)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"publish to {topic} failed: {exc}") from exc
        self.stats.published += 1

    def publish_nowait(
        self, topic_suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        """Queue a publish for the writer task (never blocks; for event streams). While the
        broker is away the queue is bounded and the oldest entries are dropped and counted."""
        topic = self._publish_topic(topic_suffix, qos)
        data = self._payload_bytes(payload)
        if len(self._pub_q) >= self.max_queued:
            self._pub_q.popleft()
            self.stats.publishes_dropped += 1
        self._pub_q.append((topic, data, qos, retain))
        self._kick()

    async def subscribe(
        self, topic_suffix: str, callback: SubscriptionHandler, qos: int = 1
    ) -> None:
        """Call `callback(suffix, payload)` for messages on a topic or filter below the
        cluster root (`node/3/rpc`, `events/+`). Kept across reconnections; the broker sends
        the retained messages of matching topics after each (re)subscription."""
        topic_filter = self._subscription_filter(topic_suffix)
        self._check_qos(qos)
        self._add_subscription(topic_filter, qos, callback)
        client = self._client
        if client is not None:
            try:
                await client.subscribe(topic_filter, qos=qos, timeout=self.operation_timeout)
            except aiomqtt.MqttError as exc:
                # kept in _subs: the next connection subscribes again
                log.warning("node %d: subscribe to %s failed: %s", self.node_id, topic_filter, exc)

    async def unsubscribe(
        self, topic_suffix: str, callback: SubscriptionHandler | None = None
    ) -> None:
        """Remove one callback, or (callback None) every callback of the filter."""
        topic_filter = self._subscription_filter(topic_suffix)
        if not self._remove_subscription(topic_filter, callback):
            return
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(topic_filter, timeout=self.operation_timeout)

    # --- connection supervisor -------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        will_topic = self.topics.presence(self.node_id)
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            will=aiomqtt.Will(
                topic=will_topic,
                payload=self._seal(
                    will_topic, self._presence_payload(alive=False, reason="connection lost")
                ),
                qos=1,
                retain=True,
            )
            if self.presence
            else None,
            clean_session=True,
            logger=self._client_log,
            keepalive=self.keepalive,
            timeout=self.operation_timeout,
            tls_context=self._tls_context,
        )
        # we publish one batch per destination concurrently; aiomqtt would warn past 10
        client.pending_calls_threshold = 1_000_000
        return client

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * float(1 << min(attempt, 30)))
        return base * self._backoff_rng.uniform(0.75, 1.0)

    async def _supervise(self) -> None:
        attempt = 0
        connections = 0
        while not self._closing:
            try:
                client = self._make_client()
            except Exception as exc:  # e.g. an unusable TLS context: say so, and keep trying
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("node %d: cannot create the MQTT client", self.node_id)
                await asyncio.sleep(self.backoff_max)
                continue
            try:
                async with client:
                    attempt = 0
                    connections += 1
                    if connections > 1:
                        self.stats.reconnects += 1
                        log.info("node %d reconnected to %s", self.node_id, self.broker_url)
                    self.last_error = None
                    await self._run_session(client)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc) or type(exc).__name__
                refusal = _refusal(exc, self._username)
                if refusal is not None:
                    self.last_error = refusal
                    if connections == 0 and self._first_outcome is not None:
                        self._refused = refusal  # start() fails at once with this
                        self._first_outcome.set()
                        break
                    if not self._closing:
                        log.warning("node %d: %s", self.node_id, refusal)
                elif not self._closing:
                    log.info("node %d: MQTT connection: %s", self.node_id, self.last_error)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or an odd OSError: log it, keep reconnecting
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not self._closing:
                    log.exception("node %d: MQTT session failed", self.node_id)
            finally:
                self._client = None
                if self._connected_ev is not None:
                    self._connected_ev.clear()
                _retrieve_disconnect_error(client)
            if self._closing:
                break
            if self._link_up:
                self._link_up = False
                self._connection_changed(False, self.last_error or "connection lost")
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def _run_session(self, client: aiomqtt.Client) -> None:
        self._client = client
        _no_delay(client)
        topics: list[tuple[str, int]] = [(self._raft_topic, 0)]
        topics += [(f, qos) for f, (qos, _) in self._subs.items()]
        await client.subscribe(topics, timeout=self.operation_timeout)
        if self.presence:
            topic = self.topics.presence(self.node_id)
            await client.publish(
                topic,
                self._seal(topic, self._presence_payload(alive=True)),
                qos=1,
                retain=True,
                timeout=self.operation_timeout,
            )
        assert self._connected_ev is not None and self._first_outcome is not None
        self._connected_ev.set()
        self._first_outcome.set()
        self._link_up = True
        if self._was_up:  # before the writer starts: what it says is queued after the outage
            self._connection_changed(True)
        self._was_up = True
        reader = asyncio.create_task(self._read_loop(client))
        writer = asyncio.create_task(self._write_loop(client))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._connected_ev.clear()
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        for task in done:
            task.result()  # re-raise why the session ended
        raise aiomqtt.MqttError("session ended")

    # --- inbound ---------------------------------------------------------------------------

    def _payload_limit(self) -> int:
        return self.max_payload_bytes

    async def _read_loop(self, client: aiomqtt.Client) -> None:
        raft_topic = self._raft_topic
        async for message in client.messages:
            try:
                payload = message.payload
                topic = message.topic.value
                if topic == raft_topic:
                    self._on_raft_payload(payload)
                else:
                    self._on_topic_payload(topic, payload)
            except Exception:  # never let one message end the loop
                log.exception("node %d: error handling an inbound message", self.node_id)

    def _on_raft_payload(self, payload: object) -> None:
        if not isinstance(payload, bytes | bytearray):
            self._malformed(f"payload must be bytes, got {type(payload).__name__}")
            return
        self._receive_raft(bytes(payload), self._payload_limit())

    def _on_topic_payload(self, topic: str, payload: object) -> None:
        data = (
            bytes(payload)
            if isinstance(payload, bytes | bytearray)
            else b""
            if payload is None
            else str(payload).encode()
        )
        self._dispatch(topic, data)

    # --- outbound --------------------------------------------------------------------------

    async def _write_loop(self, client: aiomqtt.Client) -> None:
        """The single writer of a connection: sleeps until woken, then drains everything."""
        assert self._wake is not None and self._idle is not None
        wake, idle = self._wake, self._idle
        while True:
            if not self._raft_q and not self._pub_q:
                idle.set()
                wake.clear()
                await wake.wait()
                await asyncio.sleep(0)  # let sends of the same loop iteration join the batch
            if self._raft_q:
                await self._drain_raft(client)
            if self._pub_q:
                await self._drain_publishes(client)

    async def _drain_raft(self, client: aiomqtt.Client) -> None:
        msgs = list(self._raft_q)
        self._raft_q.clear()
        by_dst: dict[int, list[Message]] = {}
        for m in msgs:
            batch = by_dst.get(m.dst)
            if batch is None:
                by_dst[m.dst] = [m]
            else:
                batch.append(m)
        jobs: list[tuple[str, bytes, Sequence[Message]]] = []
        budget = self._raft_budget(self.max_payload_bytes)
        for dst, batch in by_dst.items():
            payloads, too_large = encode_batches(self.node_id, batch, budget)
            for m in too_large:
                self._drop(m, DropReason.TOO_LARGE)
            topic = self.topics.raft(dst)
            jobs.extend(
                (topic, self._seal(topic, payload, json_body=True), chunk)
                for payload, chunk in payloads
            )
        if not jobs:
            return
        try:
            results = await asyncio.gather(
                *(client.publish(t, p, qos=0, timeout=self.operation_timeout) for t, p, _ in jobs),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            for _, _, chunk in jobs:  # connection lost mid-publish: fate unknown, count as lost
                for m in chunk:
                    self._drop(m, DropReason.DISCONNECTED)
            raise
        failure: BaseException | None = None
        for (_, _, chunk), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                for m in chunk:
                    self._drop(m, DropReason.DISCONNECTED)
            else:
                self.stats.sent += len(chunk)
                self.stats.batches_sent += 1
        if failure is not None:
            raise aiomqtt.MqttError(f"publish failed: {failure}") from failure

    async def _drain_publishes(self, client: aiomqtt.Client) -> None:
        items = list(self._pub_q)
        self._pub_q.clear()
        seal = self._seal  # at sending time: a publish queued in an outage gets a fresh counter
        try:
            results = await asyncio.gather(
                *(
                    client.publish(t, seal(t, p), qos=q, retain=r, timeout=self.operation_timeout)
                    for t, p, q, r in items
                ),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            self._pub_q.extendleft(reversed(items))  # try again on the next connection
            raise
        failed = [
            item for item, res in zip(items, results, strict=True) if isinstance(res, BaseException)
        ]
        self.stats.published += len(items) - len(failed)
        if failed:
            self._pub_q.extendleft(reversed(failed))
            while len(self._pub_q) > self.max_queued:
                self._pub_q.popleft()
                self.stats.publishes_dropped += 1
            first = next(r for r in results if isinstance(r, BaseException))
            raise aiomqtt.MqttError(f"publish failed: {first}") from first


def _no_delay(client: aiomqtt.Client) -> None:
    """Turn off Nagle's algorithm on the client's socket. paho leaves it on, and small Raft
    messages then wait for the peer's delayed ACK (about 40 ms on Linux) every few round
    trips: the commit latency's long tail. aiomqtt exposes no socket, hence the paho one."""
    paho = getattr(client, "_client", None)
    sock = paho.socket() if paho is not None else None
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
