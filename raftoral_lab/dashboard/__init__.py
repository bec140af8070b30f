"""The Panel dashboard: live views over a `ClusterView`, controls through a `Controller`.

```python
lab.dashboard()                      # in Jupyter: raftoral_lab.dashboard.lab_dashboard(lab)
sim.dashboard()                      # raftoral_lab.dashboard.simulation_dashboard(sim)
replay_dashboard("run.jsonl")        # a recording, with a time slider
```

Each picture is a Panel `Viewer` over the dashboard's `Model` (the folded `ClusterView`) with a
`refresh()`: `TopologyView`, `TimelineView`, `LogsView`, `WorkflowsView`, `FeedView`,
`CountersView`, `TiersView`. `Dashboard` composes them; one alone works in a notebook too
(`TopologyView(dashboard.model)`).

This package imports only `raftoral_lab.events` and `raftoral_lab.errors` (DESIGN.md section
2): a Lab or a Simulation is handed in and used through its public methods, wrapped in
`LabController` / `SimulationController`. Panel is imported on first use of a view, so
`from raftoral_lab.dashboard.controller import Controller` stays light.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raftoral_lab.dashboard.controller import (
    Controller,
    ControlUnavailable,
    GatedController,
    LabController,
    ObserverController,
    SimulationController,
    SimulatorControls,
)

if TYPE_CHECKING:
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.feed import CountersView, FeedView
    from raftoral_lab.dashboard.logs import LogsView
    from raftoral_lab.dashboard.tiers import TiersView
    from raftoral_lab.dashboard.timeline import TimelineView
    from raftoral_lab.dashboard.topology import TopologyView
    from raftoral_lab.dashboard.workflows import WorkflowsView

__all__ = [
    "ControlUnavailable",
    "Controller",
    "CountersView",
    "Dashboard",
    "FeedView",
    "GatedController",
    "LabController",
    "LogsView",
    "ObserverController",
    "SimulationController",
    "SimulatorControls",
    "TiersView",
    "TimelineView",
    "TopologyView",
    "WorkflowsView",
    "lab_dashboard",
    "replay_dashboard",
    "simulation_dashboard",
]

_LAZY = {
    "Dashboard": "app",
    "CountersView": "feed",
    "FeedView": "feed",
    "LogsView": "logs",
    "TiersView": "tiers",
    "TimelineView": "timeline",
    "TopologyView": "topology",
    "WorkflowsView": "workflows",
}
"""The Panel classes, imported (with Panel) on first use."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(import_module(f"raftoral_lab.dashboard.{module}"), name)
    raise AttributeError(f"module 'raftoral_lab.dashboard' has no attribute {name!r}")


def lab_dashboard(
    lab: Any, *, controller: Controller | None = None, title: str | None = None
) -> Dashboard:
    """The live dashboard of an in-process `Lab` (display it in a notebook cell, or
    `.servable()` it). Controls act on the lab; its events are read from `lab.events`, which
    keeps every event unless the Lab was made with `max_events` (the demo's is); the
    dashboard itself keeps the folded state and only the newest events, for its feed."""
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.model import ListSource, Model

    model = Model(
        ListSource(lab.events),
        title=title or f"cluster {getattr(lab, 'cluster', 'lab')!r}",
        mode="live",
    )
    return Dashboard(model, controller or LabController(lab))


def simulation_dashboard(
    sim: Any, *, tick_seconds: float = 0.1, paused: bool = False, title: str | None = None
) -> Dashboard:
    """The dashboard of a `Simulation`: it runs `1 / tick_seconds` ticks per second while
    shown, with pause, step one event (the next message delivery), step one tick and
    run-until-leader controls."""
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.model import ListSource, Model

    controller = SimulationController(sim, tick_seconds=tick_seconds, paused=paused)
    seed = getattr(sim, "seed", None)
    model = Model(
        ListSource(controller.events),  # a tick shown one message at a time
        title=title or (f"simulation, seed {seed}" if seed is not None else "simulation"),
        mode="simulator",
        clock=controller.advance,
        time_unit="tick",
    )
    return Dashboard(model, controller)


def replay_dashboard(source: str | Path | Any, *, title: str | None = None) -> Dashboard:
    """The dashboard of a recording (a JSONL path, a `Recording`, or a list of events),
    with a time slider; it watches only."""
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.replay import replay_model

    return Dashboard(
        replay_model(source, title=title), ObserverController("a recording cannot be changed")
    )
