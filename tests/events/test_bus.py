"""EventBus: producers never wait, slow subscribers lose their oldest events and are told."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from raftoral_lab.errors import ConfigError
from raftoral_lab.events import (
    EventBase,
    EventBus,
    EventSchemaError,
    Lost,
    make_event,
)


def commit(seq: int, node: int = 1, group: int = 0) -> EventBase:
    return make_event(
        "commit_advanced", {"commit_index": seq}, node=node, group=group, seq=seq, ts=seq
    )


def started(workflow_id: str, seq: int = 1) -> EventBase:
    fields = {"workflow_id": workflow_id, "name": "order", "version": 1, "owner": 1}
    return make_event("workflow_started", fields, node=1, seq=seq, ts=0.0)


async def test_a_subscriber_that_never_reads_loses_the_oldest_and_is_told_how_many() -> None:
    bus = EventBus(buffer=100)
    sub = bus.subscribe()
    n = 10_000
    events = [commit(i) for i in range(n)]
    start = time.perf_counter()
    for e in events:  # no await between: the producer is never made to wait
        bus.publish(e)
    elapsed = time.perf_counter() - start
    assert elapsed < 5  # a hang would show here; the rate itself is measured by the benchmark
    assert sub.lost == n - 100 and sub.received == n and len(sub) == 100
    first = await sub.get()
    assert first == Lost(n - 100) and first.kind == "lost"
    rest = [await sub.get() for _ in range(100)]
    assert rest == events[-100:]  # the newest survive
    assert sub.get_nowait() is None


async def test_loss_is_reported_where_it_happened_in_the_stream() -> None:
    bus = EventBus(buffer=3)
    sub = bus.subscribe()
    for i in range(3):
        bus.publish(commit(i))
    assert await sub.get() == commit(0)  # read one, then fall behind again
    for i in range(3, 8):
        bus.publish(commit(i))
    # buffered: 1, 2 then 3..7 -> only 5, 6, 7 fit; 1, 2, 3, 4 were lost, after commit(0)
    assert sub.drain() == [Lost(4), commit(5), commit(6), commit(7)]
    assert sub.lost == 4


async def test_markers_can_be_switched_off_and_lost_read_instead() -> None:
    bus = EventBus(buffer=2)
    sub = bus.subscribe(markers=False)
    for i in range(5):
        bus.publish(commit(i))
    assert sub.drain() == [commit(3), commit(4)] and sub.lost == 3


async def test_async_iteration_wakes_on_publish_and_ends_when_the_bus_closes() -> None:
    bus = EventBus()
    got: list[object] = []

    async def reader() -> None:
        async for item in bus.subscribe():
            got.append(item)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for i in range(3):
        bus.publish(commit(i))
        await asyncio.sleep(0)
    bus.close()
    await asyncio.wait_for(task, 1)
    assert got == [commit(0), commit(1), commit(2)]
    with pytest.raises(ConfigError, match="closed"):
        bus.subscribe()


async def test_a_closed_subscription_stops_receiving_and_its_reader_ends() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiting = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
    bus.publish(commit(1))
    assert bus.subscribers == () and len(sub) == 0


async def test_callbacks_run_later_from_the_loop_in_batches_with_the_loss() -> None:
    bus = EventBus()
    got: list[object] = []
    calls_during_publish: list[int] = []
    bus.subscribe(got.append, buffer=10)
    for i in range(1000):
        bus.publish(commit(i))
        calls_during_publish.append(len(got))
    assert set(calls_during_publish) == {0}  # never called from inside publish
    await asyncio.sleep(0)
    assert got == [Lost(990), *(commit(i) for i in range(990, 1000))]


async def test_a_failing_callback_is_counted_and_the_others_still_get_events() -> None:
    bus = EventBus()

    def boom(item: object) -> None:
        raise RuntimeError("subscriber bug")

    bad = bus.subscribe(boom)
    good: list[object] = []
    bus.subscribe(good.append)
    bus.publish(commit(1))
    bus.publish(commit(2))
    await asyncio.sleep(0)
    assert bad.errors == 2 and good == [commit(1), commit(2)]


def test_without_an_event_loop_callbacks_run_at_once() -> None:
    bus = EventBus()
    got: list[object] = []
    bus.subscribe(got.append)
    bus.publish(commit(1))
    assert got == [commit(1)]


async def test_filters_by_kind_node_group_and_workflow() -> None:
    bus = EventBus()
    by_node = bus.subscribe(nodes=2)
    by_group = bus.subscribe(groups=[1, 2])
    by_kind = bus.subscribe(kinds="workflow_started")
    by_workflow = bus.subscribe(workflows={"w2"})
    both = bus.subscribe(kinds=["commit_advanced"], nodes=[1])
    events = [commit(1, node=1), commit(2, node=2, group=1), started("w1"), started("w2", 2)]
    for e in events:
        bus.publish(e)
    assert by_node.drain() == [events[1]]
    assert by_group.drain() == [events[1]]
    assert by_kind.drain() == [events[2], events[3]]
    assert by_workflow.drain() == [events[3]]
    assert both.drain() == [events[0]]


def test_a_misspelt_kind_fails_at_once() -> None:
    with pytest.raises(EventSchemaError, match=r"'role_change'.*did you mean 'role_changed'"):
        EventBus().subscribe(kinds="role_change")


async def test_history_serves_late_joiners() -> None:
    bus = EventBus(history=5)
    for i in range(8):
        bus.publish(commit(i, node=1 + i % 2))
    assert bus.history() == [commit(i, node=1 + i % 2) for i in range(3, 8)]
    late = bus.subscribe(nodes=2, replay=True)
    assert late.drain() == [commit(3, node=2), commit(5, node=2), commit(7, node=2)]
    assert bus.history(nodes=1) == [commit(4, node=1), commit(6, node=1)]


async def test_a_producer_in_another_thread_wakes_the_reader() -> None:
    bus = EventBus()
    sub = bus.subscribe()

    def produce() -> None:
        for i in range(50):
            bus.publish(commit(i))

    thread = threading.Thread(target=produce)
    got: list[object] = []
    thread.start()
    while len(got) < 50:
        got.append(await asyncio.wait_for(sub.get(), 2))
    thread.join()
    assert got == [commit(i) for i in range(50)]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="buffer"):
        EventBus(buffer=0)
    with pytest.raises(ConfigError, match="history"):
        EventBus(history=-1)
    with pytest.raises(ConfigError, match="buffer"):
        EventBus().subscribe(buffer=0)


async def test_a_subscriber_that_never_reads_does_not_slow_a_cluster() -> None:
    # the producers are real Raft nodes: they elect and commit while nobody reads the bus
    from raftoral_lab.node import Node
    from raftoral_lab.transport import MemoryNetwork

    bus = EventBus(buffer=10)
    stuck = bus.subscribe()
    net = MemoryNetwork()
    nodes = [Node(i, net.transport(i), voters=[1, 2, 3], tick_seconds=0.01) for i in (1, 2, 3)]
    for node in nodes:
        node.listeners.append(bus.publish)
    try:
        for node in nodes:
            await node.start()
        for i in range(20):
            await nodes[0].propose(b"%d" % i, timeout=10)
    finally:
        for node in nodes:
            await node.stop()
    assert bus.published > 20 and stuck.lost == bus.published - 10
    assert stuck.drain()[0] == Lost(bus.published - 10)
