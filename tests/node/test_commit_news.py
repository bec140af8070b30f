"""How a leader tells its followers about a commit (node/group.py, `Group._held`).

After a commit the core asks for an append with no entries to each follower, only to carry the
new commit index. The node holds it for one loop iteration: when the caller that the commit
answered proposes again at once, the new append carries the commit index and the empty one is
never sent; when nobody proposes, it goes out anyway, so followers still learn at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from raftoral_lab.core import AppendEntries, Message
from raftoral_lab.node import Node
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, TICK, LocalCluster, commands, wait_until

PROPOSALS = 200


def count_appends(leader: Node) -> Counter[tuple[int, bool]]:
    """Count the leader's appends from now on by (follower, carries entries)."""
    counts: Counter[tuple[int, bool]] = Counter()
    transport = leader.group().transport
    send = transport.send

    def counting(messages: object) -> None:
        batch: list[Message] = list(messages)  # type: ignore[call-overload]
        for message in batch:
            if isinstance(message, AppendEntries):
                counts[message.dst, bool(message.entries)] += 1
        send(batch)

    transport.send = counting  # type: ignore[method-assign]
    return counts


async def test_sequential_proposals_carry_the_commit_index_in_their_next_append() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        leader = await cluster.leader()
        counts = count_appends(leader)
        for i in range(PROPOSALS):
            await leader.propose(f"p{i}".encode())
        followers = [n for n in cluster.nodes.values() if n is not leader]
        for follower in followers:
            with_entries = counts[follower.id, True]
            empty = counts[follower.id, False]
            # one append with entries per proposal; without holding, one empty append per
            # commit too (about PROPOSALS); heartbeats are not appends
            assert with_entries >= PROPOSALS * 0.9, (follower.id, counts)
            assert empty <= PROPOSALS // 10, (
                f"follower {follower.id} got {empty} appends with no entries for {PROPOSALS} "
                f"sequential proposals: the commit index should ride on the next append; {counts}"
            )
        await cluster.converged()


async def test_an_idle_follower_learns_a_commit_without_waiting_for_a_heartbeat() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        leader = await cluster.leader()
        await leader.propose(b"warm-up")
        for node in cluster.nodes.values():
            node.tick_seconds = 30.0  # no heartbeat (and so no commit index) for a long while
        await asyncio.sleep(3 * TICK)  # the tick already scheduled passes; the next is far
        counts = count_appends(leader)
        await leader.propose(b"only")
        index = leader.status().commit_index
        followers = [n for n in cluster.nodes.values() if n is not leader]
        await wait_until(
            lambda: all(f.status().applied_index >= index for f in followers),
            timeout=2,
            what=f"followers to apply index {index} with no proposal after it",
            detail=lambda: {f.id: f.status().applied_index for f in followers},
        )
        assert all(commands(f)[-1] == b"only" for f in followers)
        # the news went out in its own append, once per follower, not on a heartbeat
        assert all(counts[f.id, False] == 1 for f in followers), counts
