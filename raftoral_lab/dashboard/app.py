# mypy: disable-error-code="no-untyped-call"
"""The dashboard page: header, topology, logs, timeline, workflows, feed, counters, controls.

`Dashboard` is a Panel `Viewer` over a `Model` (a ClusterView and what goes with it) that
composes one `Viewer` per picture: `TopologyView`, `TimelineView`, `LogsView`,
`WorkflowsView`, `FeedView`, `CountersView` and `TiersView`. A periodic callback (5 per
second by default) folds the new events and asks each view to `refresh()`; only the parts
whose picture changed reach the browser, and nothing is drawn that the events do not say. A
refresh that fails says so on the page, and the next one runs as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.controller import Controller, ObserverController
from raftoral_lab.dashboard.controls import ControlPanel, Workload
from raftoral_lab.dashboard.feed import CountersView, FeedView
from raftoral_lab.dashboard.logs import LogsView
from raftoral_lab.dashboard.model import Model, ReplayModel
from raftoral_lab.dashboard.panes import card, ensure_extension, set_html
from raftoral_lab.dashboard.roles import looks
from raftoral_lab.dashboard.tiers import TiersView
from raftoral_lab.dashboard.timeline import TimelineView
from raftoral_lab.dashboard.topology import TopologyView
from raftoral_lab.dashboard.workflows import WorkflowsView

REFRESH_MS = 200
"""Redraw period: 5 refreshes per second."""

_log = logging.getLogger(__name__)


class Dashboard(Viewer):
    """The whole page for one session (or one notebook output)."""

    def __init__(
        self,
        model: Model,
        controller: Controller | None = None,
        *,
        group: int = 0,
        workload: Workload | None = None,
        refresh_ms: int = REFRESH_MS,
        start: bool = True,
    ) -> None:
        super().__init__()
        ensure_extension()
        self.model = model
        self.controller = controller or ObserverController()
        self.group = group
        self._drawn = -1
        self.refreshes = 0
        self.failures = 0
        """Refreshes that raised (each shown on the page; the next one runs as usual)."""
        self.error: str | None = None
        """Why this page's last drawing failed, until one succeeds."""
        self.header = pn.pane.HTML(
            "",
            sizing_mode="stretch_width",
            stylesheets=[theme.HTML_CSS, theme.HEADER_CSS],
            margin=(8, 8),
            css_classes=["header"],
        )
        self.alert = pn.pane.Alert(
            "",
            alert_type="danger",
            visible=False,
            sizing_mode="stretch_width",
            margin=(0, 8),
            css_classes=["refresh-error"],
        )
        """What went wrong (the model's error, this page's drawing error), while it stands."""
        self.topology = TopologyView(model, group=group)
        self.timeline = TimelineView(model)
        self.logs = LogsView(model, group=group)
        self.workflows = WorkflowsView(model, self.controller.workflow_results)
        self.feed = FeedView(model, group=group)
        self.counters = CountersView(model)
        self.tiers = TiersView(model)
        """The management group above its execution clusters (shown for a scaled cluster)."""
        self.views: tuple[Any, ...] = (
            self.topology,
            self.logs,
            self.timeline,
            self.workflows,
            self.feed,
            self.counters,
            self.tiers,
        )
        """Every picture; each has `refresh()`, called when new events were folded."""
        self.group_picker = pn.widgets.RadioButtonGroup(
            options=[f"group {group}"],
            value=f"group {group}",
            visible=False,
            color="primary",
            variant="outline",
            stylesheets=[theme.CONTROL_CSS],
        )
        self.group_picker.param.watch(self._group_picked, "value")
        self.replay_controls: list[Any] = []
        if isinstance(model, ReplayModel):
            self._build_replay(model)
        self.controls = ControlPanel(
            model, self.controller, group=group, workload=workload, on_change=self.refresh
        )
        self._layout = self._build_layout()
        self._drawn = model.version  # each view drew the model as it is now
        self._draw_page()
        self.refresh()
        self._callback: Any = None
        if start:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=refresh_ms)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # --- layout --------------------------------------------------------------------------------

    def _build_layout(self) -> pn.viewable.Viewable:
        main = pn.Column(
            self.group_picker,
            self.tiers,
            pn.Row(
                pn.Column(self.topology, width=720),
                pn.Column(self.counters, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            self.timeline,  # the whole width: its time axis and names stay readable
            self.logs,
            self.workflows,
            self.feed,
            sizing_mode="stretch_width",
        )
        top: list[Any] = [self.header, self.alert]
        if self.replay_controls:  # a recording: nothing to control, the slider instead
            top.append(card("Time", *self.replay_controls, css_classes=["time-card"]))
            body: Any = main
        else:
            sidebar = pn.Column(self.controls, width=500, margin=(8, 8))
            body = pn.Row(sidebar, main, sizing_mode="stretch_width")
        return pn.Column(
            *top,
            body,
            sizing_mode="stretch_width",
            styles={"background": theme.BACKGROUND},
            css_classes=["raftoral-dashboard"],
        )

    def _build_replay(self, model: ReplayModel) -> None:
        ticks = model.time_unit == "tick"
        span = max(model.end - model.start, 1e-6)
        if ticks:  # the simulator's own tick numbers
            start, end, step = model.start, max(model.end, model.start + 1), 1.0
            name = "Time (tick)"
        else:  # seconds from the first event
            start, end, step = 0.0, span, max(span / 1000.0, 0.001)
            name = "Time (seconds from the first event)"
        self._slider_offset = 0.0 if ticks else model.start
        self.slider = pn.widgets.FloatSlider(
            label=name,
            start=start,
            end=end,
            step=step,
            value=start,
            sizing_mode="stretch_width",
            css_classes=["time-slider"],
            stylesheets=[theme.CONTROL_CSS, _SLIDER_CSS],
            height=70,
        )
        self.slider.param.watch(self._slider_moved, "value")
        self.play = pn.widgets.Toggle(
            label="▶ Play",
            width=130,
            height=48,
            color="primary",
            stylesheets=[theme.CONTROL_CSS],
        )
        self.play.param.watch(self._play_toggled, "value")
        self.speed = pn.widgets.Select(
            label="",
            options=["1x", "2x", "5x", "10x", "0.5x"],
            value="1x",
            width=90,
            stylesheets=[theme.CONTROL_CSS],
        )
        self._play_cb: Any = None
        self.replay_controls = [
            pn.Row(self.play, self.speed, self.slider, sizing_mode="stretch_width")
        ]

    def _slider_moved(self, event: Any) -> None:
        model = self.model
        if isinstance(model, ReplayModel):
            model.seek(self._slider_offset + float(event.new))
            self.refresh()

    def _play_toggled(self, event: Any) -> None:
        if event.new:
            self.play.label = "⏸ Pause"
            self._play_cb = pn.state.add_periodic_callback(self._play_step, period=100)
        else:
            self.play.label = "▶ Play"
            if self._play_cb is not None:
                self._play_cb.stop()
                self._play_cb = None

    def _play_step(self) -> None:
        model = self.model
        if not isinstance(model, ReplayModel):
            return
        speed = float(str(self.speed.value).rstrip("x"))
        per_step = 0.1 * speed * (10.0 if model.time_unit == "tick" else 1.0)
        value = min(float(self.slider.value or 0.0) + per_step, float(self.slider.end))
        self.slider.value = value
        if value >= self.slider.end:
            self.play.value = False

    # --- drawing -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fold what arrived and redraw what changed (the periodic callback). A failure is
        shown on the page, under the header, and does not stop the refreshes."""
        model = self.model
        try:
            model.refresh(min_interval=REFRESH_MS / 2000)
        except Exception as error:  # a source or a fold that broke: say so, stay live
            self.failures += 1
            model.error = (
                f"Refreshing failed ({self.failures}x, last at {time.strftime('%H:%M:%S')}): "
                f"{type(error).__name__}: {error}. The page keeps refreshing; what it shows "
                "may miss the events of the failed refresh."
            )
            if self.failures == 1:
                _log.exception("dashboard refresh failed")
        self.refreshes += 1
        try:
            if model.version == self._drawn:
                self._draw_header()  # the clock in the header moves
                if model.wall_clock and time.monotonic() - self.timeline.drawn_at > 1.0:
                    self.timeline.refresh()  # and time goes on along the timeline
            else:
                self.draw()
                self._drawn = model.version
                self.error = None
        except Exception as error:  # a drawing bug: the next refresh tries again
            if self.error is None:
                _log.exception("dashboard drawing failed")
            self.error = f"Drawing failed: {type(error).__name__}: {error}"
        self._draw_alert()

    def draw(self) -> None:
        """Every view, then the header and what follows the cluster (groups, controls)."""
        for view in self.views:
            view.refresh()
        self._draw_page()

    def _draw_page(self) -> None:
        self._draw_header()
        self._draw_alert()
        groups = [f"group {g}" for g in self.model.view.groups()]
        if len(groups) > 1 and list(self.group_picker.options) != groups:
            self.group_picker.options = groups
            self.group_picker.visible = True
        self.controls.update()

    def _draw_alert(self) -> None:
        problems = [p for p in (self.model.error, self.error) if p]
        text = "\n\n".join(problems)
        if self.alert.object != text:
            self.alert.object = text
        if self.alert.visible != bool(problems):
            self.alert.visible = bool(problems)

    def _group_picked(self, event: Any) -> None:
        """Topology, logs and controls follow the Raft group picked (the header too)."""
        self.group = int(str(event.new).split()[-1])
        self.controls.group = self.group
        for view in (self.topology, self.logs, self.feed):
            view.group = self.group
        self.draw()

    def _draw_header(self) -> None:
        set_html(self.header, render_header(self.model, self.group, self.controller))

    def select_workflow(self, workflow_id: str) -> None:
        """Show the checkpoint queues of `workflow_id` (as a click on its row does)."""
        self.workflows.select(workflow_id)

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None


_SLIDER_CSS = """
.bk-slider-title { font-size: 20px !important; font-weight: 700; }
.noUi-horizontal { height: 16px !important; }
.noUi-horizontal .noUi-handle { width: 30px !important; height: 30px !important;
  top: -8px !important; right: -15px !important; }
"""


def render_header(model: Model, group: int, controller: Controller) -> str:
    view = model.view
    nodes = looks(view, group)
    leader = view.leader(group)
    alive = sum(1 for n in nodes if n.status == "alive")
    term = view.term(group)
    commit = view.replica(leader, group).commit_index if leader is not None else None
    mode_colors = {
        "live": "#009E73",
        "simulator": "#0072B2",
        "replay": "#CC79A7",
        "remote": "#E69F00",
    }
    mode = theme.chip(model.mode, mode_colors.get(model.mode, theme.MUTED))
    if leader is not None:
        lead = theme.chip(f"leader n{leader} ★", theme.ROLE_COLORS["leader"], ink="#1F2430")
    else:
        lead = theme.chip("no leader", theme.ROLE_COLORS["candidate"])
    now = model.now
    if now is None:
        clock = "no events yet"
    elif model.time_unit == "tick":
        clock = f"tick {now:g}"
    else:
        clock = f"{now - (model.t0 or now):.1f} s"
    stats = [
        ("term", str(term)),
        ("commit", "-" if commit is None else str(commit)),
        ("nodes alive", f"{alive}/{len(nodes)}"),
        ("time", clock),
    ]
    stat_html = "".join(
        f'<span style="margin-left:26px;font-size:15px;opacity:.75;text-transform:uppercase;'
        f'letter-spacing:.8px">{k}</span> <span style="font-size:26px;font-weight:800" '
        f'data-header="{k}">{escape(v)}</span>'
        for k, v in stats
    )
    notes = []
    if model.error:  # the alert under the header says what
        notes.append('<span style="color:#FFB4A8" data-error="true"> · error, see below</span>')
    if model.notice:
        notes.append(f'<span style="opacity:.8"> {escape(model.notice)}</span>')
    if not controller.capabilities:
        notes.append('<span style="opacity:.8"> · watching only</span>')
    return (
        '<div style="display:flex;align-items:center;flex-wrap:wrap;gap:6px;color:#fff" '
        f'data-leader="{leader if leader is not None else ""}">'
        '<span style="font-size:30px;font-weight:850;letter-spacing:.3px;margin-right:14px">'
        "raftoral-lab</span>"
        f'<span style="font-size:22px;opacity:.85;margin-right:12px">{escape(model.title)}</span>'
        f"{mode}{lead}{stat_html}{''.join(notes)}</div>"
    )


def stop_all(dashboards: Sequence[Dashboard]) -> None:
    for dashboard in dashboards:
        dashboard.stop()


Factory = Callable[[], Dashboard]
