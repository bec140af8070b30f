"""The dashboard's only way to change a cluster: the `Controller` protocol.

The dashboard imports nothing of the Raft layers (DESIGN.md section 2); it calls these
methods and the entry points hand it something that has them:

- in process, a `Lab` (through `LabController`, which only duck-types it) or a
  `Simulation` (through `SimulationController`, which also drives its virtual clock);
- remotely, `raftoral_lab.node.remote_control.RemoteController`, which publishes control
  messages on `node/{id}/control` and requests on `node/{id}/rpc`;
- nothing at all (`ObserverController`): a recording, or a watcher without rights.

Every method is async, so a Lab (async), a remote cluster (async) and a simulation (sync,
wrapped) look the same to the dashboard. A method that cannot be carried out raises
`ControlUnavailable` with the reason in words; the dashboard shows the reason.

Capabilities are plain strings (`Capability`): the dashboard draws only the controls of the
capabilities a controller lists, and says why the others are missing (`unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from raftoral_lab.errors import RaftoralError

Capability: TypeAlias = Literal[
    "kill",
    "restart",
    "remove",
    "join",
    "partition",
    "drop_rate",
    "delay",
    "tick",
    "propose",
    "workflows",
    "simulator",
]
ALL_CAPABILITIES: tuple[Capability, ...] = (
    "kill",
    "restart",
    "remove",
    "join",
    "partition",
    "drop_rate",
    "delay",
    "tick",
    "propose",
    "workflows",
    "simulator",
)

TimeUnit: TypeAlias = Literal["s", "tick"]


class ControlUnavailable(RaftoralError):
    """This controller cannot do that (not wired, no rights, not possible remotely)."""


@runtime_checkable
class Controller(Protocol):
    """What the dashboard may ask of a cluster. Node ids are the servers' ids (from 1)."""

    @property
    def capabilities(self) -> frozenset[str]:
        """The controls this controller carries out (see `Capability`)."""
        ...

    @property
    def unavailable(self) -> Mapping[str, str]:
        """Capability -> why it is missing, for the controls the dashboard greys out."""
        ...

    @property
    def time_unit(self) -> TimeUnit:
        """The unit of `set_delay` and `tick_seconds`: seconds live, ticks in a simulation."""
        ...

    async def kill(self, node: int) -> None: ...

    async def restart(self, node: int) -> None: ...

    async def remove(self, node: int) -> None: ...

    async def join(self) -> int: ...

    async def partition(self, *sides: Iterable[int]) -> None: ...

    async def heal(self) -> None: ...

    async def set_drop_rate(self, rate: float) -> None: ...

    async def set_delay(self, low: float, high: float | None = None) -> None: ...

    async def set_tick(self, seconds: float) -> None: ...

    async def propose(self, data: bytes, node: int | None = None) -> object: ...

    def workflow_names(self) -> Sequence[tuple[str, int]]: ...

    def workflow_example(self, name: str, version: int) -> str:
        """A JSON input to pre-fill the start form with ("" when none is known)."""
        ...

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        """Start (name, version) with `input` (JSON data); returns the workflow id."""
        ...

    def workflow_results(self) -> Mapping[str, str]:
        """Results of the workflows this controller started and saw end (id -> text)."""
        ...


@runtime_checkable
class SimulatorControls(Protocol):
    """The extra controls of a simulated cluster (virtual time the dashboard drives)."""

    @property
    def paused(self) -> bool: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def step(self, ticks: int = 1) -> None: ...

    async def step_event(self) -> str:
        """Advance to the next message delivery (or drop), or to the end of the tick,
        whichever comes first; returns what happened, in words."""
        ...

    async def run_until_leader(self, max_ticks: int = 1000) -> bool: ...

    def advance(self, now: float) -> int:
        """Run the ticks due by wall-clock time `now` (monotonic seconds); returns how many."""
        ...


# --- helpers every controller shares -------------------------------------------------------


class _Base:
    """Defaults: nothing is possible, and each refusal says why."""

    _capabilities: frozenset[str] = frozenset()
    _why: dict[str, str] = {}
    time_unit: TimeUnit = "s"

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    @property
    def unavailable(self) -> Mapping[str, str]:
        return {
            c: self._why.get(c, "not available here")
            for c in ALL_CAPABILITIES
            if c not in self._capabilities
        }

    def _refuse(self, capability: str) -> ControlUnavailable:
        why = self.unavailable.get(capability, "not available here")
        return ControlUnavailable(f"{capability}: {why}")

    async def kill(self, node: int) -> None:
        raise self._refuse("kill")

    async def restart(self, node: int) -> None:
        raise self._refuse("restart")

    async def remove(self, node: int) -> None:
        raise self._refuse("remove")

    async def join(self) -> int:
        raise self._refuse("join")

    async def partition(self, *sides: Iterable[int]) -> None:
        raise self._refuse("partition")

    async def heal(self) -> None:
        raise self._refuse("partition")

    async def set_drop_rate(self, rate: float) -> None:
        raise self._refuse("drop_rate")

    async def set_delay(self, low: float, high: float | None = None) -> None:
        raise self._refuse("delay")

    async def set_tick(self, seconds: float) -> None:
        raise self._refuse("tick")

    async def propose(self, data: bytes, node: int | None = None) -> object:
        raise self._refuse("propose")

    def workflow_names(self) -> Sequence[tuple[str, int]]:
        return []

    def workflow_example(self, name: str, version: int) -> str:
        return ""

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        raise self._refuse("workflows")

    def workflow_results(self) -> Mapping[str, str]:
        return {}


class ObserverController(_Base):
    """Changes nothing: for recordings and for viewers without the control token."""

    def __init__(self, reason: str = "this dashboard only watches") -> None:
        self._why = dict.fromkeys(ALL_CAPABILITIES, reason)
        self.reason = reason


def check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ControlUnavailable(f"a drop rate is between 0 and 1, got {rate}")
    return float(rate)


# --- a Lab, duck-typed (the dashboard may not import raftoral_lab.lab) ---------------------


class LabController(_Base):
    """Controls of an in-process `Lab`, and of its workflow layer when it has one.

    Only the Lab's public methods are called; where this Lab lacks one (`set_tick`,
    `start_workflow`), the control says so instead of pretending.
    """

    PROPOSE_TIMEOUT = 5.0
    JOIN_TIMEOUT = 30.0

    def __init__(self, lab: Any, *, examples: Mapping[tuple[str, int], Any] | None = None) -> None:
        self.lab = lab
        self.examples = dict(examples or {})
        self._results: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        caps = {"kill", "restart", "remove", "join", "partition", "drop_rate", "delay", "propose"}
        caps.add("tick")
        why: dict[str, str] = {"simulator": "a live cluster runs in real time"}
        if callable(getattr(lab, "start_workflow", None)) and self._app() is not None:
            caps.add("workflows")
        else:
            why["workflows"] = (
                "the workflow layer is not wired into this Lab yet (no app with workflows)"
            )
        self._capabilities = frozenset(caps)
        self._why = why

    def _app(self) -> Any:
        app = getattr(self.lab, "app", None)
        return app if app is not None and callable(getattr(app, "pairs", None)) else None

    @property
    def tick_seconds(self) -> float:
        return float(self.lab.tick_seconds)

    async def kill(self, node: int) -> None:
        await self.lab.kill(node)

    async def restart(self, node: int) -> None:
        await self.lab.restart(node)

    async def remove(self, node: int) -> None:
        await self.lab.remove(node)

    async def join(self) -> int:
        return int(await self.lab.join(timeout=self.JOIN_TIMEOUT))

    async def partition(self, *sides: Iterable[int]) -> None:
        await self.lab.partition(*sides)

    async def heal(self) -> None:
        await self.lab.heal()

    async def set_drop_rate(self, rate: float) -> None:
        await self.lab.set_drop_rate(check_rate(rate))

    async def set_delay(self, low: float, high: float | None = None) -> None:
        await self.lab.set_delay(low, high)

    async def set_tick(self, seconds: float) -> None:
        if seconds <= 0:
            raise ControlUnavailable(f"a tick lasts a positive time, got {seconds}")
        set_tick = getattr(self.lab, "set_tick", None)
        if callable(set_tick):
            result = set_tick(seconds)
            if asyncio.iscoroutine(result):
                await result
            return
        # until Lab has set_tick: the nodes read `tick_seconds` before every tick
        self.lab.tick_seconds = seconds
        for node in self.lab.nodes.values():
            node.tick_seconds = seconds

    async def propose(self, data: bytes, node: int | None = None) -> object:
        return await self.lab.propose(data, node=node, timeout=self.PROPOSE_TIMEOUT)

    def workflow_names(self) -> Sequence[tuple[str, int]]:
        app = self._app()
        return sorted(app.pairs()) if app is not None and "workflows" in self.capabilities else []

    def workflow_example(self, name: str, version: int) -> str:
        example = self.examples.get((name, version))
        return "" if example is None else json.dumps(example)

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        if "workflows" not in self.capabilities:
            raise self._refuse("workflows")
        run = await self.lab.start_workflow(name, version, input)
        workflow_id = str(run.workflow_id)
        task = asyncio.ensure_future(self._await_result(workflow_id, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return workflow_id

    async def _await_result(self, workflow_id: str, run: Any) -> None:
        try:
            result = await run.result(timeout=None)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the workflow's own failure, as committed
            self._results[workflow_id] = f"{type(error).__name__}: {error}"
        else:
            self._results[workflow_id] = _short(result)

    def workflow_results(self) -> Mapping[str, str]:
        return self._results


def _short(value: object, limit: int = 80) -> str:
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- a Simulation, duck-typed, with its virtual clock -----------------------------------------


MESSAGE_FATES = frozenset({"message_delivered", "message_dropped"})
"""The event kinds that end one message's trip: where "step 1 event" stops."""


class ShownEvents(Sequence[Any]):
    """`sim.events` up to what the controller shows: the dashboard reads this, so that a
    tick's events can be shown one message delivery at a time (`step_event`)."""

    def __init__(self, controller: SimulationController) -> None:
        self._controller = controller

    def __len__(self) -> int:
        events = self._controller.sim.events
        shown = self._controller.shown
        return len(events) if shown is None else min(shown, len(events))

    def __getitem__(self, index: Any) -> Any:
        length = len(self)
        if isinstance(index, slice):
            return [self._controller.sim.events[i] for i in range(*index.indices(length))]
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError("event index out of range")
        return self._controller.sim.events[index]


class SimulationController(_Base):
    """Controls of a `Simulation`, and the clock that runs it while the dashboard is open.

    The simulation advances `ticks_per_second` ticks per wall-clock second while not paused
    (`advance(now)` is called by the dashboard's refresh), so a class can slow it down, pause
    it and step it one tick, or one message, at a time. Delays are in ticks.

    One message at a time: `Simulation.step()` is the simulator's smallest public step, one
    tick that delivers every message due in it. `step_event` runs that tick and then shows its
    events (`events`, what the dashboard reads) up to the next delivery or drop only, so the
    picture moves one message at a time; each shown prefix is the cluster as it was at that
    point of the tick, since the simulator emits its events in the order things happen. The
    next step shows the next delivery; a control, `step` or `resume` shows the rest first.
    """

    time_unit: TimeUnit = "tick"
    MAX_TICKS_PER_ADVANCE = 200

    def __init__(self, sim: Any, *, tick_seconds: float = 0.1, paused: bool = False) -> None:
        self.sim = sim
        self.tick_seconds = tick_seconds
        self._paused = paused
        self._last: float | None = None
        self._debt = 0.0
        self.shown: int | None = None
        """How many of `sim.events` the dashboard may read (None: all of them)."""
        self.events = ShownEvents(self)
        """`sim.events` as far as shown: the dashboard's source (`ListSource(c.events)`)."""
        self._capabilities = frozenset(
            {
                "kill",
                "restart",
                "remove",
                "join",
                "partition",
                "drop_rate",
                "delay",
                "tick",
                "propose",
                "simulator",
            }
        )
        self._why = {"workflows": "the simulator runs the Raft core alone, without workflows"}

    @property
    def paused(self) -> bool:
        return self._paused

    def advance(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        last, self._last = self._last, now
        if self._paused or last is None:
            self._debt = 0.0
            return 0
        self.shown = None
        self._debt += (now - last) / self.tick_seconds
        ticks = min(int(self._debt), self.MAX_TICKS_PER_ADVANCE)
        self._debt = min(self._debt - ticks, 1.0)
        for _ in range(ticks):
            self.sim.step()
        return ticks

    async def pause(self) -> None:
        self._paused = True

    async def resume(self) -> None:
        self._paused = False
        self._last = time.monotonic()
        self._debt = 0.0
        self.shown = None

    def _show_all(self) -> bool:
        """Show the rest of a tick shown in part; True if there was some."""
        held = self.shown is not None and self.shown < len(self.sim.events)
        self.shown = None
        return held

    async def step(self, ticks: int = 1) -> None:
        """Pause and run `ticks` ticks (the end of a tick shown in part counts as one)."""
        self._paused = True
        self.sim.run(ticks - 1 if self._show_all() else ticks)

    async def step_event(self) -> str:
        self._paused = True
        sim, events = self.sim, self.sim.events
        start = len(events) if self.shown is None else self.shown
        if start >= len(events):  # nothing held back: the next tick
            sim.step()
        end, last = len(events), None
        position = start
        while position < end:
            last = events[position]
            position += 1
            if last.kind in MESSAGE_FATES:
                break
            if position < end and events[position].tick != last.tick:
                break  # the end of a tick
        self.shown = position if position < end else None
        return _step_said(last, getattr(sim, "tick", None))

    async def run_until_leader(self, max_ticks: int = 1000) -> bool:
        self._show_all()
        return bool(self.sim.run_until(lambda s: s.leader() is not None, max_ticks=max_ticks))

    async def kill(self, node: int) -> None:
        self._show_all()
        self.sim.crash(node)

    async def restart(self, node: int) -> None:
        self._show_all()
        self.sim.restart(node)

    async def remove(self, node: int) -> None:
        self._show_all()
        self.sim.remove_node(node)

    async def join(self) -> int:
        self._show_all()
        return int(self.sim.add_node())

    async def partition(self, *sides: Iterable[int]) -> None:
        self._show_all()
        self.sim.partition(*sides)

    async def heal(self) -> None:
        self._show_all()
        self.sim.heal()

    async def set_drop_rate(self, rate: float) -> None:
        self._show_all()
        self.sim.set_drop_rate(check_rate(rate))

    async def set_delay(self, low: float, high: float | None = None) -> None:
        self._show_all()
        self.sim.set_delay(round(low), None if high is None else round(high))

    async def set_tick(self, seconds: float) -> None:
        if seconds <= 0:
            raise ControlUnavailable(f"a tick lasts a positive time, got {seconds}")
        self.tick_seconds = seconds

    async def propose(self, data: bytes, node: int | None = None) -> object:
        self._show_all()
        index = self.sim.propose(data, node=node)
        if index is None:
            where = "the leader" if node is None else f"node {node}"
            raise ControlUnavailable(f"{where} refused the proposal (no leader, or not leader)")
        return index


def _step_said(event: Any, tick: object) -> str:
    """What one step showed, for the status line."""
    if event is None:
        return f"tick {tick}: no events"
    where = f"tick {event.tick}"
    if event.kind in MESSAGE_FATES:
        what = "delivered" if event.kind == "message_delivered" else "dropped"
        return f"{where}: {event.message} n{event.src}→n{event.dst} {what}"
    return f"{where}: end of the tick ({event.kind} on n{event.node} last)"


# --- a controller whose cluster runs on another event loop (another thread) ------------------


class _Wrapper(_Base):
    """A controller in front of `inner`: every control goes through `_through`, the one
    thing a wrapper decides (on which loop it runs, whether the session may)."""

    inner: Controller

    async def _through(self, call: Callable[[Controller], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    @property
    def capabilities(self) -> frozenset[str]:
        return self.inner.capabilities

    @property
    def unavailable(self) -> Mapping[str, str]:
        return self.inner.unavailable

    @property
    def time_unit(self) -> TimeUnit:  # type: ignore[override]
        return self.inner.time_unit

    async def kill(self, node: int) -> None:
        await self._through(lambda c: c.kill(node))

    async def restart(self, node: int) -> None:
        await self._through(lambda c: c.restart(node))

    async def remove(self, node: int) -> None:
        await self._through(lambda c: c.remove(node))

    async def join(self) -> int:
        return int(await self._through(lambda c: c.join()))

    async def partition(self, *sides: Iterable[int]) -> None:
        frozen = [list(side) for side in sides]  # a generator must not cross threads
        await self._through(lambda c: c.partition(*frozen))

    async def heal(self) -> None:
        await self._through(lambda c: c.heal())

    async def set_drop_rate(self, rate: float) -> None:
        await self._through(lambda c: c.set_drop_rate(rate))

    async def set_delay(self, low: float, high: float | None = None) -> None:
        await self._through(lambda c: c.set_delay(low, high))

    async def set_tick(self, seconds: float) -> None:
        await self._through(lambda c: c.set_tick(seconds))

    async def propose(self, data: bytes, node: int | None = None) -> object:
        return await self._through(lambda c: c.propose(data, node))

    def workflow_names(self) -> Sequence[tuple[str, int]]:
        return self.inner.workflow_names()

    def workflow_example(self, name: str, version: int) -> str:
        return self.inner.workflow_example(name, version)

    async def start_workflow(self, name: str, version: int, input: Any) -> str:
        return str(await self._through(lambda c: c.start_workflow(name, version, input)))

    def workflow_results(self) -> Mapping[str, str]:
        return dict(self.inner.workflow_results())


class LoopController(_Wrapper):
    """Runs every control of `inner` on `loop` (the loop of the thread the cluster runs in)
    and waits for it from the dashboard's own loop.

    The dashboard server renders pages on its loop; a Lab on the same loop would miss its
    ticks while a page is built (and hold elections nobody asked for), so the entry points
    run the Lab in a thread of its own and reach it through this.
    """

    def __init__(self, inner: Controller, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop

    async def _through(self, call: Callable[[Controller], Awaitable[Any]]) -> Any:
        async def on_loop() -> Any:
            return await call(self.inner)

        future = asyncio.run_coroutine_threadsafe(on_loop(), self.loop)
        return await asyncio.wrap_future(future)

    @property
    def tick_seconds(self) -> float | None:
        return tick_seconds_of(self.inner)


# --- access: controls for those allowed, nothing for the others ------------------------------


class GatedController(_Wrapper):
    """`inner` for a session that may control the cluster, an observer for the others.

    Every call checks `allowed()` again, so a session cannot gain rights by sending a
    control request the page never offered.
    """

    def __init__(self, inner: Controller, allowed: Callable[[], bool], reason: str) -> None:
        self.inner = inner
        self.allowed = allowed
        self.reason = reason
        self.refused = 0
        """Requests refused because the session had no rights."""

    async def _through(self, call: Callable[[Controller], Awaitable[Any]]) -> Any:
        if not self.allowed():
            self.refused += 1
            raise ControlUnavailable(self.reason)
        return await call(self.inner)

    @property
    def capabilities(self) -> frozenset[str]:
        return self.inner.capabilities if self.allowed() else frozenset()

    @property
    def unavailable(self) -> Mapping[str, str]:
        if self.allowed():
            return self.inner.unavailable
        return dict.fromkeys(ALL_CAPABILITIES, self.reason)

    def workflow_names(self) -> Sequence[tuple[str, int]]:
        return self.inner.workflow_names() if self.allowed() else []

    # the simulator's controls, when the inner controller has them
    @property
    def simulator(self) -> SimulatorControls | None:
        inner = self.inner
        if isinstance(inner, SimulatorControls) and self.allowed():
            return inner
        return None


def simulator_of(controller: Controller) -> SimulatorControls | None:
    """The simulator controls behind `controller`, if it has any and they are allowed."""
    if isinstance(controller, GatedController):
        return controller.simulator
    if isinstance(controller, SimulatorControls) and "simulator" in controller.capabilities:
        return controller
    return None


def tick_seconds_of(controller: Any) -> float | None:
    """The tick length a controller reports (through the wrappers), if any."""
    value = getattr(controller, "tick_seconds", None)
    if value is None and isinstance(controller, GatedController | LoopController):
        value = tick_seconds_of(controller.inner)
    with contextlib.suppress(TypeError, ValueError):
        return float(value) if value is not None else None
    return None
