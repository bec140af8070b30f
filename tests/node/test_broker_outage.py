"""A broker outage (issue 4, part 3): three in-process nodes on a private Mosquitto lose the
broker for about three seconds; when it is back on the same port the cluster recovers, commits
again, and no committed entry is lost. Each node says so in its events (`broker_disconnected`,
then `broker_reconnected`), and its publisher hands both to the broker once it is back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raftoral_lab.events import BrokerDisconnected, BrokerReconnected, ClusterView, parse_event
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.transport.mosquitto import MosquittoProcess
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, commands, wait_until

pytestmark = pytest.mark.mosquitto

OUTAGE = 3.0


class RecordingTransport(MqttTransport):
    """Keeps each event line handed over for publishing, with whether the broker was there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.event_lines: list[tuple[bool, str]] = []

    def publish_nowait(
        self, topic_suffix: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        if topic_suffix.startswith("events/"):
            text = payload.decode() if isinstance(payload, bytes) else payload
            self.event_lines += [(self.connected, line) for line in text.split("\n")]
        super().publish_nowait(topic_suffix, payload, qos, retain)


async def test_cluster_recovers_from_a_broker_outage_without_losing_commits(
    mosquitto: MosquittoProcess,
) -> None:
    transports: dict[int, RecordingTransport] = {}

    def make_transport(node_id: int) -> MqttTransport:
        # reconnect attempts at most every half second, so recovery does not wait on backoff
        transports[node_id] = RecordingTransport(
            node_id, CLUSTER, mosquitto.url, backoff_initial=0.05, backoff_max=0.5
        )
        return transports[node_id]

    async with LocalCluster(make_transport) as cluster:
        publishers = [EventPublisher(node) for node in cluster.nodes.values()]
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
        for node in cluster.nodes.values():
            said = [e for e in node.events if isinstance(e, BrokerDisconnected | BrokerReconnected)]
            assert [e.kind for e in said] == ["broker_disconnected", "broker_reconnected"], said
            assert {e.broker for e in said} == {transports[node.id].broker_url}
            assert isinstance(said[0], BrokerDisconnected) and said[0].reason  # why it broke
        for publisher in publishers:
            transport = transports[publisher.node.id]
            assert await transport.flush(10), transport.last_error  # all of it handed over
            assert publisher.lost == 0 and publisher.failed == 0, publisher
            published = [(up, parse_event(line)) for up, line in transport.event_lines]
            kinds = [e.kind for _, e in published]
            outage = kinds.index("broker_disconnected")
            assert kinds.index("broker_reconnected") > outage, kinds
            # the outage went out once the broker was back, in the node's order
            assert all(up for up, _ in published[outage:]), published[outage:]
            seqs = [e.seq for _, e in published]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            view = ClusterView([e for _, e in published]).nodes[publisher.node.id]
            assert (view.broker_connected, view.broker_disconnects) == (True, 1)
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
