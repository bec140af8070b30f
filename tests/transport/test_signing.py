"""Signed payloads: the `Signer` on its own, then every transport with a cluster secret.

The transport tests run on the memory network, the embedded broker and a private Mosquitto.
Each backend comes with a raw wire: what a plain MQTT client subscribed to `raftoral/lab/#`
sees (a capture), and a way to publish raw bytes as such a client would (an injection), so a
test can forge, replay and move payloads the way an attacker on a classroom broker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftoral_lab.core.messages import Heartbeat, Message
from raftoral_lab.errors import ConfigError
from raftoral_lab.transport import DropReason, MemoryNetwork, Transport, generate_secret
from raftoral_lab.transport.codec import encode_batch
from raftoral_lab.transport.mqtt import MqttTransport, parse_broker_url
from raftoral_lab.transport.signing import (
    MIN_SECRET_BYTES,
    SIGNED_OVERHEAD,
    Refused,
    Signer,
    looks_signed,
)
from raftoral_lab.transport.topics import Topics

from .conftest import Broker

SECRET = "a3f1c9e0b7d24e6f8a1b2c3d4e5f6a7b"  # 32 bytes: fine for tests, never for a class
OTHER = "0f9e8d7c6b5a49382716051f2e3d4c5b"
TOPICS = Topics("lab")
RPC2 = TOPICS.rpc(2)


def hb(src: int, dst: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(0, src, dst, 1, commit)


async def eventually(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def refused(signer: Signer, topic: str, payload: bytes) -> DropReason:
    with pytest.raises(Refused) as info:
        signer.open(topic, payload)
    return info.value.reason


# --- the Signer ------------------------------------------------------------------------------


def test_a_sealed_payload_is_readable_json_and_opens() -> None:
    tx, rx = Signer(SECRET, 3), Signer(SECRET, 2)
    body = json.dumps({"v": 1, "op": "status", "id": "x-1"}).encode()
    wire = tx.seal(RPC2, body)
    doc = json.loads(wire)
    assert list(doc) == ["v", "src", "ctr", "mac", "body"]
    assert doc["v"] == 1 and doc["src"] == 3 and doc["body"] == json.loads(body)
    assert len(doc["mac"]) == 64
    assert rx.open(RPC2, wire) == (3, body)


def test_text_travels_as_a_string_and_bytes_as_base64() -> None:
    tx, rx = Signer(SECRET, 3), Signer(SECRET, 2)
    lines = '{"kind":"a"}\n{"kind":"b","s":"\u00e9\\n\\"q\\""}'.encode()  # the event stream
    for body in (lines, b"not json", b'{"x": NaN}', "caf\u00e9 \u2603".encode(), b"\r\n\t"):
        doc = json.loads(tx.seal(RPC2, body))
        assert doc["text"] == body.decode() and "body" not in doc
        assert rx.open(RPC2, tx.seal(RPC2, body)) == (3, body)
    for body in (b"\xff\xfe binary", b"\xef\xbb\xbf{}"[1:], bytes(range(256))):
        doc = json.loads(tx.seal(RPC2, body))
        assert "body64" in doc and "body" not in doc and "text" not in doc
        assert rx.open(RPC2, tx.seal(RPC2, body)) == (3, body)
    utf16 = '{"a": 1}'.encode("utf-16-le")  # JSON to json.loads, not to other readers
    assert b"\x00" not in tx.seal(RPC2, utf16) and "text" in json.loads(tx.seal(RPC2, utf16))
    assert rx.open(RPC2, tx.seal(RPC2, utf16)) == (3, utf16)
    bom = b"\xef\xbb\xbf{}"  # valid UTF-8, but no JSON parser takes it inside a document
    assert "text" in json.loads(tx.seal(RPC2, bom))
    assert rx.open(RPC2, tx.seal(RPC2, bom)) == (3, bom)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300) | st.text(min_size=1).map(str.encode))
def test_any_body_round_trips_and_the_envelope_is_json(body: bytes) -> None:
    wire = Signer(SECRET, 3).seal(RPC2, body)
    assert isinstance(json.loads(wire), dict)
    assert Signer(SECRET, 2).open(RPC2, wire) == (3, body)


def test_counters_strictly_increase_and_follow_the_clock() -> None:
    now = [1_000]
    tx = Signer(SECRET, 1, clock=lambda: now[0])
    assert [tx.next_counter() for _ in range(3)] == [1_000, 1_001, 1_002]
    now[0] = 5_000_000
    assert tx.next_counter() == 5_000_000


def test_forged_altered_moved_and_wrong_secret_payloads_are_bad_signatures() -> None:
    tx, rx = Signer(SECRET, 3), Signer(SECRET, 2)
    body = b'{"v":1,"op":"crash"}'
    wire = tx.seal(TOPICS.control(2), body)
    mac_at = wire.index(b'"mac":"') + 7
    flipped = b"0" if wire[mac_at : mac_at + 1] != b"0" else b"1"
    forged = wire[:mac_at] + flipped + wire[mac_at + 1 :]
    assert refused(rx, TOPICS.control(2), forged) is DropReason.BAD_SIGNATURE
    altered = wire.replace(b'"crash"', b'"heal" ')
    assert refused(rx, TOPICS.control(2), altered) is DropReason.BAD_SIGNATURE
    spoofed = wire.replace(b'"src":3', b'"src":4')
    assert refused(rx, TOPICS.control(2), spoofed) is DropReason.BAD_SIGNATURE
    assert refused(rx, TOPICS.control(3), wire) is DropReason.BAD_SIGNATURE  # other node
    assert refused(rx, Topics("other").control(2), wire) is DropReason.BAD_SIGNATURE
    assert refused(Signer(OTHER, 2), TOPICS.control(2), wire) is DropReason.BAD_SIGNATURE
    assert rx.open(TOPICS.control(2), wire) == (3, body)  # the original still opens once


def test_unsigned_and_malformed_envelopes_are_refused() -> None:
    rx = Signer(SECRET, 2)
    assert refused(rx, RPC2, b'{"v":1,"op":"status"}') is DropReason.UNSIGNED
    assert refused(rx, RPC2, b"garbage") is DropReason.UNSIGNED
    good = Signer(SECRET, 3).seal(RPC2, b"{}")
    for bad in (
        good.replace(b'"v":1', b'"v":2'),  # a newer envelope
        good.replace(b'"ctr":', b'"ctr":0'),  # leading zero: not the signed text
        good[:-1],  # not closed
        good.replace(b'","body"', b'", "body"'),  # not byte-exact
        b'{"v":1,"src":3,"ctr":1,"mac":"zz","body":{}}',
    ):
        assert refused(rx, RPC2, bad) is DropReason.BAD_SIGNATURE, bad


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_change_to_an_envelope_is_refused(data: st.DataObject) -> None:
    tx = Signer(SECRET, 7)
    body = json.dumps({"v": 1, "n": data.draw(st.integers()), "s": data.draw(st.text())}).encode()
    wire = tx.seal(RPC2, body)
    at = data.draw(st.integers(0, len(wire) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != wire[at]))
    mutated = wire[:at] + bytes([new]) + wire[at + 1 :]
    rx = Signer(SECRET, 2)
    with pytest.raises(Refused):
        rx.open(RPC2, mutated)


def test_replays_are_refused_and_reordering_within_the_window_is_not() -> None:
    now = [10_000_000_000]
    tx = Signer(SECRET, 3, clock=lambda: now[0])
    rx = Signer(SECRET, 2, clock=lambda: now[0], replay_window=1.0)
    first, second, third = (tx.seal(RPC2, b"{}") for _ in range(3))
    assert rx.open(RPC2, first)[0] == 3
    assert refused(rx, RPC2, first) is DropReason.REPLAYED
    assert rx.open(RPC2, third)[0] == 3  # arrives before the second: fine
    assert rx.open(RPC2, second)[0] == 3
    assert refused(rx, RPC2, second) is DropReason.REPLAYED
    now[0] += 2_000_000  # two seconds later
    late = tx.seal(RPC2, b"{}")
    rx.open(RPC2, late)
    old = Signer(SECRET, 3, clock=lambda: now[0] - 1_500_000).seal(RPC2, b"{}")
    assert refused(rx, RPC2, old) is DropReason.REPLAYED  # below the one-second window


def test_the_window_remembers_a_bounded_number_of_counters() -> None:
    now = [10_000_000_000]
    tx = Signer(SECRET, 3, clock=lambda: now[0])
    rx = Signer(SECRET, 2, clock=lambda: now[0], max_remembered=8)
    wires = [tx.seal(RPC2, b"{}") for _ in range(20)]
    for wire in wires[10:]:
        rx.open(RPC2, wire)
    for wire in wires[:10]:  # older than the eight remembered: refused, never accepted twice
        assert refused(rx, RPC2, wire) is DropReason.REPLAYED


def test_a_restarted_sender_is_accepted_without_any_stored_state() -> None:
    rx = Signer(SECRET, 2)
    before = Signer(SECRET, 3)
    for _ in range(1000):
        rx.open(RPC2, before.seal(RPC2, b"{}"))
    captured = before.seal(RPC2, b"{}")
    rx.open(RPC2, captured)
    after = Signer(SECRET, 3)  # same node id, new process, counter seeded from the clock
    assert rx.open(RPC2, after.seal(RPC2, b"{}"))[0] == 3
    assert refused(rx, RPC2, captured) is DropReason.REPLAYED


def test_a_first_message_older_than_the_skew_is_stale() -> None:
    now = [10_000_000_000]
    old = Signer(SECRET, 3, clock=lambda: now[0] - 700_000_000).seal(RPC2, b"{}")
    fresh = Signer(SECRET, 3, clock=lambda: now[0] - 5_000_000).seal(RPC2, b"{}")
    rx = Signer(SECRET, 2, clock=lambda: now[0], max_skew=600.0)
    assert refused(rx, RPC2, old) is DropReason.STALE  # e.g. replayed to a restarted node
    assert rx.open(RPC2, fresh)[0] == 3
    lenient = Signer(SECRET, 2, clock=lambda: now[0], max_skew=None)
    assert lenient.open(RPC2, old)[0] == 3


def test_presence_is_checked_but_not_replay_protected() -> None:
    rx, tx = Signer(SECRET, 2), Signer(SECRET, 3)
    will = tx.seal(TOPICS.presence(3), b'{"alive":false}')  # made at connect, sent much later
    rx.open(RPC2, tx.seal(RPC2, b"{}"))
    assert rx.open(TOPICS.presence(3), will, check_replay=False)[0] == 3
    assert refused(rx, TOPICS.presence(4), will) is DropReason.BAD_SIGNATURE


def test_forgeries_leave_no_state_and_senders_are_bounded() -> None:
    rx = Signer(SECRET, 2, max_senders=3)
    for src in range(10):
        rx.open(RPC2, Signer(SECRET, src).seal(RPC2, b"{}"))
    assert "senders_known=3" in repr(rx)
    with pytest.raises(Refused):
        rx.open(RPC2, Signer(OTHER, 99).seal(RPC2, b"{}"))
    assert "senders_known=3" in repr(rx)
    rx.forget()
    assert "senders_known=0" in repr(rx)


def test_macs_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # what signing calls
    rx = Signer(SECRET, 2)
    rx.open(RPC2, Signer(SECRET, 3).seal(RPC2, b"{}"))
    with pytest.raises(Refused):
        rx.open(RPC2, Signer(OTHER, 3).seal(RPC2, b"{}"))
    assert len(calls) == 2


@pytest.mark.parametrize("secret", ["", "short", b"fifteen bytes!!", "x" * (MIN_SECRET_BYTES - 1)])
def test_a_short_secret_is_refused_with_advice(secret: str | bytes) -> None:
    with pytest.raises(ConfigError) as info:
        Signer(secret, 1)
    text = str(info.value)
    assert "too short" in text and "secrets.token_hex(32)" in text
    if len(secret) >= 10:
        assert str(secret) not in text
    with pytest.raises(ConfigError, match="too short"):
        MemoryNetwork().transport(1, secret=secret)
    with pytest.raises(ConfigError, match="too short"):
        MqttTransport(1, secret=secret)


def test_a_secret_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="string or bytes"):
        Signer(12345678901234567890, 1)  # type: ignore[arg-type]


def test_the_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = generate_secret()
    assert len(secret) == 64
    rx = Signer(secret, 2)
    with pytest.raises(Refused) as info:
        rx.open(RPC2, Signer(OTHER, 3).seal(RPC2, b"{}"))
    t = MemoryNetwork().transport(1, secret=secret)
    shown = " ".join([repr(rx), str(info.value), repr(t), repr(vars(t)), caplog.text])
    assert secret not in shown and secret.encode().hex() not in shown


def test_looks_signed() -> None:
    assert looks_signed(Signer(SECRET, 1).seal(RPC2, b"{}"))
    assert looks_signed(b'{ "v": 2, "src": 1, "ctr": 5, "mac": "x", "body": {} }')
    assert not looks_signed(b'{"v":1,"kind":"x","mac":"00:11:22:33:44:55"}')  # just a field
    assert not looks_signed(encode_batch(1, [hb(1, 2)]))
    assert not looks_signed(b'{"v":1,"id":"a","op":"status"}')


# --- transports with a secret, on every backend ------------------------------------------------


@dataclass
class Wire:
    """One backend: makes transports, sees the raw traffic, and publishes raw bytes."""

    kind: str
    make: Callable[..., Transport]
    inject: Callable[[str, bytes], Any]
    captured: list[tuple[str, bytes]] = field(default_factory=list)
    made: list[Transport] = field(default_factory=list)

    def transport(self, node_id: int, **kw: Any) -> Transport:
        t = self.make(node_id, **kw)
        self.made.append(t)
        return t

    async def started(self, *node_ids: int, **kw: Any) -> list[Transport]:
        ts = [self.transport(i, **kw) for i in node_ids]
        for t in ts:
            await t.start()
        return ts

    def payloads(self, topic_suffix: str) -> list[bytes]:
        topic = TOPICS.topic(topic_suffix)
        return [p for t, p in self.captured if t == topic]

    async def captured_on(self, topic_suffix: str, count: int = 1) -> list[bytes]:
        await eventually(
            lambda: len(self.payloads(topic_suffix)) >= count, what=f"capture on {topic_suffix}"
        )
        return self.payloads(topic_suffix)

    async def replay(self, topic_suffix: str, payload: bytes) -> None:
        await self.inject(topic_suffix, payload)


@contextlib.asynccontextmanager
async def memory_wire() -> AsyncIterator[Wire]:
    network = MemoryNetwork()
    wire: Wire

    async def inject(topic_suffix: str, payload: bytes) -> None:
        network.inject(topic_suffix, payload)

    wire = Wire("memory", network.transport, inject)
    network.wiretap = lambda topic, payload: wire.captured.append((topic, payload))
    try:
        yield wire
    finally:
        for t in wire.made:
            await t.close()


@contextlib.asynccontextmanager
async def mqtt_wire(kind: str, url: str) -> AsyncIterator[Wire]:
    addr = parse_broker_url(url)

    def make(node_id: int, **kw: Any) -> Transport:
        kw.setdefault("backoff_initial", 0.05)
        kw.setdefault("backoff_max", 0.5)
        return MqttTransport(node_id, "lab", url, **kw)

    async with aiomqtt.Client(addr.host, addr.port) as raw:

        async def inject(topic_suffix: str, payload: bytes) -> None:
            await raw.publish(TOPICS.topic(topic_suffix), payload, qos=1)

        wire = Wire(kind, make, inject)
        await raw.subscribe(TOPICS.everything, qos=1)

        async def collect() -> None:
            async for m in raw.messages:
                wire.captured.append((m.topic.value, bytes(m.payload)))

        task = asyncio.create_task(collect())
        try:
            yield wire
        finally:
            for t in wire.made:
                await t.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(kind, broker URL); the broker fixtures of conftest start a private broker."""
    if request.param == "memory":
        return "memory", None
    broker: Broker = request.getfixturevalue(f"{request.param}_broker")
    return request.param, broker.url


@pytest.fixture
async def wire(backend: tuple[str, str | None]) -> AsyncIterator[Wire]:
    kind, url = backend
    if url is None:
        async with memory_wire() as w:
            yield w
    else:
        async with mqtt_wire(kind, url) as w:
            yield w


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.topics: list[tuple[str, bytes]] = []
        self.drops: list[tuple[str, int, int, str]] = []

    def __call__(self, msg: Message) -> None:
        self.messages.append(msg)

    def on_topic(self, topic: str, payload: bytes) -> None:
        self.topics.append((topic, payload))

    def on_drop(self, kind: str, src: int, dst: int, reason: str) -> None:
        self.drops.append((kind, src, dst, reason))


def attach(t: Transport) -> Inbox:
    inbox = Inbox()
    t.on_message = inbox
    t.on_drop = inbox.on_drop
    return inbox


async def test_signed_traffic_flows_and_is_readable_on_the_wire(wire: Wire) -> None:
    a, b, c = (wire.transport(i, secret=SECRET) for i in (1, 2, 3))
    inbox = attach(b)
    await b.subscribe("node/2/rpc", inbox.on_topic)
    watcher = Inbox()
    await c.subscribe("presence/+", watcher.on_topic)
    await c.subscribe("events/+", watcher.on_topic)
    for t in (a, b, c):
        await t.start()
    request = json.dumps({"v": 1, "id": "r-1", "op": "status", "reply_to": "node/1/reply"})
    a.send([hb(1, 2, 7)])
    await a.publish("node/2/rpc", request)
    a.publish_nowait("events/1", json.dumps({"kind": "hello"}))
    await eventually(lambda: inbox.messages == [hb(1, 2, 7)], what="raft")
    await eventually(lambda: inbox.topics == [("node/2/rpc", request.encode())], what="rpc")
    await eventually(
        lambda: (
            ("events/1", b'{"kind": "hello"}') in watcher.topics
            and {t for t, p in watcher.topics if t.startswith("presence/") and p}
            >= {
                "presence/1",
                "presence/2",
            }
        ),
        what="events and presence",
    )
    alive = [json.loads(p) for t, p in watcher.topics if t == "presence/1" and p]
    assert alive and alive[0]["alive"] is True and alive[0]["node"] == 1
    await wire.captured_on("node/2/raft")
    await wire.captured_on("node/2/rpc")
    assert wire.captured
    counters = []
    for topic, payload in wire.captured:
        if not payload:
            continue
        doc = json.loads(payload)  # readable as one JSON document, body included
        assert set(doc) == {"v", "src", "ctr", "mac", "body"}, topic
        if doc["src"] == 1:
            counters.append(doc["ctr"])
    raft = json.loads(wire.payloads("node/2/raft")[0])["body"]
    assert raft["src"] == 1 and raft["msgs"][0]["kind"] == "heartbeat"
    assert json.loads(wire.payloads("node/2/rpc")[0])["body"]["op"] == "status"
    assert len(set(counters)) == len(counters) >= 3
    for t in (a, b, c):
        assert t.signed and t.stats.dropped_total == 0, t.stats.as_dict()


async def test_a_forged_mac_is_dropped_and_counted(wire: Wire) -> None:
    a, b = await wire.started(1, 2, secret=SECRET)
    inbox = attach(b)
    await b.subscribe("node/2/rpc", inbox.on_topic)
    a.send([hb(1, 2, 1)])
    await a.publish("node/2/rpc", '{"v":1,"id":"1","op":"status","reply_to":"node/1/reply"}')
    await eventually(lambda: len(inbox.messages) == 1 and len(inbox.topics) == 1)
    raft = (await wire.captured_on("node/2/raft"))[0]
    rpc = (await wire.captured_on("node/2/rpc"))[0]
    forged_raft = raft.replace(b'"commit":1', b'"commit":9')  # body changed, old MAC
    at = rpc.index(b'"mac":"') + 7
    forged_rpc = rpc[:at] + (b"a" if rpc[at : at + 1] != b"a" else b"b") + rpc[at + 1 :]
    await wire.inject("node/2/raft", forged_raft)
    await wire.inject("node/2/rpc", forged_rpc)
    await eventually(lambda: b.stats.dropped["bad_signature"] == 2, what="two forgeries counted")
    assert len(inbox.messages) == 1 and len(inbox.topics) == 1
    assert sorted(inbox.drops) == [(k, 1, 2, "bad_signature") for k in ("raft", "rpc")]
    assert "does not match" in (b.stats.last_refused or "")
    assert b.stats.batches_received == 1 and b.stats.malformed == 0


async def test_unsigned_payloads_are_dropped_and_counted(wire: Wire) -> None:
    (b,) = await wire.started(2, secret=SECRET)
    inbox = attach(b)
    await b.subscribe("node/2/rpc", inbox.on_topic)
    await b.subscribe("node/2/control", inbox.on_topic)
    await wire.inject("node/2/raft", encode_batch(1, [hb(1, 2, 1)]))
    await wire.inject("node/2/rpc", b'{"v":1,"id":"1","op":"status","reply_to":"node/1/reply"}')
    await wire.inject("node/2/control", b'{"v":1,"op":"crash"}')
    await eventually(lambda: b.stats.dropped["unsigned"] == 3, what="three unsigned counted")
    assert inbox.messages == [] and inbox.topics == []
    assert sorted(inbox.drops) == [(k, -1, 2, "unsigned") for k in ("control", "raft", "rpc")]


async def test_a_replayed_payload_is_dropped_and_counted(wire: Wire) -> None:
    a, b = await wire.started(1, 2, secret=SECRET)
    inbox = attach(b)
    await b.subscribe("node/2/control", inbox.on_topic)
    a.send([hb(1, 2, 1)])
    await a.publish("node/2/control", '{"v":1,"op":"heal"}')
    await eventually(lambda: len(inbox.messages) == 1 and len(inbox.topics) == 1)
    raft = (await wire.captured_on("node/2/raft"))[0]
    control = (await wire.captured_on("node/2/control"))[0]
    await wire.replay("node/2/raft", raft)
    await wire.replay("node/2/control", control)
    await eventually(lambda: b.stats.dropped["replayed"] == 2, what="two replays counted")
    assert len(inbox.messages) == 1 and len(inbox.topics) == 1
    assert sorted(inbox.drops) == [(k, 1, 2, "replayed") for k in ("control", "raft")]
    a.send([hb(1, 2, 2)])  # the sender goes on as if nothing happened
    await eventually(lambda: inbox.messages == [hb(1, 2, 1), hb(1, 2, 2)], what="still flowing")


async def test_a_payload_moved_to_another_topic_is_dropped(wire: Wire) -> None:
    a, b, c = await wire.started(1, 2, 3, secret=SECRET)
    got_b, got_c = attach(b), attach(c)
    await b.subscribe("node/2/control", got_b.on_topic)
    await c.subscribe("node/3/rpc", got_c.on_topic)
    await a.publish("node/2/rpc", '{"v":1,"id":"1","op":"status","reply_to":"node/1/reply"}')
    a.send([hb(1, 2, 1)])
    rpc = (await wire.captured_on("node/2/rpc"))[0]
    raft = (await wire.captured_on("node/2/raft"))[0]
    await wire.inject("node/2/control", rpc)  # same node, another channel
    await wire.inject("node/3/rpc", rpc)  # same channel, another node
    await wire.inject("node/3/raft", raft)
    await eventually(lambda: b.stats.dropped["bad_signature"] == 1)
    await eventually(lambda: c.stats.dropped["bad_signature"] == 2)
    assert got_b.topics == [] and got_c.topics == [] and got_c.messages == []


async def test_a_wrong_secret_or_no_secret_exchanges_nothing(wire: Wire) -> None:
    a, b = await wire.started(1, 2, secret=SECRET)
    (w,) = await wire.started(3, secret=OTHER)
    (n,) = await wire.started(4)
    inboxes = {t.node_id: attach(t) for t in (a, b, w, n)}
    for t in (a, b, w, n):
        await t.subscribe("events/+", inboxes[t.node_id].on_topic)
    everyone = (a, b, w, n)
    for t in everyone:
        t.send([hb(t.node_id, o.node_id, 1) for o in everyone if o is not t])
        await t.publish(f"events/{t.node_id}", json.dumps({"from": t.node_id}))

    def heard(t: Transport) -> set[int]:
        box = inboxes[t.node_id]
        raft = {m.src for m in box.messages}
        topics = {json.loads(p)["from"] for _, p in box.topics}
        return raft | topics

    def dropped(t: Transport, reason: str) -> int:
        return t.stats.dropped[reason]

    await eventually(lambda: heard(a) == {1, 2} and heard(b) == {1, 2}, what="a and b talk")
    await eventually(lambda: heard(n) == {4}, what="the unsigned node hears itself only")
    # every signed node refuses the two strangers' raft batch and event (and for the no-secret
    # node its presence); the strangers refuse everything from the other secrets
    await eventually(lambda: dropped(a, "bad_signature") >= 2 and dropped(a, "unsigned") >= 2)
    await eventually(lambda: dropped(b, "bad_signature") >= 2 and dropped(b, "unsigned") >= 2)
    await eventually(lambda: dropped(w, "bad_signature") >= 4 and dropped(w, "unsigned") >= 2)
    await eventually(lambda: dropped(n, "no_secret") >= 6)
    assert heard(w) == {3}
    assert all(m.src in (1, 2) for t in (a, b) for m in inboxes[t.node_id].messages)


async def test_control_without_a_secret_works_only_on_an_open_node(wire: Wire) -> None:
    (signed,) = await wire.started(1, secret=SECRET)
    (open_node,) = await wire.started(2)
    got_signed, got_open = attach(signed), attach(open_node)
    await signed.subscribe("node/1/control", got_signed.on_topic)
    await open_node.subscribe("node/2/control", got_open.on_topic)
    await wire.inject("node/1/control", b'{"v":1,"op":"heal"}')
    await wire.inject("node/2/control", b'{"v":1,"op":"heal"}')
    await eventually(lambda: got_open.topics == [("node/2/control", b'{"v":1,"op":"heal"}')])
    await eventually(lambda: signed.stats.dropped["unsigned"] == 1)
    assert got_signed.topics == []


# --- memory-only details -----------------------------------------------------------------------


async def test_signed_batches_stay_within_the_payload_limit() -> None:
    network = MemoryNetwork(max_payload_bytes=2048)
    sizes: list[int] = []
    network.wiretap = lambda topic, payload: sizes.append(len(payload))
    a, b = network.transport(1, secret=SECRET), network.transport(2, secret=SECRET)
    inbox = attach(b)
    async with a, b:
        a.send([hb(1, 2, i) for i in range(200)])
        await eventually(lambda: len(inbox.messages) == 200)
    assert len(sizes) > 2 and max(sizes) <= 2048
    assert max(sizes) > 2048 - SIGNED_OVERHEAD - 200
    assert a.stats.dropped_total == 0


async def test_refusals_are_counted_all_but_reported_at_a_bounded_rate() -> None:
    network = MemoryNetwork()
    b = network.transport(2, secret=SECRET)
    inbox = attach(b)
    await b.subscribe("node/2/rpc", inbox.on_topic)
    async with b:
        forged = Signer(OTHER, 1).seal(RPC2, b"{}")
        started = time.monotonic()
        for _ in range(500):
            network.inject("node/2/rpc", forged)
        await eventually(lambda: b.stats.dropped["bad_signature"] == 500)
        seconds = int(time.monotonic() - started) + 2  # the clock seconds the flood touched
    assert 1 <= len(inbox.drops) <= 10 * seconds < 500 and inbox.topics == []


async def test_an_empty_retained_payload_still_clears_presence() -> None:
    network = MemoryNetwork()
    a, b = network.transport(1, secret=SECRET), network.transport(2, secret=SECRET)
    got = Inbox()
    await b.subscribe("presence/+", got.on_topic)
    async with a, b:
        await a.publish("presence/9", b"", retain=True)
        await eventually(lambda: ("presence/9", b"") in got.topics)
        assert network.retained("presence/9") is None
        retained = network.retained("presence/1")
        assert retained is not None and json.loads(retained)["body"]["alive"] is True


async def test_an_oversized_signed_raft_payload_is_refused_before_checking() -> None:
    network = MemoryNetwork(max_payload_bytes=4096)
    b = network.transport(2, secret=SECRET)
    attach(b)
    async with b:
        big = Signer(SECRET, 1).seal(TOPICS.raft(2), b'{"pad":"' + b"x" * 9000 + b'"}')
        b.receive_payload(big)
    assert b.stats.malformed == 1 and "over the limit" in (b.stats.last_malformed or "")
    assert b.stats.dropped_total == 0


async def test_direct_hand_over_is_never_used_with_a_secret() -> None:
    network = MemoryNetwork(codec=False)
    seen: list[str] = []
    network.wiretap = lambda topic, payload: seen.append(topic)
    a, b = network.transport(1, secret=SECRET), network.transport(2)
    got = attach(b)
    async with a, b:
        a.send([hb(1, 2)])
        b.send([hb(2, 1)])
        await eventually(lambda: b.stats.dropped["no_secret"] == 1)
        await eventually(lambda: a.stats.dropped["unsigned"] == 1)
    assert got.messages == [] and TOPICS.raft(2) in seen
