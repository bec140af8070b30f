"""Proposals outlive a leader change (node.py: `propose`, `_on_leader`).

On a follower, a proposal forwarded to a leader that is cut off is sent again to the leader
elected after it. On the leader, an entry that a new leader replaces (`ProposalDropped`) is
proposed again through the new leader. Either way it commits exactly once, on every node.
"""

from __future__ import annotations

import asyncio

from raftoral_lab.core import RaftConfig, Role
from raftoral_lab.errors import ProposalDropped
from raftoral_lab.node import Node
from raftoral_lab.node.group import Group
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, TICK, LocalCluster, commands, events_of, wait_until

FAST = RaftConfig(election_timeout=10, check_quorum=False)
SLOW = RaftConfig(election_timeout=60, check_quorum=False)
"""Node 3 waits six times longer before it campaigns, so after the leader is cut off the other
fast node wins; without CheckQuorum there is no leader lease, so node 3 votes for it at once
(and the cut-off leader keeps believing it leads, as a leader behind a slow link would)."""


async def test_a_follower_forwards_again_to_the_leader_elected_after_a_cut() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    cluster = LocalCluster(network.transport)  # for its waits; the nodes are made here
    for node_id in (1, 2, 3):
        cluster.nodes[node_id] = Node(
            node_id,
            network.transport(node_id),
            voters=[1, 2, 3],
            tick_seconds=TICK,
            config=SLOW if node_id == 3 else FAST,
        )
    await asyncio.gather(*(n.start() for n in cluster.nodes.values()))
    try:
        old = await cluster.leader()
        assert old.id != 3, cluster.picture()
        follower = cluster.nodes[3]
        (other,) = (n for n in cluster.nodes.values() if n not in (old, follower))
        before = [f"before {i}".encode() for i in range(5)]
        for command in before:
            await follower.propose(command, timeout=10)
        assert await cluster.converged() == before
        old_term = old.status().term

        # cut the leader off both ways, then propose on the follower, which still names it
        network.isolate(old.id)
        assert follower.leader() == old.id
        answer = await follower.propose(b"across the change", timeout=20)
        assert isinstance(answer, int), answer

        new = await cluster.leader([follower.id, other.id])
        assert new is other and new.status().term > old_term, cluster.picture()
        forwards = [e.to for e in events_of(follower, "proposal_forwarded")]  # type: ignore[attr-defined]
        assert forwards[: len(before)] == [old.id] * len(before), forwards
        retried = forwards[len(before) :]
        assert retried[0] == old.id and retried[-1] == new.id, forwards
        assert set(retried) == {old.id, new.id}, forwards
        assert commands(new)[-1] == b"across the change"

        # heal: the old leader's copy (it was still proposing as leader) is overwritten
        network.heal()
        final = await cluster.converged(timeout=20)
        assert final == [*before, b"across the change"], cluster.picture()
        for node in cluster.nodes.values():
            assert commands(node).count(b"across the change") == 1, node.id
        assert events_of(old, "entries_truncated"), "the old leader kept an entry of its own"
        assert old.status().role is Role.FOLLOWER
        assert (await cluster.leader()) is new
    finally:
        await cluster.stop()


async def test_a_leader_proposes_again_when_a_new_leader_replaced_its_entry() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        old = await cluster.leader()
        before = [f"before {i}".encode() for i in range(5)]
        for command in before:
            await old.propose(command, timeout=10)
        assert await cluster.converged() == before

        # watch the futures the old leader's group hands out
        group: Group = old.group()
        futures: list[asyncio.Future[object]] = []
        wait_for = group._wait_for

        def spy(index: int) -> asyncio.Future[object]:
            future = wait_for(index)
            futures.append(future)
            return future

        group._wait_for = spy  # type: ignore[method-assign]

        network.isolate(old.id)
        assert old.status().role is Role.LEADER
        task = asyncio.ensure_future(old.propose(b"from the old leader", timeout=20))
        await wait_until(lambda: futures, timeout=5, what="the old leader to take the proposal")
        first_index = old.status().last_index  # where the old leader put it, alone

        majority = [n for n in cluster.nodes if n != old.id]
        new = await cluster.leader(majority, timeout=10)
        during = [f"during {i}".encode() for i in range(3)]
        for command in during:
            await new.propose(command, timeout=10)
        assert not task.done()

        network.heal()
        answer = await asyncio.wait_for(task, 20)
        assert isinstance(answer, int) and answer > first_index, (answer, first_index)
        assert isinstance(futures[0].exception(), ProposalDropped), futures[0]
        forwards = [e.to for e in events_of(old, "proposal_forwarded")]  # type: ignore[attr-defined]
        assert forwards and set(forwards) == {new.id}, forwards
        final = await cluster.converged(timeout=20)
        assert final == [*before, *during, b"from the old leader"], cluster.picture()
        for node in cluster.nodes.values():
            assert commands(node).count(b"from the old leader") == 1, node.id
