"""MemoryTransport: delivery, batching, faults, counters, and the wire form when asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from raftoral_lab.core.messages import AppendEntries, Heartbeat, Message, RequestVote
from raftoral_lab.core.types import Entry
from raftoral_lab.errors import TransportError
from raftoral_lab.transport import DropReason, FaultFilter, MemoryNetwork, MemoryTransport
from raftoral_lab.transport.codec import encode_batch


def hb(src: int, dst: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(0, src, dst, 1, commit)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        self.messages.append(msg)
        self.arrived.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Message]:
        async def until() -> None:
            while len(self.messages) < n:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)
        return self.messages


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


Cluster = tuple[MemoryNetwork, dict[int, MemoryTransport], dict[int, Inbox]]


async def make_cluster(n: int = 3, **kw: bool) -> Cluster:
    net = MemoryNetwork(**kw)
    ts: dict[int, MemoryTransport] = {}
    boxes: dict[int, Inbox] = {}
    for i in range(1, n + 1):
        t = net.transport(i, faults=FaultFilter(seed=i))
        boxes[i] = Inbox()
        t.on_message = boxes[i]
        await t.start()
        ts[i] = t
    return net, ts, boxes


@pytest.fixture(params=[False, True], ids=["objects", "codec"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    net, ts, boxes = await make_cluster(3, codec=request.param)
    yield net, ts, boxes
    for t in ts.values():
        await t.close()


async def test_messages_arrive_in_order(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    sent = [hb(1, 2, i) for i in range(10)] + [hb(1, 3, 99)]
    ts[1].send(sent)
    assert await boxes[2].wait_for(10) == sent[:10]
    assert await boxes[3].wait_for(1) == sent[10:]
    assert ts[1].stats.sent == 11 and ts[2].stats.received == 10


async def test_send_is_asynchronous(cluster: Cluster) -> None:
    """Delivery never happens inside send: a handler that sends is not re-entered."""
    _, ts, boxes = cluster
    ts[1].send([hb(1, 2)])
    assert boxes[2].messages == []
    await settle()
    assert len(boxes[2].messages) == 1


async def test_batching_one_delivery_per_destination(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    for i in range(50):  # many send calls in one loop iteration
        ts[1].send([hb(1, 2, i)])
    ts[1].send([hb(1, 3, i) for i in range(30)])
    await boxes[2].wait_for(50)
    await boxes[3].wait_for(30)
    assert ts[1].stats.batches_sent == 2
    assert ts[2].stats.batches_received == 1 and ts[3].stats.batches_received == 1


async def test_partition_and_heal(cluster: Cluster) -> None:
    net, ts, boxes = cluster
    drops: list[tuple[str, int, int, str]] = []
    ts[1].on_drop = lambda *a: drops.append(a)
    net.partition({1}, {2, 3})
    ts[1].send([hb(1, 2), hb(1, 3)])
    ts[2].send([hb(2, 1), hb(2, 3)])
    await settle()
    assert boxes[2].messages == [] and boxes[1].messages == []
    assert boxes[3].messages == [hb(2, 3)]
    assert ts[1].stats.dropped[DropReason.PARTITION] == 2
    assert drops == [("heartbeat", 1, 2, "partition"), ("heartbeat", 1, 3, "partition")]
    net.heal()
    ts[1].send([hb(1, 2)])
    assert await boxes[2].wait_for(1) == [hb(1, 2)]


async def test_one_sided_block_cuts_both_directions(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    ts[3].faults.block(1)  # only node 3 knows about the partition
    ts[1].send([hb(1, 3)])
    await settle()
    assert boxes[3].messages == []
    assert ts[3].stats.dropped["partition"] == 1  # dropped on arrival
    assert ts[1].stats.sent == 1


async def test_isolate(cluster: Cluster) -> None:
    net, ts, boxes = cluster
    net.isolate(2)
    for src in (1, 3):
        ts[src].send([hb(src, 2)])
    ts[2].send([hb(2, 1), hb(2, 3)])
    ts[1].send([hb(1, 3)])
    await settle()
    assert boxes[2].messages == [] and boxes[1].messages == []
    assert boxes[3].messages == [hb(1, 3)]


async def test_drop_rate_is_counted(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    ts[1].faults.drop_rate = 0.5
    ts[1].send([hb(1, 2, i) for i in range(1000)])
    await settle()
    dropped = ts[1].stats.dropped[DropReason.DROP_RATE]
    assert 350 < dropped < 650
    assert len(boxes[2].messages) == 1000 - dropped == ts[2].stats.received


async def test_delay_postpones_and_reorders(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    ts[1].faults.set_delay(0.0, 0.05)
    sent = [hb(1, 2, i) for i in range(40)]
    ts[1].send(sent)
    await settle()
    got = await boxes[2].wait_for(40)
    assert sorted(got, key=lambda m: m.commit) == sent  # type: ignore[union-attr]
    assert got != sent  # 40 random delays practically never keep the order


async def test_unreachable_destination(cluster: Cluster) -> None:
    _, ts, _ = cluster
    ts[1].send([hb(1, 9)])
    await settle()
    assert ts[1].stats.dropped[DropReason.UNREACHABLE] == 1


async def test_closed_peer_is_unreachable_and_delayed_messages_are_dropped_on_close(
    cluster: Cluster,
) -> None:
    net, ts, _ = cluster
    await ts[3].close()
    assert net.nodes == {1, 2}
    ts[1].faults.set_delay(10.0)
    ts[1].send([hb(1, 2)])
    ts[1].faults.set_delay(0.0)
    ts[1].send([hb(1, 3)])
    await settle()
    assert ts[1].stats.dropped[DropReason.UNREACHABLE] == 1
    await ts[1].close()
    assert ts[1].stats.dropped[DropReason.CLOSED] == 1
    ts[1].send([hb(1, 2)])  # after close: dropped, not raised
    assert ts[1].stats.dropped[DropReason.CLOSED] == 2


async def test_no_handler_and_failing_handler(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    ts[2].on_message = None
    ts[1].send([hb(1, 2)])
    await settle()
    assert ts[2].stats.dropped[DropReason.NO_HANDLER] == 1

    def boom(msg: Message) -> None:
        raise RuntimeError("handler bug")

    ts[2].on_message = boom
    ts[1].send([hb(1, 2), hb(1, 2)])
    await settle()
    assert ts[2].stats.handler_errors == 2
    ts[2].on_message = boxes[2]
    ts[1].send([hb(1, 2, 5)])
    assert await boxes[2].wait_for(1) == [hb(1, 2, 5)]


async def test_handler_may_send_back(cluster: Cluster) -> None:
    _, ts, boxes = cluster

    def echo(msg: Message) -> None:
        ts[2].send([hb(2, msg.src, 7)])

    ts[2].on_message = echo
    ts[1].send([hb(1, 2)])
    assert await boxes[1].wait_for(1) == [hb(2, 1, 7)]


async def test_misuse_raises() -> None:
    net = MemoryNetwork()
    t = net.transport(1)
    with pytest.raises(TransportError, match="not started"):
        t.send([hb(1, 2)])
    async with t:
        with pytest.raises(TransportError, match="src is node 5"):
            t.send([hb(5, 2)])
        with pytest.raises(TransportError, match="already attached"):
            await net.transport(1).start()
    assert not t.running
    with pytest.raises(TransportError, match="closed"):
        await t.start()


async def test_codec_mode_carries_the_wire_form() -> None:
    _, ts, boxes = await make_cluster(2, codec=True)
    big = AppendEntries(0, 1, 2, 3, 0, 0, tuple(Entry(i, 3, b"\x00" * 10) for i in range(1, 6)), 0)
    vote = RequestVote(0, 1, 2, 4, 5, 3, pre_vote=True)
    ts[1].send([big, vote])
    assert await boxes[2].wait_for(2) == [big, vote]
    assert ts[1].stats.batches_sent == 1


async def test_codec_mode_drops_a_message_too_large() -> None:
    net = MemoryNetwork(codec=True, max_payload_bytes=2000)
    a, b = net.transport(1), net.transport(2)
    inbox = Inbox()
    b.on_message = inbox
    async with a, b:
        huge = AppendEntries(0, 1, 2, 3, 0, 0, (Entry(1, 3, b"x" * 4000),), 0)
        a.send([huge, hb(1, 2)])
        assert await inbox.wait_for(1) == [hb(1, 2)]
        assert a.stats.dropped[DropReason.TOO_LARGE] == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"garbage", "not JSON"),
        (encode_batch(1, [hb(1, 3)]), "not for this node"),
        (json.dumps({"v": 99, "src": 1, "msgs": []}).encode(), "newer than ours"),
    ],
)
async def test_malformed_payloads_are_counted_not_fatal(raw: bytes, reason: str) -> None:
    _, ts, boxes = await make_cluster(2, codec=True)
    reasons: list[str] = []
    ts[2].on_malformed = reasons.append
    ts[2].receive_payload(raw)
    assert ts[2].stats.malformed == 1 and reason in (ts[2].stats.last_malformed or "")
    assert reasons and reason in reasons[0]
    ts[1].send([hb(1, 2)])
    assert await boxes[2].wait_for(1) == [hb(1, 2)]


async def test_on_drop_errors_do_not_break_sending(cluster: Cluster) -> None:
    _, ts, _ = cluster

    def bad(kind: str, src: int, dst: int, reason: str) -> None:
        raise ZeroDivisionError

    ts[1].on_drop = bad
    ts[1].faults.block(2)
    ts[1].send([hb(1, 2)])
    assert ts[1].stats.dropped["partition"] == 1


async def test_stats_as_dict_is_plain() -> None:
    _, ts, _ = await make_cluster(2)
    ts[1].faults.block(2)
    ts[1].send([hb(1, 2)])
    d = ts[1].stats.as_dict()
    assert d["dropped"] == {"partition": 1}
    assert type(next(iter(d["dropped"]))) is str
    assert json.dumps(d)


async def test_flush_delivers_pending_batches_now(cluster: Cluster) -> None:
    _, ts, boxes = cluster
    ts[1].send([hb(1, 2, 1), hb(1, 3, 2)])
    assert await ts[1].flush()
    assert boxes[2].messages == [hb(1, 2, 1)] and boxes[3].messages == [hb(1, 3, 2)]
