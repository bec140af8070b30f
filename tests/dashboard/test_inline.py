"""`lab.dashboard()` and `sim.dashboard()` for a notebook: the same page as a Panel object."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from raftoral_lab.dashboard import Dashboard, lab_dashboard, replay_dashboard
from raftoral_lab.dashboard.roles import looks
from raftoral_lab.events.recording import save
from raftoral_lab.lab import Lab
from raftoral_lab.sim import Simulation


def test_sim_dashboard_runs_the_simulation_while_shown() -> None:
    sim = Simulation(nodes=3, seed=2)
    dashboard = sim.dashboard()
    try:
        assert isinstance(dashboard, Dashboard)
        assert dashboard.model.mode == "simulator"
        deadline = time.monotonic() + 10
        while dashboard.model.view.leader() is None:
            assert time.monotonic() < deadline, "the simulation did not elect a leader"
            time.sleep(0.05)
            dashboard.refresh()
        assert sim.tick > 0
        assert dashboard.model.view.leader() == sim.leader()
        assert dashboard.controls.sim is not None  # pause, step, run until a leader
    finally:
        dashboard.stop()


async def test_lab_dashboard_shows_the_lab() -> None:
    async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
        dashboard = lab_dashboard(lab)
        try:
            leader = await lab.wait_for_leader()
            deadline = time.monotonic() + 10
            while dashboard.model.view.leader() != leader:
                assert time.monotonic() < deadline, "the page never showed the leader"
                await asyncio.sleep(0.05)
                dashboard.refresh()
            assert [look.node for look in looks(dashboard.model.view)] == [1, 2, 3]
            assert "kill" in dashboard.controller.capabilities
            assert f'data-node="{leader}"' in str(dashboard.topology.object)
        finally:
            dashboard.stop()


def test_replay_dashboard_of_a_recording(tmp_path: Path) -> None:
    sim = Simulation(nodes=3, seed=1)
    sim.run(100)
    path = save(tmp_path / "run.jsonl", sim.events)
    dashboard = replay_dashboard(path)
    try:
        assert dashboard.controller.capabilities == frozenset()
        dashboard.slider.value = dashboard.slider.end
        assert dashboard.model.view.leader() == sim.leader()
    finally:
        dashboard.stop()


def test_each_raft_group_has_its_timeline_and_can_be_picked() -> None:
    from raftoral_lab.dashboard.model import ListSource, Model
    from raftoral_lab.events import make_event

    events = []
    for group, leader in ((0, 1), (1, 2)):
        for node in (1, 2, 3):
            role = "leader" if node == leader else "follower"
            fields = {"role": role, "term": 2, "leader": leader}
            events.append(
                make_event(
                    "role_changed", fields, node=node, group=group, seq=group * 10 + node, ts=1.0
                )
            )
    dashboard = Dashboard(Model(ListSource(events)), start=False)
    assert dashboard.group_picker.visible
    assert "group 1" in str(dashboard.timeline.object)
    assert str(dashboard.timeline.object).count("<svg") == 2
    assert 'data-leader="true"' in str(dashboard.topology.object)
    dashboard.group_picker.value = "group 1"
    assert dashboard.group == 1
    assert dashboard.header.object is not None and 'data-leader="2"' in dashboard.header.object
