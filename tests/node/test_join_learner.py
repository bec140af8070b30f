"""A node that joins is a learner first and a voter only later (what `raftoral-lab node --join`
does): the `join` request commits `add_learner`; the learner catches up without voting or
campaigning; the leader's auto-promotion then commits `add_voter`. Every node, the newcomer
included, records the two `membership_changed` events in that order."""

from __future__ import annotations

from raftoral_lab.core import Role
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, TICK, LocalCluster, commands, events_of, wait_until

CLIENT = 1_000_000_901
Membership = tuple[str, int, list[int], list[int]]
"""(op, target, voters, learners) of a `membership_changed` event."""


def memberships(node: Node) -> list[Membership]:
    return [
        (e.op, e.target, list(e.voters), list(e.learners))  # type: ignore[attr-defined]
        for e in events_of(node, "membership_changed")
    ]


async def test_a_joining_node_is_a_learner_until_the_leader_promotes_it() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with (
        LocalCluster(network.transport, auto_promote=False) as cluster,
        ClusterClient(network.transport(CLIENT, presence=False)) as client,
    ):
        leader = await cluster.leader()
        before = [f"before {i}".encode() for i in range(5)]
        for command in before:
            await leader.propose(command, timeout=10)
        await client.discover(timeout=10)

        new_id = await client.join(timeout=10)  # as `raftoral-lab node --join` asks
        assert new_id == 4
        assert sorted(leader.status().learners) == [4]
        assert sorted(leader.status().voters) == [1, 2, 3]

        newcomer = Node(4, network.transport(4), tick_seconds=TICK, auto_promote=False)
        async with newcomer:
            cluster.nodes[4] = newcomer
            assert await cluster.converged() == before  # it caught up as a learner...
            status = newcomer.status()
            assert sorted(status.learners) == [4] and 4 not in status.voters, status
            # ...and stays one while nobody promotes it: through several election timeouts
            # (counted in the leader's heartbeats, one per tick) it neither campaigns nor
            # counts, and commits go on without it
            for i in range(3):
                await leader.propose(f"learner {i}".encode(), timeout=10)
            received = newcomer.transport.stats.received
            ticks = 3 * leader.config.election_timeout
            await wait_until(
                lambda: newcomer.transport.stats.received >= received + ticks,
                timeout=10,
                what=f"{ticks} more messages from the leader",
            )
            assert newcomer.status().commit_index == leader.status().commit_index
            assert not events_of(newcomer, "election_started")
            assert newcomer.status().role is Role.FOLLOWER
            assert 4 not in leader.status().voters and 4 not in newcomer.status().voters

            # the leader's auto-promotion makes it a voter once it has caught up
            leader.auto_promote = True
            await wait_until(
                lambda: all(4 in n.status().voters for n in cluster.nodes.values()),
                timeout=10,
                what="node 4 to be promoted on every node",
                detail=cluster.picture,
            )
            await leader.propose(b"with four voters", timeout=10)
            final = await cluster.converged()
            assert final == [*before, *(f"learner {i}".encode() for i in range(3)),
                             b"with four voters"]  # fmt: skip
            assert commands(newcomer) == final

            learner: Membership = ("add_learner", 4, [1, 2, 3], [4])
            voter: Membership = ("add_voter", 4, [1, 2, 3, 4], [])
            for node in cluster.nodes.values():
                assert memberships(node) == [learner, voter], (node.id, memberships(node))
            # the newcomer saw itself a learner before a voter, in its own event order
            own = events_of(newcomer, "membership_changed")
            assert [e.op for e in own] == ["add_learner", "add_voter"]  # type: ignore[attr-defined]
            assert own[0].seq < own[1].seq
