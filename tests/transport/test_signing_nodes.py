"""Real `Node`s with a cluster secret: members elect and commit, strangers stay out.

Nodes 1 and 2 share the secret, node 3 of the same founding configuration has another one:
1 and 2 are a majority of three, so they elect a leader and commit; node 3 never gets a vote,
an entry or a leader through, and cannot disturb the others. Clients are held to the same rule:
one with the wrong secret finds no node and cannot join, one without a secret cannot send
controls to a signed node. Runs on the memory network, the embedded broker and Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from raftoral_lab.core import Role
from raftoral_lab.errors import NodeError
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient, client_id
from raftoral_lab.transport import MemoryNetwork, Transport
from raftoral_lab.transport.mqtt import MqttTransport

from .conftest import Broker

SECRET = "5b1d8e2f7a9c4e3b6d0f1a2b3c4d5e6f"
OTHER = "e7d6c5b4a3928170f6e5d4c3b2a19080"
THIRD = "third-secret-of-at-least-16-bytes"
TICK = 0.05  # the default: elections of 0.5 s stay stable on a busy machine
MakeTransport = Callable[..., Transport]


async def eventually(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def make(request: pytest.FixtureRequest) -> MakeTransport:
    """`make(node_id, secret=..., presence=...)` for one backend, all on one network/broker."""
    if request.param == "memory":
        return MemoryNetwork().transport
    broker: Broker = request.getfixturevalue(f"{request.param}_broker")

    def mqtt(node_id: int, **kw: Any) -> Transport:
        return MqttTransport(node_id, "lab", broker.url, backoff_max=0.5, **kw)

    return mqtt


@pytest.fixture
async def cluster(make: MakeTransport) -> AsyncIterator[dict[int, Node]]:
    nodes = {
        i: Node(i, make(i, secret=secret), voters=[1, 2, 3], tick_seconds=TICK)
        for i, secret in ((1, SECRET), (2, SECRET), (3, OTHER))
    }
    for node in nodes.values():
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


def refusals(node: Node) -> list[str]:
    return [
        str(getattr(e, "reason", ""))
        for e in node.events
        if e.kind == "message_dropped" and getattr(e, "reason", "") != "partition"
    ]


async def test_members_elect_and_commit_and_a_wrong_secret_stays_out(
    cluster: dict[int, Node],
) -> None:
    one, two, stranger = cluster[1], cluster[2], cluster[3]
    leader_id = await one.wait_for_leader(timeout=15)
    assert leader_id in (1, 2)
    leader = cluster[leader_id]
    index = await leader.propose(b"members only", timeout=10)
    assert isinstance(index, int)
    await eventually(lambda: two.status().commit_index >= index, what="commit on node 2")
    await eventually(lambda: one.status().commit_index >= index, what="commit on node 1")
    term = leader.status().term
    start_log = stranger.status().last_index
    await asyncio.sleep(TICK * one.config.election_timeout * 6)  # several election timeouts
    for member in (one, two):
        status = member.status()
        assert status.term == term and status.leader == leader_id  # nobody disturbed them
        assert member.transport.stats.dropped["bad_signature"] > 0
        assert "bad_signature" in refusals(member)
    outside = stranger.status()
    assert outside.leader is None and outside.role is not Role.LEADER
    assert outside.last_index == start_log and outside.commit_index <= start_log
    assert stranger.transport.stats.dropped["bad_signature"] > 0
    assert stranger.transport.stats.received == 0
    assert set(refusals(stranger)) == {"bad_signature"}
    # the stranger's proposals go nowhere either
    with pytest.raises(NodeError):
        await stranger.propose(b"intruder", timeout=1.0)
    assert all(member.status().last_index == leader.status().last_index for member in (one, two))


async def test_a_client_needs_the_secret_to_find_join_or_propose(
    make: MakeTransport, cluster: dict[int, Node]
) -> None:
    await cluster[1].wait_for_leader(timeout=15)
    async with ClusterClient(make(client_id(), secret=THIRD, presence=False)) as outsider:
        with pytest.raises(NodeError, match="no live node"):
            await outsider.discover(timeout=1.0)
        assert outsider.transport.stats.dropped["bad_signature"] >= 3  # everyone's presence
    async with ClusterClient(make(client_id(), presence=False)) as unsigned:
        with pytest.raises(NodeError, match="no live node"):
            await unsigned.discover(timeout=1.0)
        assert unsigned.transport.stats.dropped["no_secret"] >= 3
    async with ClusterClient(make(client_id(), secret=OTHER, presence=False)) as stranger:
        assert await stranger.discover(timeout=10) == [3]  # node 3 only: same wrong secret
        with pytest.raises(NodeError):  # node 3 knows no leader: nobody can let it in
            await stranger.join(timeout=1.5)
    async with ClusterClient(make(client_id(), secret=SECRET, presence=False)) as member:
        assert set(await member.discover(timeout=10)) >= {1, 2}
        assert isinstance(await member.propose(b"from a member", timeout=10), int)
        new_id = await member.join(timeout=15)
        assert new_id == 4
    voters_and_learners = cluster[1].status().voters | cluster[1].status().learners
    assert 4 in voters_and_learners and 3 in voters_and_learners


async def test_controls_need_the_secret(make: MakeTransport, cluster: dict[int, Node]) -> None:
    await cluster[1].wait_for_leader(timeout=15)
    partition = json.dumps({"v": 1, "op": "partition", "blocked": [2]})
    unsigned = make(client_id(), presence=False)
    wrong = make(client_id(), secret=OTHER, presence=False)
    right = make(client_id(), secret=SECRET, presence=False)
    for t in (unsigned, wrong, right):
        await t.start()
    try:
        await unsigned.publish("node/1/control", partition)
        await wrong.publish("node/1/control", partition)
        node1 = cluster[1].transport
        await eventually(
            lambda: (
                node1.stats.dropped["unsigned"] >= 1 and node1.stats.dropped["bad_signature"] >= 1
            ),
            what="both refused",
        )
        assert node1.faults.blocked == frozenset()
        await right.publish("node/1/control", partition)
        await eventually(lambda: node1.faults.blocked == frozenset({2}), what="applied")
        await right.publish("node/1/control", json.dumps({"v": 1, "op": "heal"}))
        await eventually(lambda: node1.faults.blocked == frozenset(), what="healed")
    finally:
        for t in (unsigned, wrong, right):
            await t.close()
