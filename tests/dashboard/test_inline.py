"""`lab.dashboard()` and `sim.dashboard()` for a notebook: the same page as a Panel object."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

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
            assert f'data-node="{leader}"' in str(dashboard.topology.pane.object)
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
    assert "group 1" in str(dashboard.timeline.pane.object)
    assert str(dashboard.timeline.pane.object).count("<svg") == 2
    assert 'data-leader="true"' in str(dashboard.topology.pane.object)
    dashboard.group_picker.value = "group 1"
    assert dashboard.group == 1
    assert dashboard.header.object is not None and 'data-leader="2"' in dashboard.header.object


class _BrokenOnce:
    """An event source whose first poll raises (a bug, a lost connection), then delivers."""

    lost = 0

    def __init__(self, events: list[object]) -> None:
        self.events = events
        self.polls = 0

    def poll(self) -> list[object]:
        self.polls += 1
        if self.polls == 1:
            raise RuntimeError("the source broke")
        batch, self.events = self.events, []
        return batch


def test_a_failed_refresh_is_shown_on_the_page_and_refreshing_goes_on() -> None:
    from raftoral_lab.dashboard.model import Model
    from raftoral_lab.events import make_event

    fields = {"role": "leader", "term": 3, "leader": 2}
    source = _BrokenOnce([make_event("role_changed", fields, node=2, seq=1, ts=1.0)])
    dashboard = Dashboard(Model(source), start=False)  # type: ignore[arg-type]
    assert dashboard.failures == 1
    assert dashboard.alert.visible
    assert "RuntimeError: the source broke" in str(dashboard.alert.object)
    assert 'data-error="true"' in str(dashboard.header.object)
    time.sleep(0.15)  # past the model's minimum interval between polls
    dashboard.refresh()  # the next refresh runs as usual and draws what arrived
    assert source.polls == 2
    assert dashboard.model.view.leader() == 2
    assert 'data-leader="2"' in str(dashboard.header.object)
    assert 'data-node="2"' in str(dashboard.topology.pane.object)
    assert dashboard.alert.visible  # what the failed refresh lost may be missing: still said


def test_a_view_that_fails_to_draw_is_shown_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from raftoral_lab.dashboard.model import ListSource, Model
    from raftoral_lab.events import make_event

    events: list[object] = []
    dashboard = Dashboard(Model(ListSource(events)), start=False)  # type: ignore[arg-type]
    assert not dashboard.alert.visible

    def fail() -> None:
        raise ValueError("cannot draw this log")

    monkeypatch.setattr(dashboard.logs, "refresh", fail)
    fields = {"role": "leader", "term": 3, "leader": 1}
    events.append(make_event("role_changed", fields, node=1, seq=1, ts=1.0))
    time.sleep(0.15)  # past the model's minimum interval between polls
    dashboard.refresh()
    assert dashboard.alert.visible and "ValueError: cannot draw this log" in str(
        dashboard.alert.object
    )
    monkeypatch.undo()  # the bug fixed
    dashboard.refresh()  # nothing new arrived, yet the failed drawing is tried again
    assert not dashboard.alert.visible and dashboard.error is None
    assert 'data-node="1"' in str(dashboard.logs.pane.object)


def test_each_picture_is_a_viewer_the_dashboard_composes_and_refreshes() -> None:
    from panel.viewable import Viewer

    import raftoral_lab.dashboard as dash
    from raftoral_lab.dashboard.model import ListSource, Model
    from raftoral_lab.events import make_event

    def leader(node: int, seq: int) -> object:
        fields = {"role": "leader", "term": seq, "leader": node}
        return make_event("role_changed", fields, node=node, seq=seq, ts=float(seq))

    events: list[object] = [leader(1, 1)]
    model = Model(ListSource(events))  # type: ignore[arg-type]
    dashboard = Dashboard(model, start=False)
    names = ("TopologyView", "TimelineView", "LogsView", "WorkflowsView", "FeedView")
    for name in (*names, "CountersView", "TiersView"):
        cls = getattr(dash, name)
        assert issubclass(cls, Viewer) and name in dash.__all__
        assert sum(isinstance(view, cls) for view in dashboard.views) == 1, name
    topology = dash.TopologyView(model)  # one alone, as in a notebook cell
    assert 'data-node="1"' in str(topology.pane.object)
    assert topology.__panel__() is not None
    events.append(leader(2, 2))
    time.sleep(0.15)  # past the model's minimum interval between polls
    dashboard.refresh()  # the dashboard folds and refreshes its views...
    assert 'data-header="term">2<' in str(dashboard.header.object)
    assert "n2" in str(dashboard.feed.pane.object)
    before = str(topology.pane.object)
    topology.refresh()  # ...a view of the same model outside it refreshes when asked
    assert str(topology.pane.object) != before
