"""A partition made through the control topic (issue 4, part 4): a client publishes
`partition` controls that cut the leader off from the other two; the minority makes no
progress while the majority elects a leader and commits; `heal` brings the logs together."""

from __future__ import annotations

import json

import pytest

from raftoral_lab.core import Role
from raftoral_lab.errors import ProposalTimeout
from raftoral_lab.transport.mosquitto import MosquittoProcess
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, client_transport, commands, events_of, wait_until

pytestmark = pytest.mark.mosquitto


async def control(client: MqttTransport, node: int, body: dict[str, object]) -> None:
    await client.publish(f"node/{node}/control", json.dumps({"v": 1} | body), qos=1)


async def test_partition_and_heal_through_the_control_topic(mosquitto: MosquittoProcess) -> None:
    async with (
        LocalCluster(lambda i: MqttTransport(i, CLUSTER, mosquitto.url)) as cluster,
        client_transport(mosquitto.url) as client,
    ):
        old = await cluster.leader()
        majority = [n for n in cluster.nodes if n != old.id]
        before = [f"before {i}".encode() for i in range(10)]
        for command in before:
            await old.propose(command, timeout=10)
        assert await cluster.converged() == before

        # cut the leader off from the other two, in both directions, through each node's control
        await control(client, old.id, {"op": "partition", "blocked": majority})
        for node in majority:
            await control(client, node, {"op": "partition", "blocked": [old.id]})
        await wait_until(
            lambda: all(events_of(n, "partitioned") for n in cluster.nodes.values()),
            timeout=10,
            what="every node to apply its partition control",
        )
        assert sorted(old.transport.faults.blocked) == majority
        frozen = old.status().commit_index

        # the minority cannot commit: a proposal on the old leader times out
        with pytest.raises(ProposalTimeout):
            await old.propose(b"from the minority", timeout=1.0)

        # the majority elects a leader of its own and commits
        new = await cluster.leader(majority, timeout=20)
        assert new.id != old.id
        during = [f"during {i}".encode() for i in range(10)]
        for i, command in enumerate(during):
            await cluster.nodes[majority[i % 2]].propose(command, timeout=10)
        assert await cluster.converged(majority) == before + during
        assert old.status().commit_index == frozen, cluster.picture()
        assert commands(old) == before
        # with CheckQuorum the cut-off leader steps down: no stale leader goes on accepting
        await wait_until(
            lambda: old.status().role is not Role.LEADER,
            timeout=10,
            what="the old leader to step down",
        )

        # heal everyone: the logs converge on the majority's
        for node in cluster.nodes:
            await control(client, node, {"op": "heal"})
        await wait_until(
            lambda: all(events_of(n, "healed") for n in cluster.nodes.values()),
            timeout=10,
            what="every node to apply heal",
        )
        assert not old.transport.faults.blocked
        after = [b"after the heal"]
        await old.propose(after[0], timeout=10)
        final = await cluster.converged(timeout=20)
        assert final == before + during + after, cluster.picture()
        assert b"from the minority" not in final
        await cluster.leader()  # all three agree on one leader again
