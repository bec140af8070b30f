"""The controllers behind the buttons, and the event sources behind the views, without a
browser: a Lab (memory network), a Simulation, a cluster on another thread's loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from raftoral_lab.cli.demo import LabThread
from raftoral_lab.dashboard.controller import (
    Controller,
    ControlUnavailable,
    LabController,
    SimulationController,
    SimulatorControls,
    simulator_of,
    tick_seconds_of,
)
from raftoral_lab.dashboard.model import BusSource, ListSource, Model
from raftoral_lab.events import EventBase, EventBus, make_event
from raftoral_lab.events.eventlog import EventLog
from raftoral_lab.lab import Lab
from raftoral_lab.sim import Simulation


def ev(node: int, seq: int, ts: float) -> object:
    return make_event("commit_advanced", {"commit_index": seq}, node=node, seq=seq, ts=ts)


async def test_lab_controller_drives_a_lab() -> None:
    async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
        controller = LabController(lab)
        assert isinstance(controller, Controller)
        assert {"kill", "restart", "join", "partition", "tick"} <= controller.capabilities
        leader = await lab.wait_for_leader()
        assert await controller.propose(b"x") is not None
        await controller.kill(leader)
        assert leader not in lab.alive()
        await lab.wait_for_leader(exclude={leader})
        await controller.restart(leader)
        others = sorted(set(lab.nodes) - {leader})
        await controller.partition([leader], others)
        await controller.heal()
        await controller.set_drop_rate(0.1)
        await controller.set_drop_rate(0.0)
        await controller.set_delay(0.0, 0.01)
        await controller.set_tick(0.03)
        assert tick_seconds_of(controller) == pytest.approx(0.03)
        assert all(node.tick_seconds == pytest.approx(0.03) for node in lab.nodes.values())
        with pytest.raises(ControlUnavailable):
            await controller.set_drop_rate(2.0)
        kinds = {e.kind for e in lab.events}
        assert {"node_crashed", "node_restarted", "partitioned", "healed"} <= kinds


async def test_workflow_controls_say_why_they_are_missing() -> None:
    async with Lab(nodes=1, broker="memory", tick_seconds=0.02) as lab:
        controller = LabController(lab)
        if "workflows" in controller.capabilities:
            pytest.skip("this Lab runs workflows: nothing is missing")
        assert "workflow layer" in controller.unavailable["workflows"]
        assert controller.workflow_names() == []
        with pytest.raises(ControlUnavailable, match="workflow"):
            await controller.start_workflow("checkout", 1, {})


def test_a_lab_on_its_own_thread_is_controlled_from_another_loop() -> None:
    runner = LabThread(Lab(nodes=3, broker="memory", tick_seconds=0.02))
    runner.start()
    try:
        controller = runner.controller()
        model = Model(ListSource(runner.lab.events))

        async def drive() -> int:
            assert threading.current_thread() is threading.main_thread()
            deadline = time.monotonic() + 10
            while model.view.leader() is None:
                assert time.monotonic() < deadline, "no leader seen"
                model.refresh()
                await asyncio.sleep(0.02)
            leader = model.view.leader()
            assert leader is not None
            await controller.kill(leader)
            return leader

        killed = asyncio.run(drive())
        deadline = time.monotonic() + 10
        while model.view.leader() in (None, killed):
            assert time.monotonic() < deadline, "no new leader seen"
            model.refresh()
            time.sleep(0.02)
        assert model.view.nodes[killed].status == "crashed"
    finally:
        runner.stop()


async def test_simulation_controller_pauses_steps_and_runs_until_a_leader() -> None:
    sim = Simulation(nodes=3, seed=1)
    controller = SimulationController(sim, tick_seconds=0.25)
    assert simulator_of(controller) is controller
    assert isinstance(controller, SimulatorControls)
    assert controller.advance(100.0) == 0  # the first call only sets the clock
    assert controller.advance(101.0) == 4
    await controller.pause()
    assert controller.advance(200.0) == 0
    await controller.step(3)
    assert sim.tick == 7 and controller.paused
    assert await controller.run_until_leader()
    leader = sim.leader()
    assert leader is not None
    await controller.kill(leader)
    await controller.partition([1], [2, 3])
    await controller.heal()
    await controller.set_delay(1, 2)
    await controller.resume()
    assert not controller.paused
    with pytest.raises(ControlUnavailable):
        await SimulationController(Simulation(nodes=3)).propose(b"no leader yet")


def _fates(events: Sequence[EventBase]) -> int:
    return sum(e.kind in ("message_delivered", "message_dropped") for e in events)


async def test_step_event_moves_the_picture_one_message_at_a_time() -> None:
    """The "Step 1 event" button: each step shows at most one more message delivered (or
    dropped), and stops there or at the end of a tick; the run is the one the seed gives."""
    sim = Simulation(nodes=3, seed=4)
    controller = SimulationController(sim, paused=True)
    assert await controller.run_until_leader()
    assert sim.propose(b"x") is not None
    model = Model(ListSource(controller.events))
    model.refresh()
    ticks_before = sim.tick
    steps = 0
    while sim.tick < ticks_before + 5 or controller.shown is not None:
        shown_before = len(controller.events)
        fates_before = _fates(controller.events)
        said = await controller.step_event()
        steps += 1
        shown = list(controller.events)
        assert _fates(shown) - fates_before <= 1, said
        step = shown[shown_before:]
        assert len({e.tick for e in step}) <= 1, "one step stays inside one tick"
        if step and step[-1].kind not in ("message_delivered", "message_dropped"):
            rest = sim.events[len(shown) :]  # the step ended at the end of its tick
            assert not rest or rest[0].tick != step[-1].tick, said
        model.refresh()
        folded = sum(c.delivered + c.dropped for c in model.view.messages.values())
        assert folded == _fates(shown)  # the picture is the events shown, no more
    assert steps > 5, "a tick that delivers several messages takes several steps"
    assert controller.paused
    # the picture caught up with the simulation, which ran exactly as the seed says
    assert model.view.leader() == sim.leader()
    twin = Simulation(nodes=3, seed=4)
    twin.run_until(lambda s: s.leader() is not None)
    twin.propose(b"x")
    twin.run(sim.tick - twin.tick)
    assert [(e.kind, e.node, e.tick) for e in twin.events] == [
        (e.kind, e.node, e.tick) for e in sim.events
    ]


async def test_a_control_shows_the_rest_of_a_tick_first() -> None:
    sim = Simulation(nodes=3, seed=4)
    controller = SimulationController(sim, paused=True)
    assert await controller.run_until_leader()
    sim.propose(b"x")
    while controller.shown is None:  # until a step holds part of a tick back
        await controller.step_event()
    leader = sim.leader()
    assert leader is not None
    await controller.kill(leader)
    assert controller.shown is None and len(controller.events) == len(sim.events)
    assert controller.events[-1].kind == "node_crashed"
    while controller.shown is None:
        await controller.step_event()
    tick = sim.tick
    await controller.step(1)  # the rest of the tick shown in part: that is the tick
    assert sim.tick == tick and controller.shown is None
    assert len(controller.events) == len(sim.events)
    await controller.step(1)
    assert sim.tick == tick + 1


def test_list_source_reads_a_growing_list_and_a_bounded_event_log() -> None:
    events: list[object] = [ev(1, i, float(i)) for i in range(1, 6)]
    source = ListSource(events)  # type: ignore[arg-type]
    assert len(source.poll()) == 5 and source.poll() == ()
    events.append(ev(1, 6, 6.0))
    assert [e.seq for e in source.poll()] == [6]  # type: ignore[attr-defined]

    log = EventLog(maxlen=4)
    source = ListSource(log)
    for i in range(1, 4):
        log.append(ev(1, i, float(i)))  # type: ignore[arg-type]
    assert [e.seq for e in source.poll()] == [1, 2, 3]
    for i in range(4, 10):
        log.append(ev(1, i, float(i)))  # type: ignore[arg-type]
    # the log kept 6..9; 4 and 5 fell off its front before they were read: counted as lost
    assert [e.seq for e in source.poll()] == [6, 7, 8, 9]
    assert source.lost == 2


def test_the_demo_feeds_its_dashboard_from_a_bounded_event_log() -> None:
    """`raftoral-lab demo` and `panel serve dashboards/lab.py` build their Lab with
    `make_lab`: its event log keeps the newest `MAX_EVENTS`, so a long class stays flat."""
    import argparse

    from raftoral_lab.cli.demo import MAX_EVENTS, make_lab

    options = {"nodes": 3, "broker": "memory", "cluster": "lab", "tick": 0.05}
    lab, _ = make_lab(argparse.Namespace(**options, no_check_quorum=False))
    assert isinstance(lab.events, EventLog) and lab.events.maxlen == MAX_EVENTS
    assert Lab(nodes=1, broker="memory").events.maxlen is None  # a notebook's Lab keeps all


def test_bus_source_reads_from_a_publisher_on_another_thread() -> None:
    bus = EventBus(buffer=10)
    source = BusSource(bus, buffer=10)

    def publish() -> None:
        for i in range(1, 31):
            bus.publish(ev(2, i, float(i)))  # type: ignore[arg-type]

    thread = threading.Thread(target=publish)
    thread.start()
    thread.join()
    got = source.poll()
    assert [e.seq for e in got] == list(range(21, 31))  # the newest kept
    assert source.lost == 20
    model = Model(source)
    model.fold(got)
    assert model.view.replica(2).commit_index == 30


async def test_the_workload_makes_what_the_cluster_takes() -> None:
    """Raw writes for a command log; workflows for a workflow cluster (whose log refuses raw
    entries): the demo's workload switch must put real work on a workflow cluster."""
    from raftoral_lab.dashboard.controls import Workload
    from raftoral_lab.samples import app

    async def run_workload(lab: Lab) -> Workload:
        await lab.wait_for_leader()
        workload = Workload(rate=20.0)
        example = {"order_id": "o-1", "item": "book"}
        workload.start(LabController(lab, examples={("process_order", 1): example}))
        deadline = time.monotonic() + 15
        while workload.committed < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        workload.stop()
        assert workload.failed == 0, workload.last_error
        assert workload.committed >= 5
        return workload

    async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as plain:
        await run_workload(plain)
        assert Workload.unit(LabController(plain)) == "writes"
    async with Lab(nodes=3, app=app, broker="memory", tick_seconds=0.02) as workflows:
        assert Workload.unit(LabController(workflows)) == "workflows"
        await run_workload(workflows)
        assert len(workflows.list_workflows()) >= 5
