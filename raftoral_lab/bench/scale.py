"""`raftoral-lab bench scale`: one Raft group of N nodes against N/5 execution clusters.

Issue 9's question: when nodes are added, does the checkpoint throughput of the whole cluster
grow (each workflow's checkpoints replicated inside one small execution cluster) or fall (every
checkpoint replicated to every node of one big group)?

For each N of `--nodes` (5, 15, 30, 50 by default), two `Lab`s are measured one after the
other, with every node in this process:

- one group: `Lab(nodes=N, app=...)`, every node a voter of group 0, and every node runs every
  workflow; the workflows are started on the leader;
- execution clusters: `Lab(nodes=N, execution_cluster_size=5, app=...)`, group 0 a management
  group (5 voters, the rest learners) and about N/5 execution clusters; each workflow is
  started on the leader of its cluster (round robin over the clusters, the id naming the
  cluster), as the clients of each cluster would.

The load is the same for both: `raftoral_lab.samples:ten_steps` (ten `checkpoint_compute`
steps), a fixed number of workflows, `in_flight` per 5 nodes outstanding at any time (so N
nodes carry N/5 times the load of 5; the one group of N gets the same total). A few workflows
run first, untimed. Measured over the window from the first start to the last result:

- checkpoints/s: the ten checkpoints of each workflow, all committed, over the window;
- messages per checkpoint: the Raft messages every node handed to its transport
  (`stats.sent_by_group`, all groups, heartbeats and their answers included);
- entries per checkpoint: the log entries those messages carried (`stats.entries_by_group`;
  one entry sent to four followers counts four; starts and ends are entries too);
- the busiest node's messages per checkpoint (the node that would saturate first on a machine
  of its own), this process's CPU time per checkpoint, and the elections during the window
  (term increases summed over the groups).

Ratios are against one group of 5 nodes, measured in the same run (the baseline both ways: at
N=5 the clustered lab has one execution cluster, plus its management group).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import platform
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from raftoral_lab.bench.measure import load_average
from raftoral_lab.bench.procs import BenchError
from raftoral_lab.core import Heartbeat, HeartbeatResponse
from raftoral_lab.errors import RaftoralError, WorkflowTimeout
from raftoral_lab.events import EventLog
from raftoral_lab.lab import Lab
from raftoral_lab.samples import STEPS, app, expected_ten_steps
from raftoral_lab.transport.base import Transport

CLUSTER_SIZE = 5
"""Nodes per execution cluster; also the size of the baseline group."""
MAX_NODES = 200
"""A sanity bound for `--nodes` (every node runs in this one process)."""
TICK = {"memory": 0.05, "mosquitto": 0.2}
"""Default tick per broker. Over Mosquitto a single group of 50 voters, all in one process,
elects no leader with a 0.05 s tick here (the vote traffic of 50 pre-candidates outruns the
process), and with 0.1 s only sometimes (never with events published); 0.2 s elects in a few
seconds and keeps that group up under load (docs/performance.md)."""
FORM_TIMEOUT = 60.0
"""Seconds a lab has to elect its leaders and form its execution clusters."""
LAB_TIMEOUT = 240.0
"""Seconds the workflows of one lab (warm-up and timed) have to end; a lab that misses it
fails its row (and says how far it got)."""
IDLE_SECONDS = 1.0
"""Before the timed window the lab idles this long, to measure what it costs doing nothing."""
EVENTS_KEPT = 20_000
"""The lab's in-memory event log is bounded to this many events (a 50-node group otherwise
keeps about a million events per thousand workflows)."""

DEFAULT_NODES = (5, 15, 30, 50)
DEFAULT_WORKFLOWS = 400
DEFAULT_IN_FLIGHT = 10

ONE_GROUP = "one group"
CLUSTERS = "execution clusters"

ProgressFn = Callable[[str, int, int], None]
LogFn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    nodes: tuple[int, ...] = DEFAULT_NODES
    """Cluster sizes to measure; 5 (the baseline) is always measured."""
    workflows: int = DEFAULT_WORKFLOWS
    """Timed workflows per lab (ten checkpoints each)."""
    in_flight: int = DEFAULT_IN_FLIGHT
    """Workflows in flight per 5 nodes (per execution cluster)."""
    broker: str = "memory"
    """`memory` (the in-process network) or `mosquitto` (a private one on a free port)."""
    tick: float | None = None
    """Node tick in seconds; None: `TICK[broker]`."""
    idle_seconds: float = IDLE_SECONDS
    publish_events: bool = False
    """Every node also publishes its events on `events/{id}` (the Lab default; off here: it
    is the observer's cost, measured by `bench events`, and over MQTT it doubles the idle
    CPU of 50 nodes)."""
    progress: ProgressFn | None = None
    log: LogFn | None = None

    def __post_init__(self) -> None:
        if self.broker not in TICK:
            raise BenchError(
                f"bench scale: --broker must be one of {', '.join(TICK)}, got {self.broker!r}"
            )
        if not self.nodes:
            raise BenchError("bench scale: --nodes needs at least one cluster size")
        for n in self.nodes:
            if not CLUSTER_SIZE <= n <= MAX_NODES:
                raise BenchError(
                    f"bench scale: every --nodes value must be between {CLUSTER_SIZE} and "
                    f"{MAX_NODES}, got {n}"
                )
        if self.workflows < 1 or self.in_flight < 1:
            raise BenchError("bench scale: --workflows and --in-flight must be at least 1")
        if self.tick is not None and not (math.isfinite(self.tick) and self.tick > 0):
            raise BenchError(f"bench scale: --tick must be a positive number, got {self.tick}")
        if not self.idle_seconds >= 0:
            raise BenchError(f"idle_seconds must be at least 0, got {self.idle_seconds}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """The sizes measured, ascending, the baseline's 5 included."""
        return tuple(sorted({CLUSTER_SIZE, *self.nodes}))

    @property
    def tick_seconds(self) -> float:
        return self.tick if self.tick is not None else TICK[self.broker]

    def total_in_flight(self, nodes: int) -> int:
        return max(1, self.in_flight * nodes // CLUSTER_SIZE)


@dataclass(frozen=True, slots=True)
class Measured:
    """One lab's figures (or why it could not be measured: `error`)."""

    setup: str
    nodes: int
    groups: int = 0
    """Groups that replicate checkpoints: 1, or the number of execution clusters."""
    in_flight: int = 0
    workflows: int = 0
    seconds: float = 0.0
    messages: int = 0
    messages_group0: int = 0
    heartbeats: int = 0
    """Heartbeats and their answers among `messages` (every group)."""
    entries: int = 0
    busiest: int = 0
    """Messages sent by the node that sent the most."""
    cpu_seconds: float = 0.0
    elections: int = 0
    formed_seconds: float = 0.0
    idle_cpu: float = math.nan
    """Share of one core this process used while the formed lab had no work (ticks,
    heartbeats, the runtimes' loops)."""
    remark: str = ""
    """Something about the run worth a note (e.g. it formed only after Lab.start gave up)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def checkpoints(self) -> int:
        return self.workflows * STEPS

    def _per_checkpoint(self, value: float) -> float:
        return value / self.checkpoints if self.ok and self.checkpoints else math.nan

    @property
    def per_second(self) -> float:
        return self.checkpoints / self.seconds if self.ok and self.seconds > 0 else math.nan

    @property
    def messages_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.messages)

    @property
    def heartbeats_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.heartbeats)

    @property
    def group0_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.messages_group0)

    @property
    def entries_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.entries)

    @property
    def busiest_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.busiest)

    @property
    def cpu_ms_per_checkpoint(self) -> float:
        return self._per_checkpoint(self.cpu_seconds * 1e3)


@dataclass(slots=True)
class ScaleResult:
    config: ScaleConfig
    broker: str
    """What the broker was, e.g. `memory (in-process network)`."""
    rows: list[Measured] = field(default_factory=list)
    load: tuple[float, float] | None = None

    def get(self, setup: str, nodes: int) -> Measured | None:
        return next((r for r in self.rows if r.setup == setup and r.nodes == nodes), None)

    @property
    def baseline(self) -> Measured | None:
        return self.get(ONE_GROUP, CLUSTER_SIZE)


# --- one lab -----------------------------------------------------------------------------------


class _HeartbeatCount:
    """Counts the heartbeats (and answers) each node hands to its transport.

    The transport's stats count messages per group, not per kind, so the bench wraps each
    node's `Transport.send` (an instance attribute shadowing the method; nothing else of the
    transport changes)."""

    KINDS = (Heartbeat, HeartbeatResponse)

    def __init__(self) -> None:
        self.count = 0
        self._installed: set[int] = set()

    def install(self, transport: Transport) -> None:
        if id(transport) in self._installed:
            return
        self._installed.add(id(transport))
        send = transport.send

        def counting(messages: Iterable[Any]) -> None:
            batch = list(messages)
            self.count += sum(1 for m in batch if isinstance(m, self.KINDS))
            send(batch)

        transport.send = counting  # type: ignore[method-assign]


class _Window:
    """Transport counters, terms and CPU time of a lab, at one moment."""

    def __init__(self, lab: Lab, heartbeats: _HeartbeatCount) -> None:
        self.heartbeats = heartbeats.count
        self.sent: Counter[int] = Counter()
        self.entries: Counter[int] = Counter()
        self.by_node: dict[int, int] = {}
        self.terms: dict[int, int] = {}
        for node_id, node in lab.nodes.items():
            stats = node.transport.stats
            self.sent.update(stats.sent_by_group)
            self.entries.update(stats.entries_by_group)
            self.by_node[node_id] = sum(stats.sent_by_group.values())
            for group_id, group in node.groups.items():
                self.terms[group_id] = max(self.terms.get(group_id, 0), group.raft.term)
        self.cpu = time.process_time()
        self.clock = time.perf_counter()


class _LabRun:
    def __init__(self, config: ScaleConfig, url: str, token: str) -> None:
        self.config = config
        self.url = url
        self.token = token

    def log(self, text: str) -> None:
        if self.config.log is not None:
            self.config.log(text)

    async def measure(self, nodes: int, clustered: bool) -> Measured:
        config = self.config
        setup = CLUSTERS if clustered else ONE_GROUP
        name = f"{setup} of {nodes} nodes" if not clustered else f"{nodes} nodes in {setup}"
        in_flight = config.total_in_flight(nodes)
        lab = Lab(
            nodes=nodes,
            app=app,
            broker=self.url,
            cluster=f"bench-scale-{self.token}-{nodes}-{'c' if clustered else 'g'}",
            tick_seconds=config.tick_seconds,
            execution_cluster_size=CLUSTER_SIZE if clustered else None,
            publish_events=config.publish_events,
        )
        lab.events = EventLog(maxlen=EVENTS_KEPT)
        began = time.perf_counter()
        self.log(f"{name}: forming")
        try:
            # Lab.start, not `async with`: a start that fails (no leader, a node that cannot
            # register) must still stop the nodes it started
            try:
                remark = await _form(lab, nodes, clustered, began + FORM_TIMEOUT)
            except RaftoralError as error:
                took = time.perf_counter() - began
                self.log(f"{name}: did not form in {took:.0f} s: {error}")
                return Measured(setup, nodes, error=f"did not form in {took:.0f} s: {error}")
            formed = time.perf_counter() - began
            groups = len(lab.clusters()) if clustered else 1
            self.log(
                f"{name}: formed in {formed:.1f} s"
                + (f" ({remark})" if remark else "")
                + (f" ({groups} execution cluster{'s' if groups > 1 else ''})" if clustered else "")
                + f"; {config.workflows} workflows, {in_flight} in flight"
            )
            start = self._starter(lab, clustered)
            heartbeats = _HeartbeatCount()
            for node in lab.nodes.values():
                heartbeats.install(node.transport)
            formed_window = _Window(lab, heartbeats)
            timed = _Tally(config.workflows)
            deadline = time.perf_counter() + LAB_TIMEOUT
            try:
                warm = _Tally(min(in_flight, config.workflows))
                await _lanes(start, "w", warm, in_flight, deadline)
                idle_cpu = await _idle_cpu(config.idle_seconds)
                before = _Window(lab, heartbeats)
                report = config.progress
                if report is not None:
                    timed.progress = lambda done, total: report(name, done, total)
                await _lanes(start, "m", timed, in_flight, deadline)
                after = _Window(lab, heartbeats)
            except (RaftoralError, TimeoutError) as error:
                now = _Window(lab, heartbeats)
                elections = sum(t - formed_window.terms.get(g, t) for g, t in now.terms.items())
                what = str(error) or f"not done within {LAB_TIMEOUT:g} s"
                why = (
                    f"failed under load after {timed.done}/{timed.total} timed workflows "
                    f"({elections} elections since it formed): {what}"
                )
                self.log(f"{name}: {why}")
                return Measured(setup, nodes, groups, in_flight, formed_seconds=formed,
                                error=why)  # fmt: skip
        finally:
            await lab.stop()
        sent = after.sent - before.sent
        entries = after.entries - before.entries
        busiest = max(after.by_node[n] - before.by_node.get(n, 0) for n in after.by_node)
        elections = sum(t - before.terms.get(g, t) for g, t in after.terms.items())
        return Measured(
            setup,
            nodes,
            groups=groups,
            in_flight=in_flight,
            workflows=config.workflows,
            seconds=after.clock - before.clock,
            messages=sum(sent.values()),
            messages_group0=sent.get(0, 0) if clustered else 0,
            heartbeats=after.heartbeats - before.heartbeats,
            entries=sum(entries.values()),
            busiest=busiest,
            cpu_seconds=after.cpu - before.cpu,
            elections=elections,
            formed_seconds=formed,
            idle_cpu=idle_cpu,
            remark=remark,
        )

    def _starter(self, lab: Lab, clustered: bool) -> Callable[[str, int], Any]:
        """`start(tag, n)`: run workflow n to its end, checking its result."""
        clusters = sorted(lab.clusters())

        async def one(tag: str, n: int) -> None:
            if clustered:
                cluster = clusters[n % len(clusters)]
                target = lab.cluster_leader(cluster)
                if target is None or target not in lab.scaled:
                    target = next(m for m in lab.clusters()[cluster].members if m in lab.scaled)
                run: Any = await lab.scaled_runtime(target).start_workflow(
                    "ten_steps", 1, n, workflow_id=f"e{cluster}-{tag}{n}", timeout=60.0
                )
            else:
                leader = lab.leader_id or await lab.wait_for_leader(timeout=FORM_TIMEOUT)
                run = await lab.runtime(leader).start_workflow(
                    "ten_steps", 1, n, workflow_id=f"{tag}{n}", timeout=60.0
                )
            value = await run.result(timeout=LAB_TIMEOUT)
            if value != expected_ten_steps(n):
                raise BenchError(f"ten_steps({n}) gave {value}, not {expected_ten_steps(n)}")

        return one


async def _form(lab: Lab, nodes: int, clustered: bool, deadline: float) -> str:
    """Start the lab and wait until it can run workflows: its leader elected, every node's
    workflow versions registered, the execution clusters formed. Returns a remark ("" or why
    the start took the long way); RaftoralError when `deadline` (perf_counter) passes."""
    remark = ""
    try:
        await lab.start()
    except WorkflowTimeout as error:
        # Lab.start gives each node of one group 10 s (WorkflowRuntime.start's default) to
        # register its workflow versions, which needs an elected leader; a big group elects
        # later than that on a busy machine. The registrations go on in the background (the
        # error says so), so wait for them here, up to the deadline, instead.
        if clustered or len(lab.runtimes) < nodes:
            raise
        first = str(error).split(" (")[0]
        remark = f"Lab.start gave up ({first}); waited on"

    def left() -> float:
        return max(deadline - time.perf_counter(), 0.5)

    await lab.wait_for_leader(timeout=left())
    if clustered:
        await lab.wait_for_clusters(timeout=left())
    else:
        for runtime in lab.runtimes.values():
            await runtime.start(timeout=left())
    return remark


async def _idle_cpu(seconds: float) -> float:
    """Share of one core this process uses over `seconds` of doing nothing but wait."""
    if seconds <= 0:
        return math.nan
    cpu, clock = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - clock)


@dataclass(slots=True)
class _Tally:
    """How many of `total` operations have ended (a failed run says how far it got)."""

    total: int
    done: int = 0
    progress: Callable[[int, int], None] | None = None


async def _lanes(
    op: Callable[[str, int], Any], tag: str, tally: _Tally, in_flight: int, deadline: float
) -> None:
    """Run op(tag, 0..total-1) with `in_flight` outstanding at any time; TimeoutError once
    `deadline` (perf_counter) passes."""
    total = tally.total
    issued = iter(range(total))
    every = max(1, total // 50)

    async def lane() -> None:
        for n in issued:
            await op(tag, n)
            tally.done += 1
            if tally.progress is not None and (tally.done % every == 0 or tally.done == total):
                tally.progress(tally.done, total)

    lanes = asyncio.gather(*(lane() for _ in range(max(1, min(in_flight, total)))))
    try:
        await asyncio.wait_for(lanes, max(deadline - time.perf_counter(), 0.0))
    except BaseException:
        lanes.cancel()  # one lane failed: the others stop too, before the lab does
        with contextlib.suppress(BaseException):
            await lanes
        raise


# --- the run -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _broker(kind: str) -> AsyncIterator[tuple[str, str]]:
    if kind == "memory":
        yield "memory", "memory (the in-process network: no broker, no sockets)"
        return
    from raftoral_lab.bench.commit import mosquitto_version
    from raftoral_lab.transport.mosquitto import find_mosquitto, running_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise BenchError(
            "mosquitto is not installed: `apt-get install mosquitto` (or `brew install "
            "mosquitto`), or run with `--broker memory`"
        )
    try:
        async with running_mosquitto(binary=binary) as broker:
            yield broker.url, f"{mosquitto_version(binary)} at {broker.url} (own process)"
    except RuntimeError as exc:
        raise BenchError(f"could not start mosquitto: {exc}") from exc


async def run(config: ScaleConfig) -> ScaleResult:
    """Measure one group and execution clusters at every size; labs stopped on any exit."""
    async with _broker(config.broker) as (url, description):
        result = ScaleResult(config, description)
        started_load = load_average()
        state = _LabRun(config, url, secrets.token_hex(3))
        for nodes in config.sizes:
            for clustered in (False, True):
                result.rows.append(await state.measure(nodes, clustered))
                # a stopped lab leaves its nodes in reference cycles (1.7 million objects,
                # 1.5 s to collect after a 50-node group): collect them now, not during the
                # next lab's timed window
                gc.collect()
        ended_load = load_average()
    if started_load is not None and ended_load is not None:
        result.load = (started_load, ended_load)
    return result


# --- the table ---------------------------------------------------------------------------------

COLUMNS = (
    "setup",
    "nodes",
    "groups",
    "in flight",
    "ckpt/s",
    "ratio",
    "msgs/ckpt",
    "ratio",
    "heartbeats",
    "entries/ckpt",
    "busiest node msgs/ckpt",
    "CPU ms/ckpt",
    "idle CPU",
    "elections",
    "note",
)


def header(result: ScaleResult) -> str:
    c = result.config
    load = ""
    if result.load is not None:
        load = f"; load average {result.load[0]:.1f} at start, {result.load[1]:.1f} at end"
    added = "" if CLUSTER_SIZE in c.nodes else f" ({CLUSTER_SIZE} added: the baseline)"
    return (
        f"bench scale on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count() or 0} cores{load}\n"
        f"broker: {result.broker}; every node in this process, tick {c.tick_seconds:g} s, "
        f"events {'published' if c.publish_events else 'kept in the lab, not published'}\n"
        f"nodes {', '.join(str(n) for n in c.sizes)}{added}; execution clusters of "
        f"{CLUSTER_SIZE}; ten_steps ({STEPS} checkpoints) x {c.workflows:,} per lab after "
        f"untimed warm-up ones; {c.in_flight} in flight per {CLUSTER_SIZE} nodes"
    )


def _ratio(value: float, base: float | None) -> str:
    if base is None or not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return ""
    return f"{value / base:.2f}x"


def rows(result: ScaleResult) -> list[tuple[object, ...]]:
    base = result.baseline
    base_tp = base.per_second if base is not None and base.ok else None
    base_msgs = base.messages_per_checkpoint if base is not None and base.ok else None
    out: list[tuple[object, ...]] = []
    for r in result.rows:
        if not r.ok:
            blank = ("",) * (len(COLUMNS) - 5)
            out.append((r.setup, r.nodes, r.groups or "", r.in_flight or "", *blank,
                        f"not measured: {r.error}"))  # fmt: skip
            continue
        note = f"formed in {r.formed_seconds:.1f} s"
        if r.remark:
            note = f"{note} ({r.remark})"
        if r.setup == CLUSTERS:
            note = f"group 0: {r.group0_per_checkpoint:.2f} msgs/ckpt; {note}"
        if r is base:
            note = f"baseline; {note}"
        out.append(
            (
                r.setup,
                r.nodes,
                r.groups,
                r.in_flight,
                r.per_second,
                _ratio(r.per_second, base_tp),
                r.messages_per_checkpoint,
                _ratio(r.messages_per_checkpoint, base_msgs),
                r.heartbeats_per_checkpoint,
                r.entries_per_checkpoint,
                r.busiest_per_checkpoint,
                r.cpu_ms_per_checkpoint,
                f"{r.idle_cpu:.0%}" if math.isfinite(r.idle_cpu) else "",
                r.elections,
                note,
            )
        )
    return out


def verdicts(result: ScaleResult) -> list[str]:
    """The target of issue 9, and the comparison at each size, in words."""
    lines: list[str] = []
    base = result.baseline
    if base is None or not base.ok:
        why = base.error if base is not None else "not run"
        return [f"no baseline (one group of {CLUSTER_SIZE} nodes: {why}): no ratios"]
    sizes = result.config.sizes
    top = sizes[-1]
    single, clustered = result.get(ONE_GROUP, top), result.get(CLUSTERS, top)
    for label, row in ((ONE_GROUP, single), (CLUSTERS, clustered)):
        if row is None:
            continue
        if not row.ok:
            lines.append(f"{label}, {top} nodes: not measured ({row.error})")
            continue
        lines.append(
            f"{label}: {base.per_second:,.0f} checkpoints/s at {CLUSTER_SIZE} nodes (one "
            f"group) -> {row.per_second:,.0f} at {top} nodes ({row.groups} "
            f"{'group' if row.groups == 1 else 'groups'}): {row.per_second / base.per_second:.2f}x"
        )
    if clustered is not None and clustered.ok and top > CLUSTER_SIZE:
        grows = clustered.per_second > base.per_second
        falls_less = single is None or not single.ok or clustered.per_second > single.per_second
        verdict = "met" if grows else "missed"
        reason = ""
        if not grows and falls_less:
            reason = (
                " (it falls less than one group does; every node shares this one process, so "
                "more clusters add no CPU)"
            )
        lines.append(
            f"target: aggregate throughput grows with the number of execution clusters: "
            f"{verdict}{reason}"
        )
    for n in sizes:
        if n == CLUSTER_SIZE:
            continue
        one, many = result.get(ONE_GROUP, n), result.get(CLUSTERS, n)
        if one is None or many is None or not one.ok or not many.ok:
            continue
        lines.append(
            f"{n} nodes: messages/checkpoint {one.messages_per_checkpoint:.2f} (one group) vs "
            f"{many.messages_per_checkpoint:.2f} ({many.groups} clusters, "
            f"{_ratio(many.messages_per_checkpoint, one.messages_per_checkpoint)}); "
            f"entries/checkpoint {one.entries_per_checkpoint:.1f} vs "
            f"{many.entries_per_checkpoint:.1f}; checkpoints/s "
            f"{_ratio(many.per_second, one.per_second)} of one group's"
        )
    return lines


EXPLAINED = f"""\
columns:
  groups         groups that replicate checkpoints: 1, or the execution clusters (group 0 of
                 a clustered lab is the management group: 5 voters, the other nodes learners)
  in flight      workflows outstanding at any time: --in-flight per {CLUSTER_SIZE} nodes, the same
                 total for one group and for the clusters of the same size
  ckpt/s         checkpoints committed per second, all groups together ({STEPS} per workflow)
  msgs/ckpt      Raft messages sent by all nodes (every group, heartbeats included) per checkpoint
  heartbeats     the heartbeats and their answers among them, per checkpoint
  entries/ckpt   log entries those messages carried (an entry sent to 4 followers counts 4)
  busiest node   the messages of the node that sent the most (a leader), per checkpoint
  CPU ms/ckpt    CPU time of this process (every node runs in it) per checkpoint
  idle CPU       share of one core the formed lab takes while it has no work (ticks,
                 heartbeats, the runtimes' loops), measured for {IDLE_SECONDS:g} s before the window
  elections      term increases during the timed window, summed over the groups
  ratio          against one group of {CLUSTER_SIZE} nodes measured in the same run"""


def add_parser(which: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`raftoral-lab bench scale` (registered by cli/bench.py)."""
    from raftoral_lab.cli.common import positive_float, positive_int

    s = which.add_parser(
        "scale",
        help="checkpoint throughput and messages per checkpoint: one group of N nodes "
        "against N/5 execution clusters",
    )
    s.add_argument(
        "--nodes",
        type=node_sizes,
        default=DEFAULT_NODES,
        help="cluster sizes, comma separated, each between 5 and 200; 5 (the baseline) is "
        "always measured (default 5,15,30,50)",
    )
    s.add_argument(
        "--workflows", type=positive_int, default=DEFAULT_WORKFLOWS,
        help=f"timed ten_steps workflows per lab (default {DEFAULT_WORKFLOWS})",
    )  # fmt: skip
    s.add_argument(
        "--in-flight", type=positive_int, default=DEFAULT_IN_FLIGHT,
        help="workflows in flight per 5 nodes; one group of N gets the same total "
        f"(default {DEFAULT_IN_FLIGHT})",
    )  # fmt: skip
    s.add_argument(
        "--broker",
        choices=tuple(TICK),
        default="memory",
        help="memory (the in-process network) or mosquitto (a private one started on a free "
        "port) (default memory)",
    )
    s.add_argument(
        "--tick",
        type=positive_float,
        default=None,
        help="node tick in seconds (default 0.05 with memory, 0.2 with mosquitto)",
    )
    s.add_argument(
        "--publish-events",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="every node also publishes its events, as a Lab does by default (default: no)",
    )
    s.set_defaults(run=run_cli)


def node_sizes(text: str) -> tuple[int, ...]:
    """`5,15,30` -> (5, 15, 30); argparse reports the error."""
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected node counts separated by commas (e.g. 5,15,30), got {text!r}"
            ) from None
        if not CLUSTER_SIZE <= n <= MAX_NODES:
            raise argparse.ArgumentTypeError(
                f"each node count must be between {CLUSTER_SIZE} (one execution cluster) and "
                f"{MAX_NODES}, got {n}"
            )
        sizes.append(n)
    return tuple(sorted(set(sizes)))


def run_cli(args: argparse.Namespace) -> int:
    from raftoral_lab.bench.table import render
    from raftoral_lab.cli.progress import progress_by_label

    progress = progress_by_label()

    config = ScaleConfig(
        nodes=args.nodes,
        workflows=args.workflows,
        in_flight=args.in_flight,
        broker=args.broker,
        tick=args.tick,
        publish_events=args.publish_events,
        progress=progress,
        log=lambda text: print(f"bench scale: {text}", file=sys.stderr, flush=True),
    )

    async def main() -> ScaleResult:
        task = asyncio.current_task()
        if task is not None:  # SIGTERM stops the labs and the broker like Ctrl-C does
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(config)

    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:
        print("raftoral-lab bench: stopped (SIGTERM)", file=sys.stderr)
        return 143
    print(header(result))
    print()
    print(render("", COLUMNS, rows(result)))
    print()
    for line in verdicts(result):
        print(line)
    print()
    print(EXPLAINED)
    return 0
