# mypy: disable-error-code="no-untyped-call"
"""The control panel: every change to the cluster goes through the session's `Controller`.

Only the controls of the controller's capabilities are drawn; the missing ones are listed
with the reason. Each action reports in the status line what it did, or why it failed (the
error of the cluster, in its own words).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

import panel as pn
from panel.viewable import Viewer

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.controller import (
    Controller,
    SimulatorControls,
    simulator_of,
    tick_seconds_of,
)
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.roles import NodeLook, looks
from raftoral_lab.errors import RaftoralError

BUTTON = {"height": 44, "stylesheets": [theme.CONTROL_CSS]}
LEADER = "leader"


class Workload:
    """A steady trickle of work through the controller, shared by every session: raw writes
    where the log takes them, else workflows (the first the cluster runs, with its example
    input), since a workflow cluster's log refuses raw entries."""

    def __init__(self, rate: float = 2.0) -> None:
        self.rate = rate
        self.running = False
        self.sent = 0
        self.committed = 0
        self.failed = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._controller: Controller | None = None

    def start(self, controller: Controller) -> None:
        self._controller = controller
        self.running = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        self.running = False
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        pending: set[asyncio.Task[Any]] = set()
        try:
            while self.running and self._controller is not None:
                self.sent += 1
                task = asyncio.ensure_future(self._one(self._controller, self.sent))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(1.0 / self.rate)
        finally:
            for task in pending:
                task.cancel()

    @staticmethod
    def unit(controller: Controller) -> str:
        """What the workload makes: workflows when the cluster runs them, else raw writes."""
        return "workflows" if controller.workflow_names() else "writes"

    async def _one(self, controller: Controller, n: int) -> None:
        try:
            if self.unit(controller) == "writes":
                await controller.propose(b"w%d" % n, None)
            else:
                name, version = controller.workflow_names()[0]
                example = controller.workflow_example(name, version)
                await controller.start_workflow(
                    name, version, json.loads(example) if example else None
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failed += 1
            self.last_error = f"{type(error).__name__}: {error}"
        else:
            self.committed += 1


class ControlPanel(Viewer):
    """Kill, restart, remove, join, partition, heal, faults, speed, writes, workflows, sim."""

    def __init__(
        self,
        model: Model,
        controller: Controller,
        *,
        group: int = 0,
        workload: Workload | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.controller = controller
        self.group = group
        self.workload = workload or Workload()
        self.on_change = on_change
        caps = controller.capabilities
        self.caps = caps
        self.status = pn.pane.HTML(
            '<div class="note">ready</div>',
            sizing_mode="stretch_width",
            stylesheets=[theme.HTML_CSS],
            css_classes=["control-status"],
        )
        self._busy: set[str] = set()
        self._node_ids: list[int] = []
        self._rows: dict[
            int, tuple[pn.pane.HTML, pn.widgets.Button, pn.widgets.Button, pn.widgets.Button]
        ] = {}
        self.node_rows = pn.Column(sizing_mode="stretch_width", margin=0)
        sections: list[Any] = []

        # nodes
        if caps & {"kill", "restart", "remove"}:
            sections.append(_heading("Nodes"))
            sections.append(self.node_rows)
        if "join" in caps:
            self.join_button = pn.widgets.Button(
                label="Join a new node",
                color="primary",
                sizing_mode="stretch_width",
                **BUTTON,
            )
            self.join_button.on_click(self._join)
            sections.append(self.join_button)

        # partition
        if "partition" in caps:
            self.side_a = pn.widgets.CheckButtonGroup(
                label="Side A",
                options=[],
                value=[],
                color="primary",
                variant="outline",
                sizing_mode="stretch_width",
                height=44,
                css_classes=["side-picker"],
                stylesheets=[theme.CONTROL_CSS],
            )
            self.partition_button = pn.widgets.Button(
                label="Partition: A | rest",
                color="danger",
                **BUTTON,
                sizing_mode="stretch_width",
            )
            self.heal_button = pn.widgets.Button(
                label="Heal", color="success", sizing_mode="stretch_width", **BUTTON
            )
            self.partition_button.on_click(self._partition)
            self.heal_button.on_click(self._heal)
            sections += [
                _heading("Partition"),
                _note("Pick side A; every other node is side B."),
                self.side_a,
                pn.Row(self.partition_button, self.heal_button, sizing_mode="stretch_width"),
            ]

        # network faults and speed
        unit = controller.time_unit
        fault_widgets: list[Any] = []
        if "drop_rate" in caps:
            self.drop = pn.widgets.FloatSlider(
                label="Drop rate",
                start=0.0,
                end=0.5,
                step=0.01,
                value=0.0,
                format="0%",
                sizing_mode="stretch_width",
                stylesheets=[theme.CONTROL_CSS],
            )
            self.drop.param.watch(self._drop_changed, "value_throttled")
            fault_widgets.append(self.drop)
        if "delay" in caps:
            if unit == "tick":
                self.delay = pn.widgets.IntRangeSlider(
                    label="Delay (ticks)",
                    start=0,
                    end=10,
                    value=(0, 0),
                    step=1,
                    sizing_mode="stretch_width",
                    stylesheets=[theme.CONTROL_CSS],
                )
            else:
                self.delay = pn.widgets.IntRangeSlider(
                    label="Delay (ms)",
                    start=0,
                    end=500,
                    value=(0, 0),
                    step=10,
                    sizing_mode="stretch_width",
                    stylesheets=[theme.CONTROL_CSS],
                )
            self.delay.param.watch(self._delay_changed, "value_throttled")
            fault_widgets.append(self.delay)
        if "tick" in caps:
            current = tick_seconds_of(controller)
            ms = round((current or 0.05) * 1000)
            self.tick = pn.widgets.IntSlider(
                label="Tick length (ms): speed" if unit == "s" else "Tick length (ms, wall clock)",
                start=10,
                end=1000 if unit == "tick" else 500,
                step=10,
                value=min(max(ms, 10), 1000),
                sizing_mode="stretch_width",
                stylesheets=[theme.CONTROL_CSS],
            )
            self.tick.param.watch(self._tick_changed, "value_throttled")
            fault_widgets.append(self.tick)
        if fault_widgets:
            sections += [_heading("Network and speed"), *fault_widgets]

        # writes
        if "propose" in caps:
            self.via = pn.widgets.Select(
                label="Write through",
                options=[LEADER],
                value=LEADER,
                width=150,
                css_classes=["write-via"],
                stylesheets=[theme.CONTROL_CSS],
            )
            self.write_button = pn.widgets.Button(label="Write an entry", **BUTTON, width=170)
            self.write_button.on_click(self._write)
            sections += [
                _heading("Writes"),
                pn.Row(self.via, self.write_button, sizing_mode="stretch_width"),
            ]
            if Workload.unit(controller) == "writes":
                sections.append(self._workload_toggle())

        # workflows
        sections.append(_heading("Workflows"))
        if "workflows" in caps:
            names = [f"{n} v{v}" for n, v in controller.workflow_names()]
            self._pairs = dict(zip(names, controller.workflow_names(), strict=True))
            self.wf_name = pn.widgets.Select(
                label="Workflow",
                css_classes=["workflow-name"],
                options=names,
                value=names[0] if names else None,
                sizing_mode="stretch_width",
                stylesheets=[theme.CONTROL_CSS],
            )
            self.wf_input = pn.widgets.TextAreaInput(
                label="Input (JSON)",
                value=self._example(),
                height=90,
                sizing_mode="stretch_width",
                stylesheets=[theme.CONTROL_CSS],
            )
            self.wf_name.param.watch(lambda _e: self._set_example(), "value")
            self.wf_button = pn.widgets.Button(
                label="Start workflow",
                color="primary",
                sizing_mode="stretch_width",
                **BUTTON,
            )
            self.wf_button.on_click(self._start_workflow)
            sections += [self.wf_name, self.wf_input, self.wf_button]
            if names and Workload.unit(controller) == "workflows":
                sections.append(self._workload_toggle())
        else:
            why = controller.unavailable.get("workflows", "not available")
            sections.append(
                pn.pane.HTML(
                    f'<div class="note" data-unavailable="workflows">Not available: '
                    f"{escape(why)}.</div>",
                    sizing_mode="stretch_width",
                    stylesheets=[theme.HTML_CSS],
                )
            )

        # simulator
        self.sim: SimulatorControls | None = simulator_of(controller)
        if self.sim is not None:
            self.pause_button = pn.widgets.Button(
                label="Resume" if self.sim.paused else "Pause", **BUTTON, width=120
            )
            self.step_event_button = pn.widgets.Button(label="Step 1 event", **BUTTON, width=140)
            self.step_button = pn.widgets.Button(label="Step 1 tick", **BUTTON, width=130)
            self.until_button = pn.widgets.Button(
                label="Run until a leader", **BUTTON, sizing_mode="stretch_width"
            )
            self.pause_button.on_click(self._pause)
            self.step_button.on_click(self._step)
            self.step_event_button.on_click(self._step_event)
            self.until_button.on_click(self._until_leader)
            sections += [
                _heading("Simulator"),
                pn.Row(
                    self.pause_button,
                    self.step_event_button,
                    self.step_button,
                    sizing_mode="stretch_width",
                ),
                self.until_button,
            ]

        missing = {
            c: why
            for c, why in controller.unavailable.items()
            if c not in ("workflows", "simulator")
        }
        if not caps:
            reason = next(iter(missing.values()), "this dashboard only watches")
            sections = [
                pn.pane.HTML(
                    f'<div class="warn" data-controls="locked">Controls locked</div>'
                    f'<div class="note">{escape(reason)}</div>',
                    sizing_mode="stretch_width",
                    stylesheets=[theme.HTML_CSS],
                )
            ]
        elif missing:
            listed = "; ".join(f"{c}: {why}" for c, why in sorted(missing.items()))
            sections.append(
                pn.pane.HTML(
                    f'<div class="note">Not here: {escape(listed)}</div>',
                    sizing_mode="stretch_width",
                    stylesheets=[theme.HTML_CSS],
                )
            )
        self._layout = pn.Column(
            pn.pane.HTML(
                '<div class="title">Controls</div>', stylesheets=[theme.HTML_CSS], margin=(0, 5)
            ),
            self.status,
            *sections,
            sizing_mode="stretch_width",
            stylesheets=[theme.CARD_CSS],
            css_classes=["controls"],
        )
        self.update()

    def __panel__(self) -> pn.Column:
        return self._layout

    # --- keeping the widgets in step with the cluster ---------------------------------------

    def update(self) -> None:
        nodes = looks(self.model.view, self.group)
        ids = [n.node for n in nodes]
        if ids != self._node_ids:
            self._node_ids = ids
            if hasattr(self, "side_a"):
                options = [f"n{n}" for n in ids]
                self.side_a.value = [v for v in self.side_a.value if v in options]
                self.side_a.options = options
            if hasattr(self, "via"):
                self.via.options = [LEADER, *[f"n{n}" for n in ids]]
            if self.caps & {"kill", "restart", "remove"}:
                self._rebuild_rows(ids)
        for look in nodes:
            row = self._rows.get(look.node)
            if row is None:
                continue
            badge, kill, restart, remove = row
            html = _badge(look)
            if badge.object != html:
                badge.object = html
            kill.disabled = look.role in ("dead", "removed") or "kill" not in self.caps
            restart.disabled = look.role != "dead" or "restart" not in self.caps
            remove.disabled = look.role == "removed" or "remove" not in self.caps
        if hasattr(self, "workload_toggle") and self.workload_toggle.value != self.workload.running:
            self.workload_toggle.value = self.workload.running
        if self.sim is not None:
            name = "Resume" if self.sim.paused else "Pause"
            if self.pause_button.label != name:
                self.pause_button.label = name

    def _rebuild_rows(self, ids: list[int]) -> None:
        rows = []
        for node in ids:
            existing = self._rows.get(node)
            if existing is None:
                badge = pn.pane.HTML("", width=104, stylesheets=[theme.HTML_CSS], margin=(4, 4))
                kill = pn.widgets.Button(label=f"Kill n{node}", color="danger", width=86, **BUTTON)
                restart = pn.widgets.Button(
                    label=f"Restart n{node}", color="success", width=108, **BUTTON
                )
                remove = pn.widgets.Button(
                    label=f"Remove n{node}", color="warning", width=112, **BUTTON
                )
                kill.on_click(self._node_action("kill", node))
                restart.on_click(self._node_action("restart", node))
                remove.on_click(self._node_action("remove", node))
                existing = (badge, kill, restart, remove)
                self._rows[node] = existing
            widgets: list[Any] = [existing[0]]
            for capability, widget in zip(("kill", "restart", "remove"), existing[1:], strict=True):
                if capability in self.caps:
                    widgets.append(widget)
            rows.append(
                pn.Row(*widgets, sizing_mode="stretch_width", margin=0, css_classes=["node-row"])
            )
        self.node_rows.objects = rows

    # --- actions -------------------------------------------------------------------------------

    async def _act(self, what: str, action: Callable[[], Awaitable[object]]) -> object:
        if what in self._busy:
            return None
        self._busy.add(what)
        self._say(f"⏳ {what}…", "note")
        started = time.monotonic()
        try:
            result = await action()
        except (RaftoralError, ValueError, TypeError, RuntimeError, TimeoutError) as error:
            self._say(f"✗ {what}: {error}", "warn")
            return None
        finally:
            self._busy.discard(what)
            if self.on_change is not None:
                with contextlib.suppress(Exception):
                    self.on_change()
        took = time.monotonic() - started
        if isinstance(result, dict) and result.get("error") == "malformed":
            # a raw write to a workflow cluster: it is in the log, and rightly has no effect
            self._say(
                f"✓ {what}: committed ({took:.1f} s); this cluster's state machine takes "
                "workflow commands, so the entry changes nothing",
                "note",
            )
            return result
        if isinstance(result, dict) and "error" in result:
            # committed, but the state machine refused it
            self._say(f"✗ {what}: the state machine answered {result['error']!r}", "warn")
            return result
        suffix = f" → {result}" if result is not None else ""
        self._say(f"✓ {what}{suffix} ({took:.1f} s)", "note")
        return result

    def _say(self, text: str, cls: str) -> None:
        self.status.object = f'<div class="{cls}" data-status="{cls}">{escape(text)}</div>'

    def _node_action(self, op: str, node: int) -> Callable[[Any], Awaitable[None]]:
        async def run(_event: Any) -> None:
            method = getattr(self.controller, op)
            await self._act(f"{op} n{node}", lambda: method(node))

        return run

    async def _join(self, _event: Any) -> None:
        async def join() -> str:
            return f"n{await self.controller.join()}"

        await self._act("join a new node", join)

    async def _partition(self, _event: Any) -> None:
        side_a = {int(v[1:]) for v in self.side_a.value}
        rest = set(self._node_ids) - side_a
        if not side_a or not rest:
            self._say("✗ partition: pick at least one node for side A, and leave one out", "warn")
            return
        names = ", ".join(f"n{n}" for n in sorted(side_a))
        await self._act(
            f"partition {{{names}}} | the rest",
            lambda: self.controller.partition(sorted(side_a), sorted(rest)),
        )

    async def _heal(self, _event: Any) -> None:
        await self._act("heal", self.controller.heal)

    async def _drop_changed(self, event: Any) -> None:
        rate = float(event.new)
        await self._act(f"drop rate {rate:.0%}", lambda: self.controller.set_drop_rate(rate))

    async def _delay_changed(self, event: Any) -> None:
        low, high = event.new
        if self.controller.time_unit == "tick":
            await self._act(
                f"delay {low}-{high} ticks", lambda: self.controller.set_delay(low, high)
            )
        else:
            await self._act(
                f"delay {low}-{high} ms",
                lambda: self.controller.set_delay(low / 1000.0, high / 1000.0),
            )

    async def _tick_changed(self, event: Any) -> None:
        ms = int(event.new)
        await self._act(f"tick {ms} ms", lambda: self.controller.set_tick(ms / 1000.0))

    async def _write(self, _event: Any) -> None:
        via = self.via.value
        node = None if via in (LEADER, None) else int(str(via)[1:])
        n = int(time.time() * 1000) % 1_000_000
        where = "the leader" if node is None else f"n{node}"
        await self._act(
            f"write through {where}", lambda: self.controller.propose(b"write-%d" % n, node)
        )

    def _workload_toggle(self) -> pn.widgets.Toggle:
        unit = Workload.unit(self.controller)
        self.workload_toggle = pn.widgets.Toggle(
            label=f"Workload: {self.workload.rate:g} {unit}/s",
            value=self.workload.running,
            color="primary",
            variant="outline",
            sizing_mode="stretch_width",
            **BUTTON,
        )
        self.workload_toggle.param.watch(self._workload_changed, "value")
        return self.workload_toggle

    def _workload_changed(self, event: Any) -> None:
        if event.new and not self.workload.running:
            self.workload.start(self.controller)
            unit = Workload.unit(self.controller)
            self._say(f"✓ workload on: {self.workload.rate:g} {unit}/s", "note")
        elif not event.new and self.workload.running:
            self.workload.stop()
            self._say("✓ workload off", "note")

    def _example(self) -> str:
        value = self.wf_name.value if hasattr(self, "wf_name") else None
        pair = self._pairs.get(value) if value else None
        return self.controller.workflow_example(*pair) if pair else ""

    def _set_example(self) -> None:
        self.wf_input.value = self._example()

    async def _start_workflow(self, _event: Any) -> None:
        pair = self._pairs.get(self.wf_name.value) if self.wf_name.value else None
        if pair is None:
            self._say("✗ start workflow: no workflow is registered", "warn")
            return
        text = (self.wf_input.value or "").strip()
        try:
            data = json.loads(text) if text else None
        except ValueError as error:
            self._say(f"✗ start workflow: the input is not JSON ({error})", "warn")
            return
        name, version = pair

        async def start() -> str:
            workflow_id = await self.controller.start_workflow(name, version, data)
            return f"id {workflow_id[:12]}"

        await self._act(f"start {name} v{version}", start)

    async def _pause(self, _event: Any) -> None:
        sim = self.sim
        if sim is None:
            return
        if sim.paused:
            await self._act("resume", sim.resume)
        else:
            await self._act("pause", sim.pause)
        self.update()

    async def _step(self, _event: Any) -> None:
        if self.sim is not None:
            sim = self.sim
            await self._act("step 1 tick", lambda: sim.step(1))
            self.update()

    async def _step_event(self, _event: Any) -> None:
        """The next message delivery (or drop), or the end of the tick: one at a time."""
        if self.sim is not None:
            await self._act("step 1 event", self.sim.step_event)
            self.update()

    async def _until_leader(self, _event: Any) -> None:
        if self.sim is not None:
            sim = self.sim

            async def run() -> str:
                return "a leader" if await sim.run_until_leader() else "no leader in 1000 ticks"

            await self._act("run until a leader", run)


def _heading(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(
        f'<div style="font-size:19px;font-weight:750;margin-top:8px;color:{theme.INK}">'
        f"{escape(text)}</div>",
        stylesheets=[theme.HTML_CSS],
        margin=(6, 5, 0, 5),
        sizing_mode="stretch_width",
    )


def _note(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(
        f'<div class="note">{escape(text)}</div>',
        stylesheets=[theme.HTML_CSS],
        margin=(0, 5),
        sizing_mode="stretch_width",
    )


def _badge(look: NodeLook) -> str:
    color = theme.role_color(look.role)
    label = theme.ROLE_LABELS.get(look.role, look.role)
    star = " ★" if look.is_leader else (" ☆" if look.stale_leader else "")
    return (
        f'<div class="badge" data-node="{look.node}" data-role="{look.role}" '
        'style="display:flex;flex-direction:column;line-height:1.05">'
        f'<span class="chip" style="background:{color};color:#fff;font-size:19px;'
        f'align-self:flex-start;margin:0">n{look.node}{star}</span>'
        f'<span style="font-size:14px;color:{theme.MUTED};margin-top:2px">{escape(label)}</span>'
        "</div>"
    )
