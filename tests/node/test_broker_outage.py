"""A broker outage (issue 4, part 3): three in-process nodes on a private Mosquitto lose the
broker for about three seconds; when it is back on the same port the cluster recovers, commits
again, and no committed entry is lost."""

from __future__ import annotations

import asyncio

import pytest

from raftoral_lab.transport.mosquitto import MosquittoProcess
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, commands, wait_until

pytestmark = pytest.mark.mosquitto

OUTAGE = 3.0


async def test_cluster_recovers_from_a_broker_outage_without_losing_commits(
    mosquitto: MosquittoProcess,
) -> None:
    transports: dict[int, MqttTransport] = {}

    def make_transport(node_id: int) -> MqttTransport:
        # reconnect attempts at most every half second, so recovery does not wait on backoff
        transports[node_id] = MqttTransport(
            node_id, CLUSTER, mosquitto.url, backoff_initial=0.05, backoff_max=0.5
        )
        return transports[node_id]

    async with LocalCluster(make_transport) as cluster:
        leader = await cluster.leader()
        before = [f"before {i}".encode() for i in range(20)]
        for i, command in enumerate(before):
            await cluster.nodes[1 + i % 3].propose(command, timeout=10)
        assert await cluster.converged() == before

        await mosquitto.stop()
        await wait_until(
            lambda: not any(t.connected for t in transports.values()),
            timeout=10,
            what="every node to notice the broker is gone",
        )
        # a proposal made during the outage waits for a leader (it cannot commit meanwhile)
        during = asyncio.ensure_future(leader.propose(b"during the outage", timeout=30))
        await asyncio.sleep(OUTAGE)  # the outage itself: the scenario's length, not a wait
        assert not during.done(), during
        assert all(commands(n)[: len(before)] == before for n in cluster.nodes.values())
        await mosquitto.start()

        await wait_until(
            lambda: all(t.connected for t in transports.values()),
            timeout=20,
            what="every node to reconnect",
            detail=lambda: {i: t.last_error for i, t in transports.items()},
        )
        assert all(t.stats.reconnects >= 1 for t in transports.values())
        await cluster.leader(timeout=20)
        await asyncio.wait_for(during, 30)

        after = [f"after {i}".encode() for i in range(20)]
        for i, command in enumerate(after):
            await cluster.nodes[1 + i % 3].propose(command, timeout=10)
        final = await cluster.converged()
        # nothing committed before the outage is lost; what came later follows it in order
        assert final[: len(before)] == before, final
        assert b"during the outage" in final[len(before) :], final
        assert [c for c in final if c.startswith(b"after")] == after, final
        assert set(final) == {*before, b"during the outage", *after}, final
