"""A dashboard far from the cluster: events through a RemoteObserver, controls through the
RemoteController's control messages, both on a broker-like memory network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from raftoral_lab.core import RaftConfig
from raftoral_lab.dashboard.controller import Controller
from raftoral_lab.dashboard.model import BusSource, Model
from raftoral_lab.dashboard.topology import render_topology
from raftoral_lab.events import EventBus
from raftoral_lab.node import Node
from raftoral_lab.node.observer import RemoteObserver
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.node.remote_control import RemoteControlError, RemoteController
from raftoral_lab.transport import MemoryNetwork

TICK = 0.02
IDS = (1, 2, 3)
CLIENT = 1_000_000_007


def seen(model: Model) -> Model:
    """The model after folding what arrived (for conditions on what the page shows)."""
    model.refresh()
    return model


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def remote() -> AsyncIterator[tuple[dict[int, Node], RemoteController, Model]]:
    network = MemoryNetwork(cluster="remote")
    bus = EventBus(buffer=100_000)
    model = Model(BusSource(bus), mode="remote")
    client = network.transport(CLIENT, presence=False)
    controller = RemoteController(client, request_timeout=5.0)
    await controller.start()
    observer = RemoteObserver(client, bus=bus)
    await observer.start()
    nodes = {
        i: Node(
            i,
            network.transport(i),
            voters=list(IDS),
            tick_seconds=TICK,
            config=RaftConfig(election_timeout=10),
        )
        for i in IDS
    }
    publishers = [EventPublisher(node) for node in nodes.values()]
    await asyncio.gather(*(n.start() for n in nodes.values()))
    try:
        yield nodes, controller, model
    finally:
        await asyncio.gather(*(n.stop() for n in nodes.values()), return_exceptions=True)
        for publisher in publishers:
            close = getattr(publisher, "close", None)
            if close is not None:
                close()
        await observer.stop()
        await controller.close()


async def test_the_remote_dashboard_sees_and_controls_the_cluster(
    remote: tuple[dict[int, Node], RemoteController, Model],
) -> None:
    nodes, controller, model = remote
    assert isinstance(controller, Controller)
    await until(lambda: seen(model).view.leader() is not None, "a leader on the page")
    leader = model.view.leader()
    assert leader is not None
    assert 'data-leader="true"' in render_topology(model)
    await until(lambda: set(controller.nodes()) == set(IDS), "presence of every node")

    # partition: every node gets the peers it must block
    others = [i for i in IDS if i != leader]
    await controller.partition([leader], others)
    await until(
        lambda: (
            nodes[leader].transport.faults.blocked == set(others)
            and all(nodes[o].transport.faults.blocked == {leader} for o in others)
        ),
        "the partition controls to arrive",
    )
    await until(
        lambda: seen(model).view.leader() not in (None, leader),
        "the majority's leader on the page",
    )
    await controller.heal()
    await until(
        lambda: all(not n.transport.faults.blocked for n in nodes.values()), "the heal to arrive"
    )
    await controller.set_drop_rate(0.0)
    await controller.set_delay(0.0, 0.0)

    # kill: a crash control; the node stops and the page greys it
    victim = others[0]
    await controller.kill(victim)
    await until(lambda: not nodes[victim].running, "the crash control")
    await until(
        lambda: seen(model).view.nodes[victim].status == "crashed",
        "the crash on the page",
    )
    assert await controller.propose(b"from afar") is not None

    for refused in (controller.restart(victim), controller.join(), controller.set_tick(0.1)):
        with pytest.raises(RemoteControlError):
            await refused
    assert "restart" in controller.unavailable and "kill" in controller.capabilities
