"""Three `Node`s in one process elect a leader and replicate 100 proposals, over each transport:
the memory network, the embedded broker and a private Mosquitto (issue 4, part 1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raftoral_lab.core import Role
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, LocalCluster, commands

PROPOSALS = 100


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def make_transport(request: pytest.FixtureRequest) -> Callable[[int], Transport]:
    """Transports of one network: memory (through the wire codec), or a broker's."""
    if request.param == "memory":
        network = MemoryNetwork(codec=True, cluster=CLUSTER)
        return lambda node_id: network.transport(node_id)
    fixture = "embedded_broker" if request.param == "embedded" else "mosquitto"
    url: str = request.getfixturevalue(fixture).url
    return lambda node_id: MqttTransport(node_id, CLUSTER, url)


async def test_three_nodes_elect_a_leader_and_commit_proposals_in_one_order(
    make_transport: Callable[[int], Transport],
) -> None:
    async with LocalCluster(make_transport) as cluster:
        leader = await cluster.leader()
        followers = [n for n in cluster.nodes.values() if n is not leader]
        assert all(n.status().role is Role.FOLLOWER for n in followers), cluster.picture()

        expected = [f"command {i}".encode() for i in range(PROPOSALS)]
        answers: list[int] = []
        for i, command in enumerate(expected):
            # two proposals in three are made on a follower, which forwards them to the leader
            proposer = leader if i % 3 == 0 else followers[i % 2]
            answer = await proposer.propose(command, timeout=10)
            # CommandLog answers each command with its log index: the order of the proposals
            assert isinstance(answer, int), answer
            answers.append(answer)

        assert answers == sorted(answers) and len(set(answers)) == PROPOSALS, answers

        committed = await cluster.converged()
        assert committed == expected, cluster.picture()
        for node in cluster.nodes.values():
            assert commands(node) == expected
            assert node.status().commit_index >= answers[-1]
        assert {n.leader() for n in cluster.nodes.values()} == {leader.id}
