# mypy: disable-error-code="no-untyped-call"
"""The dashboard page: header, topology, logs, timeline, workflows, feed, counters, controls.

`Dashboard` is a Panel `Viewer` over a `Model` (a ClusterView and what goes with it). A
periodic callback (5 per second by default) folds the new events and redraws only the parts
whose picture changed; nothing is drawn that the events do not say.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from html import escape
from importlib import import_module
from typing import Any

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.controller import Controller, ObserverController
from raftoral_lab.dashboard.controls import ControlPanel, Workload
from raftoral_lab.dashboard.feed import CATEGORIES, render_counters, render_feed
from raftoral_lab.dashboard.logs import render_log_legend, render_logs
from raftoral_lab.dashboard.model import Model, ReplayModel
from raftoral_lab.dashboard.roles import looks
from raftoral_lab.dashboard.tiers import TiersView
from raftoral_lab.dashboard.timeline import render_timeline, render_timeline_legend
from raftoral_lab.dashboard.topology import render_legend, render_topology
from raftoral_lab.dashboard.workflows import COLUMNS, render_queues, workflow_rows

pd: Any = import_module("pandas")  # the workflow table's frames (no stubs: typed as Any)

REFRESH_MS = 200
"""Redraw period: 5 refreshes per second."""

DEFAULT_CATEGORIES = ["roles", "log", "lab", "workflows"]

_extension_loaded = False


def ensure_extension() -> None:
    """Load Panel's extension once (Tabulator for the workflow table)."""
    global _extension_loaded
    if not _extension_loaded:
        pn.extension("tabulator", notifications=False, design="native")
        _extension_loaded = True


def _html(obj: str = "", **kwargs: Any) -> pn.pane.HTML:
    return pn.pane.HTML(
        obj, sizing_mode="stretch_width", stylesheets=[theme.HTML_CSS], margin=(0, 4), **kwargs
    )


def card(title: str, *objects: Any, subtitle: str = "", **kwargs: Any) -> pn.Column:
    sub = f'<span class="subtitle">{escape(subtitle)}</span>' if subtitle else ""
    return pn.Column(
        _html(f'<div class="title">{escape(title)}{sub}</div>'),
        *objects,
        sizing_mode="stretch_width",
        stylesheets=[theme.CARD_CSS],
        margin=(8, 8),
        **kwargs,
    )


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
        self._timeline_drawn = 0.0
        self.refreshes = 0
        self.header = pn.pane.HTML(
            "",
            sizing_mode="stretch_width",
            stylesheets=[theme.HTML_CSS, theme.HEADER_CSS],
            margin=(8, 8),
            css_classes=["header"],
        )
        self.topology = _html(css_classes=["topology-pane"])
        self.logs = _html(css_classes=["logs-pane"])
        self.timeline = _html(css_classes=["timeline-pane"])
        self.queues = _html(css_classes=["queues-pane"])
        self.feed = _html(css_classes=["feed-pane"])
        self.counters = _html(css_classes=["counters-pane"])
        self.tiers = TiersView(model)
        """The management group above its execution clusters (shown for a scaled cluster)."""
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=list(COLUMNS)),
            selectable=1,
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            height=240,
            layout="fit_columns",
            visible=False,
            theme="simple",
            stylesheets=[_TABLE_CSS],
            css_classes=["workflow-table"],
            widths={"id": 150, "version": 90, "status": 130, "owner": 90, "checkpoints": 140},
        )
        self._rows: list[dict[str, Any]] = []
        self.selected: str | None = None
        self.table.param.watch(self._selection_changed, "selection")
        self.kinds = pn.widgets.CheckButtonGroup(
            label="Show",
            options=list(CATEGORIES),
            value=list(DEFAULT_CATEGORIES),
            color="primary",
            variant="outline",
            height=40,
            stylesheets=[theme.CONTROL_CSS],
        )
        self.node_filter = pn.widgets.MultiChoice(
            label="",
            options=[],
            value=[],
            placeholder="all nodes",
            width=200,
            stylesheets=[theme.CONTROL_CSS],
        )
        self.search = pn.widgets.TextInput(
            placeholder="search kind or field", width=200, stylesheets=[theme.CONTROL_CSS]
        )
        for widget in (self.kinds, self.node_filter, self.search):
            widget.param.watch(lambda _e: self._draw_feed(), "value")
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
        self.refresh()
        self._callback: Any = None
        if start:
            self._callback = pn.state.add_periodic_callback(self.refresh, period=refresh_ms)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # --- layout --------------------------------------------------------------------------------

    def _build_layout(self) -> pn.viewable.Viewable:
        topology = card(
            "Topology",
            self.topology,
            _html(render_legend()),
            subtitle="roles, partitions, message rates",
        )
        logs = card(
            "Logs",
            self.logs,
            _html(render_log_legend()),
            subtitle="one row per node; the number in an entry is its term",
        )
        timeline = card(
            "Terms and leaders",
            self.timeline,
            _html(render_timeline_legend()),
            subtitle="who led when; elections marked",
        )
        workflows = card(
            "Workflows",
            self.table,
            self.queues,
            subtitle="select a row to see its checkpoint queue on every node",
        )
        feed = card(
            "Events",
            pn.Row(self.kinds, self.node_filter, self.search),
            self.feed,
            subtitle="newest first",
        )
        counters = card("Messages and drops", self.counters)
        main = pn.Column(
            self.group_picker,
            self.tiers,
            pn.Row(
                pn.Column(topology, width=720),
                pn.Column(timeline, counters, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            logs,
            workflows,
            feed,
            sizing_mode="stretch_width",
        )
        top: list[Any] = [self.header]
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
        """Fold what arrived and redraw what changed (the periodic callback)."""
        model = self.model
        with contextlib.suppress(Exception):
            model.refresh(min_interval=REFRESH_MS / 2000)
        self.refreshes += 1
        if model.version == self._drawn:
            self._draw_header()  # the clock in the header moves
            if model.wall_clock and time.monotonic() - self._timeline_drawn > 1.0:
                self._draw_timeline()  # and time goes on along the timeline
            return
        self._drawn = model.version
        self.draw()

    def draw(self) -> None:
        model = self.model
        _set(self.topology, render_topology(model, self.group))
        _set(self.logs, render_logs(model, self.group))
        self._draw_timeline()
        self._draw_workflows()
        self._draw_feed()
        _set(self.counters, render_counters(model))
        self._draw_header()
        self.tiers.update()
        groups = [f"group {g}" for g in model.view.groups()]
        if len(groups) > 1 and list(self.group_picker.options) != groups:
            self.group_picker.options = groups
            self.group_picker.visible = True
        nodes = [f"n{look.node}" for look in looks(model.view, self.group)]
        if list(self.node_filter.options) != nodes:
            self.node_filter.options = nodes
        self.controls.update()

    def _draw_timeline(self) -> None:
        """One timeline per Raft group (a management group and execution groups each elect
        their own leaders)."""
        self._timeline_drawn = time.monotonic()
        groups = self.model.view.groups() or [self.group]
        if len(groups) == 1:
            _set(self.timeline, render_timeline(self.model, groups[0]))
            return
        parts = [
            f'<div class="note" style="font-weight:700;margin-top:6px">group {g}</div>'
            + render_timeline(self.model, g)
            for g in groups
        ]
        _set(self.timeline, "".join(parts))

    def _group_picked(self, event: Any) -> None:
        """Topology, logs and controls follow the Raft group picked (the header too)."""
        self.group = int(str(event.new).split()[-1])
        self.controls.group = self.group
        self.draw()

    def _draw_header(self) -> None:
        _set(self.header, render_header(self.model, self.group, self.controller))

    def _draw_feed(self) -> None:
        nodes = {int(v[1:]) for v in self.node_filter.value} or None
        _set(self.feed, render_feed(self.model, self.kinds.value, nodes, self.search.value or ""))

    def _draw_workflows(self) -> None:
        rows = workflow_rows(self.model, self.controller.workflow_results())
        if rows != self._rows:
            self._rows = rows
            self.table.visible = bool(rows)
            height = min(300, 44 + 36 * len(rows))
            if self.table.height != height:
                self.table.height = height
            shown = [{**row, "id": str(row["id"])[:12]} for row in rows]  # the head: full id
            frame = pd.DataFrame(shown, columns=list(COLUMNS))
            selected = self.selected
            self.table.value = frame
            if selected is not None:
                ids = [r["id"] for r in rows]
                if selected in ids:
                    index = ids.index(selected)
                    if self.table.selection != [index]:
                        self.table.selection = [index]
        _set(self.queues, render_queues(self.model, self.selected))

    def _selection_changed(self, event: Any) -> None:
        if event.new:
            index = event.new[0]
            if 0 <= index < len(self._rows):
                self.selected = str(self._rows[index]["id"])
        _set(self.queues, render_queues(self.model, self.selected))

    def select_workflow(self, workflow_id: str) -> None:
        self.selected = workflow_id
        self._draw_workflows()

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None


def _set(pane: pn.pane.HTML, html: str) -> None:
    if pane.object != html:
        pane.object = html


_SLIDER_CSS = """
.bk-slider-title { font-size: 20px !important; font-weight: 700; }
.noUi-horizontal { height: 16px !important; }
.noUi-horizontal .noUi-handle { width: 30px !important; height: 30px !important;
  top: -8px !important; right: -15px !important; }
"""

_TABLE_CSS = """
.tabulator { font-size: 17px; }
.tabulator .tabulator-header .tabulator-col { font-size: 15px; }
.tabulator-row .tabulator-cell { padding: 7px 8px; }
.tabulator-row.tabulator-selected { background-color: #FFE6A8 !important; }
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
    if model.error:
        notes.append(f'<span style="color:#FFB4A8"> {escape(model.error)}</span>')
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
