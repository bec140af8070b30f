"""A Raft message for a group the node does not host is counted, not only reported.

It used to show up only as a `message_ignored` event, so a node that kept receiving traffic of a
group it no longer hosts looked healthy in its counters. Now each one counts in the transport's
`stats.dropped["unknown_group"]` (the reason `DropReason.UNKNOWN_GROUP`), once per message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from raftoral_lab.events import EventBase
from raftoral_lab.node.state_machine import CommandLog
from raftoral_lab.transport import DropReason
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, LocalCluster, events_of, wait_until

INJECTOR = 1_000_000_779


def ignored(node_events: Sequence[EventBase]) -> int:
    return len([e for e in node_events if "unknown group" in e.reason])  # type: ignore[attr-defined]


async def test_messages_of_an_unknown_group_are_counted_once_each() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    async with (
        LocalCluster(network.transport) as cluster,
        network.transport(INJECTOR, presence=False) as injector,
    ):
        leader = await cluster.leader()
        target = next(n for n in cluster.nodes.values() if n is not leader)
        stats = target.transport.stats
        assert stats.dropped[DropReason.UNKNOWN_GROUP] == 0
        term = target.status().term

        # two messages of group 7 in one batch, then one more: three counted, three events
        def heartbeat(commit: int) -> dict[str, object]:
            return {"kind": "heartbeat", "group": 7, "src": leader.id, "dst": target.id,
                    "term": term, "commit": commit}  # fmt: skip

        batch = {"v": 1, "src": leader.id, "msgs": [heartbeat(0), heartbeat(0)]}
        await injector.publish(f"node/{target.id}/raft", json.dumps(batch), qos=1)
        await wait_until(
            lambda: stats.dropped[DropReason.UNKNOWN_GROUP] == 2,
            timeout=10,
            what="two messages of group 7 to be counted",
            detail=lambda: dict(stats.dropped),
        )
        batch["msgs"] = [heartbeat(0)]
        await injector.publish(f"node/{target.id}/raft", json.dumps(batch), qos=1)
        await wait_until(
            lambda: stats.dropped[DropReason.UNKNOWN_GROUP] == 3,
            timeout=10,
            what="the third message of group 7 to be counted",
            detail=lambda: dict(stats.dropped),
        )
        assert stats.as_dict()["dropped"]["unknown_group"] == 3
        assert ignored(events_of(target, "message_ignored", group=7)) == 3
        assert not target.malformed  # well-formed: not a malformed payload
        assert leader.transport.stats.dropped[DropReason.UNKNOWN_GROUP] == 0

        # the real case: a group hosted on one node and not (yet) on its peer
        leader.add_group(5, CommandLog(), voters=[leader.id, target.id])
        await wait_until(
            lambda: ignored(events_of(target, "message_ignored", group=5)) >= 1,
            timeout=10,
            what="the campaign in group 5 to reach a node without the group",
        )
        from_group_5 = ignored(events_of(target, "message_ignored", group=5))
        assert stats.dropped[DropReason.UNKNOWN_GROUP] >= 3 + from_group_5
        # the group that both host works as before
        await cluster.nodes[target.id].propose(b"still fine", timeout=10)
        assert await cluster.converged() == [b"still fine"]
