"""Nodes in one process, seen three ways: live (listeners), from the recording of the run, and
by a remote observer that only hears the broker (`events/+`). All three pictures agree."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.core import RaftConfig, Role
from raftoral_lab.events import ClusterView, EventBus, Lost, Recorder, load
from raftoral_lab.node import Node
from raftoral_lab.node.observer import RemoteObserver
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.transport import MemoryNetwork
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.broker import EmbeddedBroker
from raftoral_lab.transport.mqtt import MqttTransport

TICK = 0.02
IDS = (1, 2, 3)
OBSERVER_ID = 100
CLUSTER = "eventstest"


async def wait_until(
    condition: Callable[[], object | Awaitable[object]],
    *,
    timeout: float,
    what: str,
    detail: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            shown = detail() if detail is not None else None
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; {shown}")
        await asyncio.sleep(0.02)


@dataclass
class Run:
    nodes: dict[int, Node]
    live: ClusterView
    recorder: Recorder
    publishers: dict[int, EventPublisher]
    observer: RemoteObserver
    control: Transport

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.running]

    async def leader(self) -> Node:
        def agreed() -> bool:
            leaders = {n.leader() for n in self.running()}
            return len(leaders) == 1 and None not in leaders

        await wait_until(agreed, timeout=10, what="a leader")
        leader = self.running()[0].leader()
        assert leader is not None
        return self.nodes[leader]

    async def converged(self) -> None:
        def same() -> bool:
            running = self.running()
            leader = running[0].leader()
            if leader is None or self.nodes[leader].status().role is not Role.LEADER:
                return False
            states = {(n.status().commit_index, n.status().applied_index) for n in running}
            return len(states) == 1 and all(n.leader() == leader for n in running)

        await wait_until(same, timeout=10, what="the nodes to converge")

    async def control_message(self, node: int, **body: Any) -> None:
        await self.control.publish(f"node/{node}/control", json.dumps({"v": 1, **body}))


@asynccontextmanager
async def cluster(
    make_transport: Callable[[int, bool], Transport],
    path: Path,
    *,
    sample_messages: float = 1.0,
) -> AsyncIterator[Run]:
    live = ClusterView()
    recorder = Recorder(path, cluster=CLUSTER, config={"tick": TICK})
    observer = RemoteObserver(make_transport(OBSERVER_ID, False))
    await observer.start()  # before the nodes: it must hear their first events
    nodes: dict[int, Node] = {}
    publishers: dict[int, EventPublisher] = {}
    for node_id in IDS:
        node = Node(
            node_id,
            make_transport(node_id, True),
            voters=list(IDS),
            tick_seconds=TICK,
            config=RaftConfig(election_timeout=10),
        )
        node.listeners += [live.apply, recorder]
        publishers[node_id] = EventPublisher(node, sample_messages=sample_messages)
        nodes[node_id] = node
    run = Run(nodes, live, recorder, publishers, observer, observer.transport)
    try:
        await asyncio.gather(*(n.start() for n in nodes.values()))
        yield run
    finally:
        await asyncio.gather(*(n.stop() for n in nodes.values()), return_exceptions=True)
        await observer.stop()
        recorder.close()


async def scenario(run: Run, *, crash: bool) -> None:
    """Elect, commit, cut a follower off, commit without it, heal, (crash), commit again."""
    leader = await run.leader()
    for i in range(10):
        await leader.propose(b"a%d" % i, timeout=10)
    follower = next(i for i in IDS if i != leader.id)
    others = [i for i in IDS if i != follower]
    await run.control_message(follower, op="partition", blocked=others)
    for other in others:
        await run.control_message(other, op="partition", blocked=[follower])
    for i in range(5):
        await leader.propose(b"b%d" % i, timeout=10)
    await asyncio.sleep(TICK * 30)  # the cut-off follower times out and pre-votes meanwhile
    for node_id in IDS:
        await run.control_message(node_id, op="heal")
    await run.converged()
    if crash:
        await run.control_message(follower, op="crash")
        await wait_until(lambda: not run.nodes[follower].running, timeout=5, what="the crash")
    leader = await run.leader()
    for i in range(5):
        await leader.propose(b"c%d" % i, timeout=10)
    follower_now = next(n for n in run.running() if n.id != leader.id)
    await follower_now.propose(b"forwarded", timeout=10)  # through the leader
    await run.converged()


async def agree(run: Run, *, messages: bool = True) -> None:
    """Wait for the observer to catch up with the in-process view, then compare."""

    def caught_up() -> bool:
        return bool(
            run.observer.view.snapshot(messages=messages) == run.live.snapshot(messages=messages)
        )

    await wait_until(
        caught_up,
        timeout=10,
        what="the remote view to match the in-process view",
        detail=lambda: (run.observer, run.live, run.publishers),
    )


async def test_memory_network_live_recording_and_remote_views_agree(tmp_path: Path) -> None:
    net = MemoryNetwork()
    path = tmp_path / "run.jsonl"

    def make(node_id: int, presence: bool) -> Transport:
        return net.transport(node_id, presence=presence)

    async with cluster(make, path) as run:
        await scenario(run, crash=True)
        await agree(run)
        observer = run.observer
        assert observer.malformed == 0 and observer.gaps == 0 and observer.errors == 0
        assert observer.received == sum(p.published for p in run.publishers.values())
        crashed = next(n for n in run.nodes.values() if not n.running)
        assert run.live.nodes[crashed.id].status == "crashed"
        assert observer.presence[crashed.id]["alive"] is False
        assert observer.alive() == {n.id for n in run.running()}
        leader = (await run.leader()).id
        assert run.live.leader() == leader
        replica = run.live.replica(leader)
        status = run.nodes[leader].status()
        assert (replica.term, replica.commit_index) == (status.term, status.commit_index)
        assert run.live.drops["partition"] > 0 and run.live.counts["partitioned"] == 3
        assert run.live.partitions == {}  # every node healed
    # the recorder and the live view listened to the same nodes until they stopped
    recording = load(path)
    assert recording.header.cluster == CLUSTER
    assert len(recording.events) == sum(run.live.counts.values())
    assert recording.view() == run.live


async def test_a_sampling_publisher_still_gives_the_same_picture(tmp_path: Path) -> None:
    net = MemoryNetwork()

    def make(node_id: int, presence: bool) -> Transport:
        return net.transport(node_id, presence=presence)

    async with cluster(make, tmp_path / "run.jsonl", sample_messages=0.0) as run:
        await scenario(run, crash=False)
        await agree(run, messages=False)
        skipped = sum(p.skipped for p in run.publishers.values())
        assert skipped == run.live.counts["message_dropped"] > 0
        assert run.observer.view.counts["message_dropped"] == 0
        assert run.observer.gaps == skipped  # the seq numbering shows what was left out


async def test_embedded_broker_remote_observer_sees_what_the_nodes_see(tmp_path: Path) -> None:
    async with EmbeddedBroker() as broker:

        def make(node_id: int, presence: bool) -> Transport:
            return MqttTransport(node_id, CLUSTER, broker.url, presence=presence)

        async with cluster(make, tmp_path / "run.jsonl") as run:
            await scenario(run, crash=False)
            await agree(run)
            assert run.observer.malformed == 0 and run.observer.gaps == 0
            assert sum(p.payloads for p in run.publishers.values()) < run.observer.received


async def test_the_observer_counts_and_drops_malformed_events() -> None:
    net = MemoryNetwork()
    bus = EventBus()
    sub = bus.subscribe()
    seen: list[object] = []
    async with RemoteObserver(net.transport(OBSERVER_ID, presence=False), bus=bus) as observer:
        observer.listeners.append(seen.append)
        sender = net.transport(5, presence=False)
        await sender.start()
        good = {"kind": "node_joined", "v": 1, "node": 5, "seq": 1, "ts": 1.0}
        payload = "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps(good | {"kind": "warp_drive"}),
                json.dumps(good | {"v": 99, "seq": 2}),
                json.dumps(good | {"seq": 4}),
            ]
        )
        sender.publish_nowait("events/5", payload, qos=0)
        sender.publish_nowait("presence/5", b"[1, 2]", qos=1)
        await wait_until(lambda: observer.received == 2, timeout=2, what="two good events")
        await sender.close()
    # three bad event lines (not JSON, unknown kind, newer schema) and a bad presence document
    assert observer.malformed == 4 and "presence/5" in str(observer.last_malformed)
    assert observer.gaps == 2  # seq 2 and 3 never arrived as valid events
    assert observer.view.nodes[5].status == "alive" and len(seen) == 2
    items = sub.drain()
    assert len(items) == 2 and not any(isinstance(i, Lost) for i in items)


async def test_publisher_switches_off_and_never_raises() -> None:
    net = MemoryNetwork()
    node = Node(1, net.transport(1), voters=[1], tick_seconds=TICK)
    publisher = EventPublisher(node, enabled=False)
    node.emit(0, "node_joined", {})  # transport not started: nothing to publish with
    assert publisher.suppressed == 1
    publisher.enabled = True
    node.emit(0, "node_joined", {})
    await asyncio.sleep(0)
    assert publisher.failed == 1 and publisher.published == 0  # refused, never raised
    publisher.close()
    assert publisher not in node.listeners
    with pytest.raises(ValueError, match="sample_messages"):
        EventPublisher(node, sample_messages=1.5)


async def test_sampled_message_events_carry_their_weight_so_counts_stay_right() -> None:
    """One in ten published, each standing for ten: a remote view counts about what was sent."""
    from raftoral_lab.events import ClusterView, parse_event

    net = MemoryNetwork()
    node = Node(1, net.transport(1), voters=[1], tick_seconds=TICK)
    await node.transport.start()
    lines: list[str] = []
    publisher = EventPublisher(node, sample_messages=0.1, batch=False)
    publisher._send = lines.extend  # type: ignore[method-assign]  # capture, no broker needed
    for i in range(100):
        node.emit(0, "message_sent", {"message": "append_entries", "src": 1, "dst": 2 + i % 2})
    node.emit(0, "node_joined", {})
    events = [parse_event(line) for line in lines]
    sent = [e for e in events if e.kind == "message_sent"]
    assert len(sent) == 10 and all(e.weight == 10 for e in sent)  # type: ignore[attr-defined]
    assert [e.kind for e in events].count("node_joined") == 1  # never sampled
    view = ClusterView(events)
    assert view.messages["append_entries"].sent == 100
    assert sum(view.links.values()) == 100
    await node.transport.close()


async def test_a_broker_outage_is_published_in_order_once_the_broker_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disconnect cannot reach the broker it is about: the publisher holds it and what
    follows (the newest MAX_HELD), and hands them over, oldest first, when the broker is back."""
    from raftoral_lab.events import parse_event

    monkeypatch.setattr("raftoral_lab.node.publisher.MAX_HELD", 3)
    net = MemoryNetwork()
    node = Node(1, net.transport(1), voters=[1], tick_seconds=TICK)
    await node.start()
    lines: list[str] = []
    publisher = EventPublisher(node, batch=False)
    publisher._send = lines.extend  # type: ignore[method-assign]  # capture, no broker needed
    node.emit(0, "node_joined", {})
    node.transport._connection_changed(False, "broker gone")  # what the MQTT supervisor calls
    for _ in range(5):
        node.emit(0, "healed", {})
    assert [parse_event(line).kind for line in lines] == ["node_joined"]  # all held
    node.transport._connection_changed(True)
    await node.stop()
    events = [parse_event(line) for line in lines]
    kinds = [e.kind for e in events if e.kind != "message_dropped"]
    assert kinds == ["node_joined", "broker_disconnected", *["healed"] * 3, "broker_reconnected"]
    assert publisher.lost == 2  # the two oldest of the outage made room; never the disconnect
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    disconnected = next(e for e in events if e.kind == "broker_disconnected")
    assert disconnected.reason == "broker gone"  # type: ignore[attr-defined]
    view = ClusterView(events)
    assert view.nodes[1].broker_connected is True and view.nodes[1].broker_disconnects == 1
