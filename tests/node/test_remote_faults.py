"""`drop_rate` and `delay` controls on `node/{id}/control` (docs/wire-protocol.md, Controls):
each sets the node's fault filter, acts on the node's own Raft traffic, and setting it back to
zero resets the filter. Runs on each transport.

A probe transport outside the cluster receives messages that the test sends through the
node's own transport, so what the filter does to them can be seen one message at a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from raftoral_lab.core.messages import Heartbeat, Message
from raftoral_lab.node import Node
from raftoral_lab.transport import DropReason
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, events_of, wait_until

CONTROLLER = 1_000_000_801
PROBE = 1_000_000_802
Wiring = Callable[..., Transport]


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def wiring(request: pytest.FixtureRequest) -> Wiring:
    """`wiring(node_id, presence=True)`: a transport of this test's network."""
    if request.param == "memory":
        network = MemoryNetwork(codec=True, cluster=CLUSTER)
        return lambda node_id, presence=True: network.transport(node_id, presence=presence)
    fixture = "embedded_broker" if request.param == "embedded" else "mosquitto"
    url: str = request.getfixturevalue(fixture).url
    return lambda node_id, presence=True: MqttTransport(node_id, CLUSTER, url, presence=presence)


async def control(client: Transport, node: int, body: dict[str, object]) -> None:
    await client.publish(f"node/{node}/control", json.dumps({"v": 1} | body), qos=1)


def commit(message: Message) -> int:
    assert isinstance(message, Heartbeat), message
    return message.commit


def probes(node: Node, commits: range) -> list[Message]:
    """Heartbeats from `node` to the probe, numbered by their commit field."""
    term = node.status().term
    return [Heartbeat(0, node.id, PROBE, term, number) for number in commits]


async def test_drop_rate_control_drops_the_nodes_raft_traffic_until_reset(
    wiring: Wiring,
) -> None:
    async with (
        LocalCluster(wiring) as cluster,
        wiring(CONTROLLER, presence=False) as client,
        wiring(PROBE, presence=False) as probe,
    ):
        arrived: list[Message] = []
        probe.on_message = arrived.append
        leader = await cluster.leader()
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        stats, faults = follower.transport.stats, follower.transport.faults
        await leader.propose(b"before", timeout=10)
        assert stats.dropped[DropReason.DROP_RATE] == 0

        await control(client, follower.id, {"op": "drop_rate", "rate": 1.0})
        await wait_until(lambda: faults.drop_rate == 1.0, timeout=10, what="drop rate 1.0")
        assert faults.delay == (0.0, 0.0) and not faults.blocked
        # the follower's own answers to the leader's heartbeats are lost from now on
        await wait_until(
            lambda: stats.dropped[DropReason.DROP_RATE] >= 5,
            timeout=10,
            what="the follower's Raft messages to be dropped",
            detail=lambda: dict(stats.dropped),
        )
        assert events_of(follower, "message_dropped", reason="drop_rate", dst=leader.id)
        # every message is dropped, and counted, at once
        before = stats.dropped[DropReason.DROP_RATE]
        follower.transport.send(probes(follower, range(10)))
        assert stats.dropped[DropReason.DROP_RATE] == before + 10
        # the leader and the other follower still make a majority
        await leader.propose(b"without the follower's answers", timeout=10)

        await control(client, follower.id, {"op": "drop_rate", "rate": 0})
        await wait_until(lambda: faults.drop_rate == 0.0, timeout=10, what="drop rate back to 0")
        assert not faults.active
        settled = stats.dropped[DropReason.DROP_RATE]
        follower.transport.send(probes(follower, range(10, 11)))
        await wait_until(lambda: arrived, timeout=10, what="the probe sent after the reset")
        assert [commit(m) for m in arrived] == [10]
        assert stats.dropped[DropReason.DROP_RATE] == settled
        await follower.propose(b"after", timeout=10)
        commands = [b"before", b"without the follower's answers", b"after"]
        assert await cluster.converged() == commands


async def test_delay_control_holds_the_nodes_raft_traffic_back_until_reset(
    wiring: Wiring,
) -> None:
    loop = asyncio.get_running_loop()
    async with (
        LocalCluster(wiring) as cluster,
        wiring(CONTROLLER, presence=False) as client,
        wiring(PROBE, presence=False) as probe,
    ):
        arrived: list[tuple[float, int]] = []
        probe.on_message = lambda m: arrived.append((loop.time(), commit(m)))
        leader = await cluster.leader()
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        faults = follower.transport.faults

        low, high = 0.2, 0.4
        await control(client, follower.id, {"op": "delay", "low": low, "high": high})
        await wait_until(lambda: faults.delay == (low, high), timeout=10, what="the delay range")
        assert faults.drop_rate == 0.0 and not faults.blocked
        count = 20
        sent_at = loop.time()
        follower.transport.send(probes(follower, range(count)))
        await wait_until(lambda: len(arrived) == count, timeout=10, what="the delayed probes")
        # late: none arrived before the low end of the range (the loop's clock, not a speed)
        assert min(t for t, _ in arrived) - sent_at >= low - 0.005, arrived
        order = [number for _, number in arrived]
        assert sorted(order) == list(range(count))
        assert order != list(range(count)), "20 random delays kept the order of sending"
        # the node's own traffic is delayed too, yet the cluster commits (a majority is prompt)
        await follower.propose(b"with a slow follower", timeout=10)
        assert follower.transport.stats.dropped_total == 0

        await control(client, follower.id, {"op": "delay", "low": 0})
        await wait_until(lambda: faults.delay == (0.0, 0.0), timeout=10, what="no delay")
        assert not faults.active
        arrived.clear()
        sent_at = loop.time()
        follower.transport.send(probes(follower, range(count, count + 5)))
        await wait_until(lambda: len(arrived) == 5, timeout=10, what="the probes after the reset")
        assert [number for _, number in arrived] == list(range(count, count + 5))
        assert await cluster.converged() == [b"with a slow follower"]
