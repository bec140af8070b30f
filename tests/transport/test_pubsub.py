"""Topic publish/subscribe, the same suite on every transport.

Each test runs against `MemoryTransport` (its `MemoryNetwork` is the broker) and against
`MqttTransport` over the embedded amqtt broker and a private Mosquitto (see conftest). Tests
wait for conditions with a generous timeout, and prove that something did *not* arrive by
waiting for a sentinel published after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from raftoral_lab.core.messages import Heartbeat, Message
from raftoral_lab.errors import ConfigError, TransportError
from raftoral_lab.transport import DropReason, MemoryNetwork, Transport
from raftoral_lab.transport.base import SubscriptionHandler
from raftoral_lab.transport.codec import encode_batch
from raftoral_lab.transport.mqtt import MqttTransport

from .conftest import Broker

Received = list[tuple[str, bytes]]


async def eventually(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def collector(into: Received) -> SubscriptionHandler:
    def cb(topic: str, payload: bytes) -> None:
        into.append((topic, payload))

    return cb


def presence_docs(got: Received, node: int) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p in got if t == f"presence/{node}" and p]


@dataclass
class Net:
    """Makes transports of one backend, all on the same network or broker."""

    kind: str
    factory: Callable[..., Transport]
    made: list[Transport] = field(default_factory=list)

    def transport(self, node_id: int, **kw: Any) -> Transport:
        t = self.factory(node_id, **kw)
        self.made.append(t)
        return t

    async def started(self, *node_ids: int) -> list[Transport]:
        ts = [self.transport(i) for i in node_ids]
        for t in ts:
            await t.start()
        return ts

    async def close_all(self) -> None:
        for t in self.made:
            await t.close()


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def backend(request: pytest.FixtureRequest) -> tuple[str, Callable[..., Transport]]:
    if request.param == "memory":
        network = MemoryNetwork()
        return "memory", network.transport
    broker: Broker = request.getfixturevalue(f"{request.param}_broker")

    def make(node_id: int, **kw: Any) -> Transport:
        kw.setdefault("backoff_initial", 0.05)
        kw.setdefault("backoff_max", 0.5)
        return MqttTransport(node_id, "lab", broker.url, **kw)

    return request.param, make


@pytest.fixture
async def net(backend: tuple[str, Callable[..., Transport]]) -> AsyncIterator[Net]:
    n = Net(*backend)
    try:
        yield n
    finally:
        await n.close_all()


# --- routing ---------------------------------------------------------------------------------


async def test_exact_topics_reach_only_their_subscribers(net: Net) -> None:
    a, b, c = await net.started(1, 2, 3)
    got_b: Received = []
    got_c: Received = []
    await b.subscribe("node/2/rpc", collector(got_b))
    await c.subscribe("node/3/rpc", collector(got_c))
    await a.publish("node/4/rpc", b"nobody")
    await a.publish("node/2/rpc", b"to b")
    await a.publish("node/2/control", b"other channel")
    await a.publish("node/3/rpc", "to c")  # str payloads go out as UTF-8
    await a.publish("node/2/rpc", b"end")
    await eventually(lambda: len(got_b) == 2 and len(got_c) == 1, what="rpc")
    assert got_b == [("node/2/rpc", b"to b"), ("node/2/rpc", b"end")]
    assert got_c == [("node/3/rpc", b"to c")]


async def test_plus_matches_exactly_one_level(net: Net) -> None:
    a, b = await net.started(1, 2)
    got: Received = []
    await b.subscribe("app/+", collector(got))
    for topic in ("app/1", "app/1/deep", "app", "apps/1", "other/1", "app/2", "app/end"):
        await a.publish(topic, topic)
    await eventually(lambda: ("app/end", b"app/end") in got, what="sentinel")
    assert [t for t, _ in got] == ["app/1", "app/2", "app/end"]


async def test_hash_matches_the_rest_including_the_parent_level(net: Net) -> None:
    a, b = await net.started(1, 2)
    got: Received = []
    await b.subscribe("app/#", collector(got))
    for topic in ("app", "app/1", "app/1/deep", "apps/1", "other/app", "app/end"):
        await a.publish(topic, b"x")
    await eventually(lambda: ("app/end", b"x") in got, what="sentinel")
    assert [t for t, _ in got] == ["app", "app/1", "app/1/deep", "app/end"]


async def test_callbacks_run_on_the_loop_never_inside_publish(net: Net) -> None:
    a, b = await net.started(1, 2)
    loop = asyncio.get_running_loop()
    got: Received = []
    loops: list[asyncio.AbstractEventLoop] = []

    def cb(topic: str, payload: bytes) -> None:
        loops.append(asyncio.get_running_loop())
        got.append((topic, payload))

    await a.subscribe("app/x", cb)  # a hears its own publishes, as with MQTT
    await b.subscribe("app/x", cb)
    a.publish_nowait("app/x", b"1")
    a.publish_nowait("app/x", b"2", qos=0)
    assert got == []
    await eventually(lambda: len(got) == 4, what="delivery to both")
    assert sorted(got) == [("app/x", b"1")] * 2 + [("app/x", b"2")] * 2
    assert loops == [loop] * 4
    assert a.stats.published == 2
    assert a.stats.publishes_received == 2 and b.stats.publishes_received == 2


async def test_messages_flow_both_ways_request_and_reply(net: Net) -> None:
    """Proposal forwarding in miniature: a request names its reply topic and a correlation id."""
    a, b = await net.started(1, 2)
    replies: dict[int, list[dict[str, Any]]] = {1: [], 2: []}

    def server(me: Transport) -> SubscriptionHandler:
        def on_request(topic: str, payload: bytes) -> None:
            req = json.loads(payload)
            if "reply_to" in req:  # a request: answer it (callbacks must not block)
                answer = {"id": req["id"], "from": me.node_id, "echo": req["body"]}
                me.publish_nowait(req["reply_to"], json.dumps(answer))
            else:
                replies[me.node_id].append(req)

        return on_request

    await a.subscribe("node/1/rpc", server(a))
    await b.subscribe("node/2/rpc", server(b))
    for i in range(3):
        await a.publish("node/2/rpc", json.dumps({"id": i, "reply_to": "node/1/rpc", "body": i}))
        await b.publish("node/1/rpc", json.dumps({"id": i, "reply_to": "node/2/rpc", "body": -i}))
    await eventually(lambda: len(replies[1]) == 3 and len(replies[2]) == 3, what="replies")
    assert sorted(r["echo"] for r in replies[1]) == [0, 1, 2]
    assert all(r["from"] == 2 for r in replies[1])
    assert sorted(r["echo"] for r in replies[2]) == [-2, -1, 0]
    assert all(r["from"] == 1 for r in replies[2])


# --- retained messages -----------------------------------------------------------------------


async def test_retained_message_reaches_a_late_subscriber_and_empty_clears_it(net: Net) -> None:
    a, b, c = await net.started(1, 2, 3)
    await a.publish("cfg/1", b"v1", retain=True)
    await a.publish("cfg/1", b"v2", retain=True)  # the newest retained message wins
    await a.publish("cfg/2", b"live")  # not retained: gone once delivered
    await a.publish("cfg/3", b"marker", retain=True)
    got_b: Received = []
    await b.subscribe("cfg/+", collector(got_b))
    await eventually(lambda: len(got_b) == 2, what="retained messages")
    assert sorted(got_b) == [("cfg/1", b"v2"), ("cfg/3", b"marker")]

    await a.publish("cfg/1", b"", retain=True)  # clears; subscribers get the empty payload
    await eventually(lambda: ("cfg/1", b"") in got_b, what="clearing message")
    await a.publish("cfg/2", b"not retained, empty", retain=False)
    got_c: Received = []
    await c.subscribe("cfg/+", collector(got_c))
    await eventually(lambda: ("cfg/3", b"marker") in got_c, what="retained marker")
    await a.publish("cfg/end", b"end")
    await eventually(lambda: ("cfg/end", b"end") in got_c, what="sentinel")
    assert got_c == [("cfg/3", b"marker"), ("cfg/end", b"end")]


async def test_a_second_subscription_gets_the_retained_messages_again(net: Net) -> None:
    """As brokers do on every SUBSCRIBE: retained messages come again, to every callback of
    the transport whose filter matches (not only to the new one)."""
    a, b = await net.started(1, 2)
    await a.publish("cfg/1", b"v", retain=True)
    first: Received = []
    second: Received = []
    await b.subscribe("cfg/1", collector(first))
    await eventually(lambda: first == [("cfg/1", b"v")], what="first retained")
    await b.subscribe("cfg/1", collector(second))
    await eventually(lambda: second == [("cfg/1", b"v")], what="second retained")
    await eventually(lambda: len(first) == 2, what="first callback again")


async def test_subscriptions_made_before_start_take_effect_on_start(net: Net) -> None:
    (a,) = await net.started(1)
    await a.publish("cfg/1", b"kept", retain=True)
    b = net.transport(2)
    got: Received = []
    await b.subscribe("cfg/+", collector(got))
    await b.start()
    await eventually(lambda: got == [("cfg/1", b"kept")], what="retained after start")
    await a.publish("cfg/2", b"live")
    await eventually(lambda: ("cfg/2", b"live") in got, what="live after start")


# --- unsubscribe and failing callbacks -------------------------------------------------------


async def test_unsubscribe_one_callback_or_all(net: Net) -> None:
    a, b = await net.started(1, 2)
    one: Received = []
    two: Received = []
    events: Received = []
    cb_one, cb_two = collector(one), collector(two)
    await b.subscribe("node/2/control", cb_one)
    await b.subscribe("node/2/control", cb_two)
    await b.subscribe("app/+", collector(events))
    await a.publish("node/2/control", b"both")
    await a.publish("app/1", b"e1")
    await eventually(lambda: len(two) == 1 and len(events) == 1, what="first round")

    await b.unsubscribe("node/2/control", cb_one)
    await b.unsubscribe("app/+")
    await b.unsubscribe("never/subscribed")  # a no-op
    await a.publish("app/1", b"e2")
    await a.publish("node/2/control", b"only two")
    await eventually(lambda: len(two) == 2, what="second round")
    assert one == [("node/2/control", b"both")]
    assert two == [("node/2/control", b"both"), ("node/2/control", b"only two")]
    assert events == [("app/1", b"e1")]

    await b.unsubscribe("node/2/control", cb_two)
    await b.subscribe("app/+", collector(events))
    await a.publish("node/2/control", b"nobody")
    await a.publish("app/1", b"e3")
    await eventually(lambda: len(events) == 2, what="sentinel")
    assert len(two) == 2


async def test_a_raising_callback_is_counted_and_others_still_get_everything(net: Net) -> None:
    a, b = await net.started(1, 2)
    good: Received = []
    rpc: Received = []

    def bad(topic: str, payload: bytes) -> None:
        raise RuntimeError("callback bug")

    await b.subscribe("app/+", bad)
    await b.subscribe("app/+", collector(good))
    await b.subscribe("node/2/rpc", collector(rpc))
    for i in range(3):
        await a.publish(f"app/{i}", str(i))
    await a.publish("node/2/rpc", b"still here")
    await eventually(lambda: len(good) == 3 and len(rpc) == 1, what="delivery")
    assert [p for _, p in good] == [b"0", b"1", b"2"]
    assert b.stats.callback_errors == 3
    assert b.stats.publishes_received == 4
    assert b.stats.as_dict()["callback_errors"] == 3


# --- presence and last will ------------------------------------------------------------------


async def test_presence_and_the_last_will_on_abort(net: Net) -> None:
    (watcher,) = await net.started(1)
    seen: Received = []
    await watcher.subscribe("presence/+", collector(seen))
    t = net.transport(6, presence_info={"host": "lab-pc"})
    await t.start()
    await eventually(lambda: any(d["alive"] for d in presence_docs(seen, 6)), what="alive")
    alive = presence_docs(seen, 6)[-1]
    assert alive["node"] == 6 and alive["cluster"] == "lab" and alive["v"] == 1
    assert alive["host"] == "lab-pc" and alive["client_id"] == t.client_id
    t.send([Heartbeat(0, 6, 1, 1, 0)])  # queued Raft traffic is lost with the crash
    await t.abort()
    assert not t.running
    await eventually(lambda: presence_docs(seen, 6)[-1]["alive"] is False, what="last will")
    assert presence_docs(seen, 6)[-1]["reason"] == "connection lost"
    late: Received = []
    await watcher.subscribe("presence/6", collector(late))
    await eventually(lambda: bool(presence_docs(late, 6)), what="retained will")
    assert presence_docs(late, 6)[-1]["alive"] is False
    with pytest.raises(TransportError, match="not running"):
        await t.publish("app/1", b"x")
    await t.abort()  # twice is harmless
    await t.close()


async def test_clean_close_says_goodbye_and_no_last_will_follows(net: Net) -> None:
    (watcher,) = await net.started(1)
    seen: Received = []
    await watcher.subscribe("presence/+", collector(seen))
    await watcher.subscribe("app/end", collector(seen))
    t = net.transport(5)
    await t.start()
    await eventually(lambda: any(d["alive"] for d in presence_docs(seen, 5)), what="alive")
    await t.close()
    await eventually(lambda: presence_docs(seen, 5)[-1]["alive"] is False, what="goodbye")
    await watcher.publish("app/end", b"sentinel")
    await eventually(lambda: ("app/end", b"sentinel") in seen, what="sentinel")
    docs = presence_docs(seen, 5)
    assert [d["alive"] for d in docs] == [True, False]
    assert docs[-1]["reason"] == "closed"
    late: Received = []
    await watcher.subscribe("presence/5", collector(late))
    await eventually(lambda: bool(presence_docs(late, 5)), what="retained goodbye")
    assert presence_docs(late, 5) == [docs[-1]]


# --- what the fault filter does not touch, raw Raft payloads, misuse -------------------------


async def test_the_fault_filter_acts_on_raft_traffic_only(net: Net) -> None:
    a, b = await net.started(1, 2)
    inbox: list[Message] = []
    b.on_message = inbox.append
    got: Received = []
    await b.subscribe("node/2/rpc", collector(got))
    a.faults.block(2)
    b.faults.block(1)
    a.faults.drop_rate = 1.0
    a.send([Heartbeat(0, 1, 2, 1, 0)])
    await a.publish("node/2/rpc", b"through the partition")
    await eventually(lambda: len(got) == 1, what="rpc across a partition")
    assert inbox == []
    assert a.stats.dropped[DropReason.PARTITION] == 1


async def test_a_raw_payload_published_on_a_raft_topic_reaches_raft(net: Net) -> None:
    a, b = await net.started(1, 2)
    inbox: list[Message] = []
    b.on_message = inbox.append
    await a.publish("node/2/raft", encode_batch(1, [Heartbeat(0, 1, 2, 1, 7)]), qos=0)
    await a.publish("node/2/raft", b"not json", qos=0)
    await eventually(lambda: len(inbox) == 1 and b.stats.malformed == 1, what="raw raft")
    assert inbox == [Heartbeat(0, 1, 2, 1, 7)]


async def test_misuse_is_an_error(net: Net) -> None:
    t = net.transport(1)
    with pytest.raises(TransportError, match="not running"):
        await t.publish("app/1", b"x")
    with pytest.raises(TransportError, match="not running"):
        t.publish_nowait("app/1", b"x")
    await t.start()
    with pytest.raises(ConfigError, match="wildcard"):
        await t.publish("app/+", b"x")
    with pytest.raises(ConfigError, match="wildcard"):
        t.publish_nowait("app/#", b"x")
    with pytest.raises(ConfigError, match="qos"):
        t.publish_nowait("app/1", b"x", qos=3)
    with pytest.raises(ConfigError, match="qos"):
        await t.subscribe("app/1", collector([]), qos=-1)
    for bad in ("app/a+", "app/#/x", "app#", "/app", ""):
        with pytest.raises(ConfigError):
            await t.subscribe(bad, collector([]))
    await t.close()
    with pytest.raises(TransportError, match="not running"):
        t.publish_nowait("app/1", b"x")


async def test_overlapping_filters_of_one_transport(net: Net) -> None:
    """The one known difference between brokers: a message matching two filters of one
    transport reaches a callback once with Mosquitto and memory, twice with amqtt (it sends one
    copy per matching subscription). The node layer must not subscribe overlapping filters
    where a duplicate would matter."""
    a, b = await net.started(1, 2)
    wide: Received = []
    narrow: Received = []
    await b.subscribe("app/#", collector(wide))
    await b.subscribe("app/+", collector(narrow))
    await a.publish("app/1", b"x")
    await a.publish("app/1/end", b"end")  # matches only app/#
    await eventually(lambda: ("app/1/end", b"end") in wide, what="sentinel")
    copies = 2 if net.kind == "embedded" else 1
    assert wide.count(("app/1", b"x")) == copies
    assert narrow == [("app/1", b"x")] * copies


# --- memory specifics ------------------------------------------------------------------------


async def test_memory_network_keeps_retained_messages_per_topic() -> None:
    network = MemoryNetwork(cluster="other")
    t = network.transport(1)
    async with t:
        assert t.topics.root == "raftoral/other"
        assert json.loads(network.retained("presence/1") or b"")["alive"] is True
        await t.publish("cfg/1", b"v", retain=True)
        assert network.retained("cfg/1") == b"v"
        await t.publish("cfg/1", b"", retain=True)
        assert network.retained("cfg/1") is None
    assert json.loads(network.retained("presence/1") or b"")["reason"] == "closed"
    assert network.nodes == frozenset()


async def test_memory_abort_loses_pending_raft_messages_and_frees_the_node_id() -> None:
    network = MemoryNetwork()
    a, b = network.transport(1), network.transport(2)
    inbox: list[Message] = []
    b.on_message = inbox.append
    async with b:
        await a.start()
        a.send([Heartbeat(0, 1, 2, 1, 0)])
        await a.abort()
        assert a.stats.dropped[DropReason.CLOSED] == 1
        await asyncio.sleep(0)
        assert inbox == []
        again = network.transport(1)  # a restarted node may attach under the same id
        async with again:
            again.send([Heartbeat(0, 1, 2, 1, 3)])
            await again.flush()
            assert inbox == [Heartbeat(0, 1, 2, 1, 3)]
