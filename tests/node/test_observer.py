"""A RemoteObserver that is not there from the start (the two defects of a remote dashboard).

1. Opened on a running, quiet cluster, it asks every node it sees on presence to `announce`
   itself, and draws leaders, terms, logs and memberships of every group from those events.
2. A node killed without a word (its transport aborted: what `kill -9` looks like to the
   broker) is shown crashed from the broker's last will, and alive again once its presence is.

Runs on the memory network, the embedded broker and Mosquitto (when installed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from raftoral_lab.core import RaftConfig, Role
from raftoral_lab.events import EventBase
from raftoral_lab.node import Node
from raftoral_lab.node.observer import RemoteObserver
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.node.state_machine import CommandLog
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, TICK, LocalCluster, events_of, wait_until

OBSERVER = 1_000_000_901
INJECTOR = 1_000_000_902
IDS = (1, 2, 3)

Wiring = Callable[..., Transport]


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
def wiring(request: pytest.FixtureRequest) -> Wiring:
    """`wiring(node_id, presence=True)`: a transport of this test's network."""
    if request.param == "memory":
        network = MemoryNetwork(cluster=CLUSTER)
        return lambda node_id, presence=True: network.transport(node_id, presence=presence)
    fixture = "embedded_broker" if request.param == "embedded" else "mosquitto"
    url: str = request.getfixturevalue(fixture).url
    return lambda node_id, presence=True: MqttTransport(node_id, CLUSTER, url, presence=presence)


def publish_events(nodes: dict[int, Node]) -> None:
    for node in nodes.values():
        EventPublisher(node)


async def group_leader(nodes: dict[int, Node], group: int) -> int:
    """The leader of `group` once every node names it and it says it leads."""

    def agreed() -> int | None:
        leaders = {n.leader(group) for n in nodes.values()}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        if leader is None or nodes[leader].status(group).role is not Role.LEADER:
            return None
        return leader

    found: int = await wait_until(agreed, timeout=10, what=f"a leader of group {group}")
    return found


async def quiet(nodes: dict[int, Node]) -> None:
    """Wait until no node has emitted an event for a while (a quiet cluster)."""
    last: list[int] = []

    async def unchanged() -> bool:
        now = [len(n.events) + (n.events[-1].seq if n.events else 0) for n in nodes.values()]
        same = now == last
        last[:] = now
        if not same:
            await asyncio.sleep(TICK * 15)
        return same

    await wait_until(unchanged, timeout=10, what="the cluster to go quiet")


def picture(node: Node, group: int) -> tuple[Any, ...]:
    """What the node itself says of its state in `group`."""
    s = node.status(group)
    return (s.role.value, s.term, s.leader, s.commit_index, s.applied_index, s.last_index,
            tuple(sorted(s.voters)), tuple(sorted(s.learners)))  # fmt: skip


def drawn(observer: RemoteObserver, node: int, group: int) -> tuple[Any, ...]:
    """What the observer's view says of that node in `group`."""
    r = observer.view.replica(node, group)
    return (r.role, r.term, r.leader, r.commit_index, r.applied_index, r.last_index,
            r.voters, r.learners)  # fmt: skip


async def test_an_observer_opened_on_a_quiet_cluster_draws_it(wiring: Wiring) -> None:
    async with LocalCluster(wiring) as cluster:
        nodes = cluster.nodes
        publish_events(nodes)
        for node in nodes.values():  # a second group on every node: each is announced
            node.add_group(1, CommandLog(), voters=list(IDS))
        leader = await cluster.leader()
        for i in range(5):
            await leader.propose(b"zero %d" % i, timeout=10)
        leader_1 = await group_leader(nodes, 1)
        for i in range(3):
            await nodes[leader_1].propose(b"one %d" % i, group=1, timeout=10)
        await cluster.converged()
        await quiet(nodes)
        before = {n.id: len(n.events) for n in nodes.values()}

        async with RemoteObserver(wiring(OBSERVER, presence=False)) as observer:
            view = observer.view

            def shown() -> bool:
                return all(
                    drawn(observer, n.id, g) == picture(n, g)
                    for n in nodes.values()
                    for g in (0, 1)
                )

            await wait_until(
                shown,
                timeout=10,
                what="the observer to draw every node's state in both groups",
                detail=lambda: {
                    (n.id, g): (drawn(observer, n.id, g), picture(n, g))
                    for n in nodes.values()
                    for g in (0, 1)
                },
            )
            assert view.leader(0) == leader.id and view.leader(1) == leader_1
            assert view.term(0) == leader.status().term
            assert view.membership(0) == (IDS, ()) and view.membership(1) == (IDS, ())
            for node in nodes.values():
                log = view.replica(node.id).log
                assert log.last_term == node.status().term  # the leader's no-op is the last
            assert {n.id for n in nodes.values()} == set(view.nodes)
            assert all(state.status == "alive" for state in view.nodes.values())
            assert observer.announces == len(IDS) and observer.announce_failures == 0
            # each node announced both groups once: a state_loaded right before a role_changed
            # (membership is in no other event of a quiet cluster: without the announcements
            # the view could not know it; a stray election on a loaded machine may add events)
            for node in nodes.values():
                said = [(e.kind, e.group) for e in list(node.events)[before[node.id] :]]
                for group in (0, 1):
                    loaded = [i for i, k in enumerate(said) if k == ("state_loaded", group)]
                    assert len(loaded) == 1, (node.id, said)
                    assert said[loaded[0] + 1] == ("role_changed", group), (node.id, said)
            assert observer.malformed == 0 and observer.from_presence == 0
            assert await observer.announce() == list(IDS)  # again, on demand
            assert observer.announces == 2 * len(IDS)


async def test_a_killed_node_shows_crashed_then_alive_after_a_restart(wiring: Wiring) -> None:
    async with (
        LocalCluster(wiring) as cluster,
        RemoteObserver(wiring(OBSERVER, presence=False)) as observer,
    ):
        nodes = cluster.nodes
        publish_events(nodes)
        view = observer.view
        seen: list[EventBase] = []
        observer.listeners.append(seen.append)
        leader = await cluster.leader()
        await leader.propose(b"before", timeout=10)
        await wait_until(
            lambda: view.leader() == leader.id, timeout=10, what="the observer to see the leader"
        )

        # kill -9: the node stops without an event, its transport drops the connection
        victim = leader
        storage = victim.group().storage
        await victim.stop(crash=True)
        assert not events_of(victim, "node_crashed")
        await wait_until(
            lambda: view.nodes[victim.id].status == "crashed",
            timeout=10,
            what="the observer to show the killed node crashed",
            detail=lambda: (view.nodes, observer.presence),
        )
        about = [e for e in seen if e.node == victim.id and e.kind in PRESENCE_KINDS]
        assert [brief(e) for e in about] == [
            ("presence_changed", False, "connection lost"),
            ("node_crashed", None, None),
        ]
        assert observer.presence[victim.id]["reason"] == "connection lost"
        others = [i for i in IDS if i != victim.id]
        successor = await cluster.leader(among=others)
        await wait_until(
            lambda: view.leader() == successor.id, timeout=10, what="the new leader drawn"
        )
        assert view.nodes[victim.id].status == "crashed"
        assert view.replica(victim.id).span is None  # it leads nothing in the picture

        # the same node, started again from its storage
        restarted = Node(
            victim.id,
            wiring(victim.id),
            storage=storage,
            tick_seconds=TICK,
            config=RaftConfig(election_timeout=10),
        )
        EventPublisher(restarted)
        nodes[victim.id] = restarted
        await restarted.start()
        await wait_until(
            lambda: view.nodes[victim.id].status == "alive",
            timeout=10,
            what="the observer to show the restarted node alive",
            detail=lambda: (view.nodes, observer.presence),
        )
        await restarted.propose(b"after", timeout=10)
        await cluster.converged()
        await wait_until(
            lambda: drawn(observer, victim.id, 0) == picture(restarted, 0),
            timeout=10,
            what="the restarted node's state drawn",
            detail=lambda: (drawn(observer, victim.id, 0), picture(restarted, 0)),
        )
        about = [e for e in seen if e.node == victim.id and e.kind in PRESENCE_KINDS]
        assert [brief(e) for e in about[2:]] == [
            ("presence_changed", True, None),
            ("node_restarted", None, None),
        ]
        assert observer.from_presence == 4 and observer.malformed == 0
        current = await cluster.leader()
        await wait_until(
            lambda: view.leader() == current.id, timeout=10, what="the leader drawn at the end"
        )


async def test_a_node_that_left_the_cluster_shows_removed() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with (
        LocalCluster(network.transport) as cluster,
        RemoteObserver(network.transport(OBSERVER, presence=False)) as observer,
    ):
        publish_events(cluster.nodes)
        seen: list[EventBase] = []
        observer.listeners.append(seen.append)
        leader = await cluster.leader()
        await wait_until(
            lambda: observer.view.membership() == (IDS, ()), timeout=10, what="the membership"
        )
        leaving = next(n for n in cluster.nodes.values() if n is not leader)
        await leaving.leave(timeout=10)  # removed through the log, then a clean stop
        await wait_until(
            lambda: observer.view.nodes[leaving.id].status == "removed",
            timeout=10,
            what="the node that left to show removed",
            detail=lambda: (observer.view.nodes, observer.view.membership()),
        )
        about = [e for e in seen if e.node == leaving.id and e.kind in PRESENCE_KINDS]
        assert [brief(e) for e in about] == [
            ("presence_changed", False, "closed"),
            ("node_removed", None, None),
        ]


PRESENCE_KINDS = frozenset({"presence_changed", "node_crashed", "node_restarted", "node_removed"})


def brief(event: EventBase) -> tuple[str, object, object]:
    return (event.kind, getattr(event, "alive", None), getattr(event, "reason", None))


# --- the announce control ----------------------------------------------------------------------


async def test_announce_controls_are_validated_and_only_report() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with (
        LocalCluster(network.transport) as cluster,
        network.transport(INJECTOR, presence=False) as injector,
    ):
        leader = await cluster.leader()
        target = next(n for n in cluster.nodes.values() if n is not leader)
        await cluster.converged()
        await quiet(cluster.nodes)

        async def control(body: object) -> None:
            await injector.publish(f"node/{target.id}/control", json.dumps(body))

        bad: list[object] = [
            {"v": 1, "op": "announce", "group": "all"},
            {"v": 1, "op": "announce", "group": -1},
            {"v": 1, "op": "announce", "group": True},
            {"v": 1, "op": "announce", "group": 0.0},
            {"v": 1, "op": "announce", "group": [0]},
            {"v": 2, "op": "announce"},
            {"op": "announce"},
        ]
        mark = len(target.events)
        for count, body in enumerate(bad, start=1):
            await control(body)
            await wait_until(
                lambda: target.malformed["control"] == count,  # noqa: B023 (awaited here)
                timeout=5,
                what=f"{body} to be refused and counted",
            )
        assert target.running and target.transport.stats.malformed == len(bad)
        assert len(events_of(target, "message_dropped", reason="malformed")) == len(bad)
        refusals = [(e.kind, getattr(e, "reason", None)) for e in list(target.events)[mark:]]
        assert refusals == [("message_dropped", "malformed")] * len(bad), refusals  # only those

        # a well-formed one about a group this node does not host: nothing to say, not refused
        mark = len(target.events)
        await control({"v": 1, "op": "announce", "group": 9})
        await control({"v": 1, "op": "announce", "group": 0})
        await wait_until(
            lambda: len(target.events) >= mark + 2, timeout=5, what="the announcement of group 0"
        )
        said = list(target.events)[mark:]
        assert [(e.kind, e.group) for e in said] == [("state_loaded", 0), ("role_changed", 0)]
        loaded, role = said
        status = target.status()
        assert (role.role, role.term, role.leader) == ("follower", status.term, leader.id)  # type: ignore[attr-defined]
        assert (loaded.commit_index, loaded.last_index, loaded.voters) == (  # type: ignore[attr-defined]
            status.commit_index,
            status.last_index,
            IDS,
        )
        assert target.malformed["control"] == len(bad)

        # without a group: every group, a partition the node keeps, and the upper layers' part
        target.transport.faults.blocked = {99}  # a peer that does not exist: nothing is cut
        reported: list[str] = []

        def broken() -> None:
            raise RuntimeError("an upper layer's bug")

        target.announcers += [broken, lambda: reported.append("workflows")]
        mark = len(target.events)
        await control({"v": 1, "op": "announce"})
        await wait_until(lambda: reported, timeout=5, what="the announcers to run")
        said = list(target.events)[mark:]
        assert [e.kind for e in said] == ["state_loaded", "role_changed", "partitioned"]
        assert said[2].sides == ((target.id,), (99,))  # type: ignore[attr-defined]
        assert target.running and target.transport.stats.callback_errors == 0
        target.transport.faults.heal()

        # announcing changed nothing: the cluster still commits with the same leader
        await leader.propose(b"still fine", timeout=10)
        assert target.leader() == leader.id


async def test_announce_controls_are_signed_with_the_cluster_secret() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    secret = "a class secret of at least 16 bytes"

    def signed(node_id: int, presence: bool = True) -> Transport:
        return network.transport(node_id, presence=presence, secret=secret)

    async with LocalCluster(signed) as cluster:
        publish_events(cluster.nodes)
        leader = await cluster.leader()
        await cluster.converged()
        await quiet(cluster.nodes)
        marks = {n.id: len(n.events) for n in cluster.nodes.values()}

        # a stranger without the secret is refused: unsigned controls never reach the node
        async with network.transport(INJECTOR, presence=False) as stranger:
            await stranger.publish(f"node/{leader.id}/control", '{"v": 1, "op": "announce"}')
            await wait_until(
                lambda: leader.transport.stats.dropped["unsigned"] >= 1,
                timeout=5,
                what="the unsigned announce to be refused",
            )
        assert len(leader.events) == marks[leader.id] + 1  # only the refusal's drop event

        # the observer holds the secret: its announcements are signed and obeyed
        async with RemoteObserver(signed(OBSERVER, presence=False)) as observer:
            await wait_until(
                lambda: (
                    observer.view.leader() == leader.id and observer.view.membership() == (IDS, ())
                ),
                timeout=10,
                what="the observer with the secret to draw the cluster",
                detail=lambda: observer.view,
            )
            assert observer.announces == len(IDS)
