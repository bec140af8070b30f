"""The fault filter's drop rate and delay on MqttTransport, without any partition: what the
memory transport's tests show, over a real broker (embedded and Mosquitto, see conftest)."""

from __future__ import annotations

import asyncio
from typing import Any

from raftoral_lab.core.messages import Heartbeat, Message
from raftoral_lab.transport import DropReason
from raftoral_lab.transport.faults import FaultFilter
from raftoral_lab.transport.mqtt import MqttTransport

from .conftest import Broker

EPSILON = 0.005
"""Slack for the event loop's clock when a delayed message is compared with its delay."""


def hb(src: int, dst: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(0, src, dst, 1, commit)


def commit(message: Message) -> int:
    assert isinstance(message, Heartbeat), message
    return message.commit


def transport(node: int, broker: Broker, **kw: Any) -> MqttTransport:
    kw.setdefault("connect_timeout", 10.0)
    return MqttTransport(node, "lab", broker.url, **kw)


async def eventually(cond: Any, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_drop_rate_one_delivers_nothing_and_counts_every_message(broker: Broker) -> None:
    a, b = transport(1, broker), transport(2, broker)
    arrived: list[Message] = []
    b.on_message = arrived.append
    drops: list[tuple[str, int, int, str]] = []
    a.on_drop = lambda *args: drops.append(args)
    async with a, b:
        a.faults.drop_rate = 1.0
        n = 50
        a.send([hb(1, 2, i) for i in range(n)])
        assert a.stats.dropped[DropReason.DROP_RATE] == n
        assert a.stats.dropped_total == n
        assert drops == [("heartbeat", 1, 2, "drop_rate")] * n
        assert a.stats.sent_by_group[0] == 0  # nothing got past the filter

        # a marker sent once the rate is back to 0 arrives, and it arrives alone
        a.faults.drop_rate = 0.0
        a.send([hb(1, 2, n)])
        await eventually(lambda: arrived, "the marker")
        # one publisher, one subscriber: had any of the 50 been published, it came first
        assert arrived == [hb(1, 2, n)]
        assert a.stats.sent == 1 and b.stats.received == 1
        assert a.stats.dropped[DropReason.DROP_RATE] == n


async def test_a_partial_drop_rate_loses_exactly_what_it_counts(broker: Broker) -> None:
    a, b = transport(1, broker, faults=FaultFilter(seed=11, drop_rate=0.5)), transport(2, broker)
    arrived: list[Message] = []
    b.on_message = arrived.append
    async with a, b:
        n = 400
        a.send([hb(1, 2, i) for i in range(n)])
        dropped = a.stats.dropped[DropReason.DROP_RATE]
        assert 100 < dropped < 300, dropped  # a seeded filter: about half
        await eventually(lambda: len(arrived) == n - dropped, f"{n - dropped} messages")
        commits = [commit(m) for m in arrived]
        assert commits == sorted(commits)  # no delay: what is left keeps its order
        assert a.stats.sent == n - dropped


async def test_a_delay_range_delivers_late_and_out_of_order(broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    a, b = transport(1, broker), transport(2, broker)
    arrived: list[tuple[float, int]] = []
    b.on_message = lambda m: arrived.append((loop.time(), commit(m)))
    async with a, b:
        low, high = 0.2, 0.5
        a.faults.set_delay(low, high)
        n = 30
        sent_at = loop.time()
        a.send([hb(1, 2, i) for i in range(n)])
        assert a.stats.sent == 0  # held back, not yet handed to the broker
        await eventually(lambda: len(arrived) == n, f"{n} delayed messages")
        assert all(t - sent_at >= low - EPSILON for t, _ in arrived), (sent_at, arrived)
        order = [number for _, number in arrived]
        assert sorted(order) == list(range(n))
        assert order != list(range(n)), "30 random delays kept the order of sending"
        assert a.stats.dropped_total == 0

        # a fixed delay postpones every message by the same time: the order stays
        arrived.clear()
        a.faults.set_delay(low)
        assert a.faults.delay == (low, low)
        sent_at = loop.time()
        a.send([hb(1, 2, i) for i in range(n, n + 10)])
        await eventually(lambda: len(arrived) == 10, "10 messages with a fixed delay")
        assert all(t - sent_at >= low - EPSILON for t, _ in arrived), (sent_at, arrived)
        assert [number for _, number in arrived] == list(range(n, n + 10))
