"""Membership through `Node` in one process: leaving (a clean Ctrl-C) from a follower and from
the leader, and adding a member from a follower (forwarded to the leader)."""

from __future__ import annotations

from raftoral_lab.core import ConfChange, ConfChangeOp
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, TICK, LocalCluster, commands, wait_until


async def test_a_follower_and_then_the_leader_leave_the_cluster() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        leader = await cluster.leader()
        await leader.propose(b"three members", timeout=10)
        follower = next(n for n in cluster.nodes.values() if n is not leader)

        # the follower's removal is forwarded to the leader (a request naming a `node`)
        await follower.leave(timeout=10)
        assert not follower.running
        rest = [n for n in cluster.nodes if n != follower.id]
        await wait_until(
            lambda: all(sorted(cluster.nodes[n].status().voters) == rest for n in rest),
            timeout=10,
            what=f"nodes {rest} to drop node {follower.id} from their voters",
            detail=cluster.picture,
        )

        # the leader removes itself and hands over to the last one
        await leader.leave(timeout=10)
        (last_id,) = (n for n in rest if n != leader.id)
        last = cluster.nodes[last_id]
        await wait_until(
            lambda: sorted(last.status().voters) == [last_id], timeout=10, what="one voter left"
        )
        assert await cluster.leader([last_id]) is last
        await last.propose(b"alone", timeout=10)
        assert commands(last) == [b"three members", b"alone"]


async def test_a_member_added_to_an_idle_cluster_catches_up_and_is_promoted() -> None:
    """As `raftoral-lab node --join` and `Lab.join` do: the learner is added first, its node
    starts after. No proposal follows, so nothing but the leader's probing brings it along."""
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with LocalCluster(network.transport, compact_every=20) as cluster:
        leader = await cluster.leader()
        for i in range(45):
            await leader.propose(f"c{i}".encode(), timeout=10)
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        await follower.change_membership(ConfChange(ConfChangeOp.ADD_LEARNER, 4), timeout=10)

        newcomer = Node(4, network.transport(4), tick_seconds=TICK, compact_every=20)
        async with newcomer:
            # the cluster is idle now: the leader's first probe to node 4 went out before node 4
            # listened, so catching up depends on the leader probing again
            await wait_until(
                lambda: 4 in leader.status().voters,
                timeout=10,
                what="node 4 to catch up and be promoted to voter",
                detail=lambda: (newcomer.status().commit_index, leader.status().progress.get(4)),
            )
            await leader.propose(b"with four", timeout=10)
            cluster.nodes[4] = newcomer
            final = await cluster.converged()
            assert final == [f"c{i}".encode() for i in range(45)] + [b"with four"]
            installed = [e for e in newcomer.events if e.kind == "snapshot_installed"]
            assert installed and max(e.index for e in installed) > 1  # type: ignore[attr-defined]


async def test_a_client_removes_a_member_through_the_leader() -> None:
    """A membership request names its `node`, which is also the name of the rpc target."""
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with (
        LocalCluster(network.transport) as cluster,
        ClusterClient(network.transport(1_000_000_001, presence=False)) as client,
    ):
        leader = await cluster.leader()
        gone = next(n for n in cluster.nodes if n != leader.id)
        await client.discover(timeout=10)
        await client.request("membership", timeout=10, change="remove", node=gone)
        rest = sorted(n for n in cluster.nodes if n != gone)
        assert sorted(leader.status().voters) == rest
        await cluster.nodes[gone].stop()
        await leader.propose(b"two left", timeout=10)
        assert await cluster.converged(rest) == [b"two left"]
