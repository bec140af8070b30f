"""`raftoral-lab bench dashboard`: what the demo's dashboard costs on the server, sustained.

The picture of a busy class cluster: 5 nodes whose logs hold 10,000 entries, 50 long
workflows running with their checkpoint queues, the demo's workload on top (short workflows
starting and finishing, `--workflow-rate` a second, as the demo's workload switch makes them),
and a live stream of events (appends, commits, applies, messages, checkpoints) arriving at
`--rate` events per second.

Fed and drawn as in `raftoral-lab demo`: the events go into a bounded `EventLog` of the
demo's size (`Lab(max_events=MAX_EVENTS)`), a `ListSource` reads it, and a real `Dashboard`
(every view) refreshes 5 times a second while attached to a Bokeh document, so each refresh
also pays for the document patch the server would send a browser (serialized here, as the
server does, and counted in bytes).

Measured: the fold of the history and the first page, the refresh cost (p50, p99, max), the
refreshes per second sustained, the largest backlog of unread events after a refresh (0:
never behind) with the events lost to the bound, and the process's resident memory at the
start, after 1 minute and at the end (`--seconds 600` for the 10-minute check: it must stay
flat).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftoral_lab.events.eventlog import EventLog
from raftoral_lab.events.models import EventBase, make_event

HELP = "server-side cost of the demo's dashboard: 5 nodes, 10k entries, 50+ workflows, sustained"
REFRESH_HZ = 5.0
TARGET_HZ = 5.0
SHORT_STEPS = 5
"""Checkpoints of one short workflow of the workload (the demo's `checkout` takes 5 steps)."""
STEP_SECONDS = 0.5
"""Time between two checkpoints of a short workflow (the demo's `step_seconds`)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bench dashboard` under `raftoral-lab bench`."""
    from raftoral_lab.cli.common import positive_float, positive_int

    p = commands.add_parser("dashboard", help=HELP)
    p.add_argument("--nodes", type=positive_int, default=5, help="cluster size (default 5)")
    p.add_argument("--entries", type=positive_int, default=10_000, help="log entries (10,000)")
    p.add_argument("--workflows", type=positive_int, default=50, help="running workflows (50)")
    p.add_argument("--rate", type=positive_int, default=5_000, help="live events per second")
    p.add_argument(
        "--workflow-rate",
        type=positive_float,
        default=2.0,
        help="short workflows started per second, each finishing after "
        f"{SHORT_STEPS} checkpoints (default 2, the demo's workload)",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=20.0,
        help="length of the live run (600: 10 minutes)",
    )
    p.set_defaults(run=run)


class Clock:
    """Per-node sequence numbers and one time source for the synthetic events."""

    def __init__(self) -> None:
        self.seq: dict[int, Iterator[int]] = {}

    def event(self, kind: str, node: int, ts: float, **fields: Any) -> EventBase:
        seq = self.seq.setdefault(node, itertools.count(1))
        return make_event(kind, fields, node=node, seq=next(seq), ts=ts)


@dataclass
class Cluster:
    """The synthetic cluster's state, so the live stream continues the history faithfully."""

    nodes: int
    term: int = 2
    leader: int = 1
    last_index: int = 0
    workflows: list[str] = field(default_factory=list)
    ordinals: dict[str, int] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)

    def ids(self) -> range:
        return range(1, self.nodes + 1)


def history(cluster: Cluster, entries: int, workflows: int, ts: float) -> list[EventBase]:
    """An election, `entries` log entries in batches of 50, `workflows` started with 10
    checkpoints each (consumed on every node but the queue's last few)."""
    c = cluster.clock
    out: list[EventBase] = []
    leader, term = cluster.leader, cluster.term
    out.append(c.event("election_started", leader, ts, term=term, pre_vote=False))
    for node in cluster.ids():
        role = "leader" if node == leader else "follower"
        out.append(c.event("role_changed", node, ts, role=role, term=term, leader=leader))
    index = 0
    while index < entries:
        first, index = index + 1, min(index + 50, entries)
        for node in cluster.ids():
            out.append(
                c.event(
                    "entries_appended", node, ts, first_index=first, last_index=index, term=term
                )
            )
            out.append(c.event("commit_advanced", node, ts, commit_index=index))
            out.append(c.event("entries_applied", node, ts, applied_index=index))
    cluster.last_index = index
    for w in range(workflows):
        wid = f"wf-{w:04d}"
        cluster.workflows.append(wid)
        out.extend(started(cluster, wid, ts))
        for ordinal in range(10):
            out.extend(checkpoint(cluster, wid, ordinal, ts, consume=ordinal < 8))
        cluster.ordinals[wid] = 10
    return out


def started(cluster: Cluster, wid: str, ts: float) -> list[EventBase]:
    """Every node's `workflow_started` of `wid`, owned by the leader."""
    return [
        cluster.clock.event(
            "workflow_started",
            node,
            ts,
            workflow_id=wid,
            name="checkout",
            version=1,
            owner=cluster.leader,
        )
        for node in cluster.ids()
    ]


def checkpoint(
    cluster: Cluster, wid: str, ordinal: int, ts: float, *, consume: bool = True
) -> list[EventBase]:
    c = cluster.clock
    cluster.last_index += 1
    index = cluster.last_index
    key = f"step-{ordinal}"
    out = [
        c.event(
            "checkpoint_proposed",
            cluster.leader,
            ts,
            workflow_id=wid,
            ordinal=ordinal,
            key=key,
            epoch=0,
        )
    ]
    for node in cluster.ids():  # the checkpoint is a log entry, committed and applied
        out.append(
            c.event(
                "entries_appended",
                node,
                ts,
                first_index=index,
                last_index=index,
                term=cluster.term,
            )
        )
        out.append(c.event("commit_advanced", node, ts, commit_index=index))
        out.append(c.event("entries_applied", node, ts, applied_index=index))
        out.append(
            c.event(
                "checkpoint_committed",
                node,
                ts,
                workflow_id=wid,
                ordinal=ordinal,
                key=key,
                epoch=0,
                index=cluster.last_index,
            )
        )
        if consume:
            out.append(
                c.event("checkpoint_consumed", node, ts, workflow_id=wid, ordinal=ordinal, key=key)
            )
    return out


def live(cluster: Cluster, count: int, ts: float, step: Iterator[int]) -> list[EventBase]:
    """`count` events of a busy cluster: replication (append, commit, apply on each node, the
    leader's append_entries messages and their answers) and now and then a checkpoint."""
    c = cluster.clock
    out: list[EventBase] = []
    leader, term = cluster.leader, cluster.term
    while len(out) < count:
        n = next(step)
        if n % 40 == 0 and cluster.workflows:
            wid = cluster.workflows[(n // 40) % len(cluster.workflows)]
            ordinal = cluster.ordinals[wid]
            # keep each queue short: consume what came before, the new value stays queued
            for node in cluster.ids():
                out.append(
                    c.event(
                        "checkpoint_consumed",
                        node,
                        ts,
                        workflow_id=wid,
                        ordinal=ordinal - 1,
                        key=f"step-{ordinal - 1}",
                    )
                )
            out.extend(checkpoint(cluster, wid, ordinal, ts, consume=False))
            cluster.ordinals[wid] = ordinal + 1
            continue
        cluster.last_index += 1
        index = cluster.last_index
        for node in cluster.ids():
            if node != leader:
                out.append(
                    c.event(
                        "message_sent", leader, ts, message="append_entries", src=leader, dst=node
                    )
                )
                out.append(
                    c.event(
                        "message_sent", node, ts, message="append_response", src=node, dst=leader
                    )
                )
            out.append(
                c.event(
                    "entries_appended", node, ts, first_index=index, last_index=index, term=term
                )
            )
            out.append(c.event("commit_advanced", node, ts, commit_index=index))
            out.append(c.event("entries_applied", node, ts, applied_index=index))
    return out


def entry(cluster: Cluster, ts: float) -> list[EventBase]:
    """One more log entry (a workflow's start or end), appended, committed and applied."""
    c = cluster.clock
    cluster.last_index += 1
    index = cluster.last_index
    out: list[EventBase] = []
    for node in cluster.ids():
        out.append(
            c.event(
                "entries_appended", node, ts, first_index=index, last_index=index, term=cluster.term
            )
        )
        out.append(c.event("commit_advanced", node, ts, commit_index=index))
        out.append(c.event("entries_applied", node, ts, applied_index=index))
    return out


@dataclass
class ShortWorkflows:
    """The demo's workload: `rate` short workflows a second, each committing `SHORT_STEPS`
    checkpoints `STEP_SECONDS` apart (consumed at once on every node), then completing."""

    rate: float
    started: int = 0
    finished: int = 0
    _next: float = 0.0
    _running: list[tuple[float, str, int]] = field(default_factory=list)
    """(when its next step is due, id, next ordinal)."""

    def due(self, cluster: Cluster, now: float, ts: float) -> list[EventBase]:
        """The events of the starts, checkpoints and ends due by `now` (seconds into the
        run)."""
        c = cluster.clock
        out: list[EventBase] = []
        while self._next <= now:
            wid = f"short-{self.started:06d}"
            self.started += 1
            out.extend(entry(cluster, ts))
            out.extend(started(cluster, wid, ts))
            self._running.append((self._next + STEP_SECONDS, wid, 0))
            self._next += 1.0 / self.rate
        running: list[tuple[float, str, int]] = []
        for when, wid, ordinal in self._running:
            if when > now:
                running.append((when, wid, ordinal))
            elif ordinal < SHORT_STEPS:
                out.extend(checkpoint(cluster, wid, ordinal, ts))
                running.append((when + STEP_SECONDS, wid, ordinal + 1))
            else:
                out.extend(entry(cluster, ts))
                for node in cluster.ids():
                    out.append(
                        c.event(
                            "workflow_completed",
                            node,
                            ts,
                            workflow_id=wid,
                            name="checkout",
                            result='{"ok": true}',
                        )
                    )
                self.finished += 1
        self._running = running
        return out


class DocumentPatches:
    """What the Bokeh server would send a browser: the document's changes since the last
    `flush()`, serialized as a PATCH-DOC message (the server's own encoding)."""

    def __init__(self, doc: Any) -> None:
        from bokeh.protocol import Protocol

        self.protocol = Protocol()
        self.pending: list[Any] = []
        self.messages = 0
        self.bytes = 0
        doc.on_change(self._changed)

    def _changed(self, event: Any) -> None:
        self.pending.append(event)

    def flush(self) -> int:
        """Serialize what changed; returns its size in bytes (0: nothing to send)."""
        if not self.pending:
            return 0
        events, self.pending = self.pending, []
        message = self.protocol.create("PATCH-DOC", events)
        size = len(message.header_json) + len(message.metadata_json) + len(message.content_json)
        size += sum(len(buffer.to_bytes()) for buffer in message.buffers)
        self.messages += 1
        self.bytes += size
        return size


def rss_mb() -> float | None:
    """The resident memory of this process now (Linux), in MB."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    import os

    pages = int(statm.read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


@dataclass
class Result:
    history_events: int
    history_fold_s: float
    page_build_s: float
    refreshes: int
    costs: list[float]
    elapsed_s: float
    live_events: int
    max_backlog: int
    lost: int
    started: int
    finished: int
    table_rows: int
    patch_messages: int
    patch_bytes: int
    memory: list[tuple[float, float | None]]
    """(seconds into the run, MB), every tenth of the run."""
    memory_start: float | None
    memory_minute: float | None
    """After 1 minute (None in a shorter run)."""
    memory_end: float | None

    @property
    def achieved_hz(self) -> float:
        return self.refreshes / self.elapsed_s if self.elapsed_s > 0 else 0.0


def measure(args: argparse.Namespace) -> Result:
    from bokeh.document import Document

    from raftoral_lab.cli.demo import MAX_EVENTS
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.controller import ObserverController
    from raftoral_lab.dashboard.model import ListSource, Model

    cluster = Cluster(args.nodes)
    past = history(cluster, args.entries, args.workflows, time.time())
    history_events = len(past)
    # the demo's source: the Lab's bounded event log, read by a ListSource
    log = EventLog(maxlen=MAX_EVENTS)
    source = ListSource(log)
    model = Model(source, title="bench", mode="live")
    started = time.perf_counter()
    model.fold(past)  # the lab ran this long before the page opened
    fold_s = time.perf_counter() - started
    del past
    started = time.perf_counter()
    dashboard = Dashboard(model, ObserverController("a benchmark"), start=False)
    doc = Document()  # what a browser session holds on the server
    doc.add_root(dashboard.__panel__().get_root(doc))
    build_s = time.perf_counter() - started
    patches = DocumentPatches(doc)
    if cluster.workflows:
        dashboard.select_workflow(cluster.workflows[0])
    patches.flush()
    shorts = ShortWorkflows(args.workflow_rate)
    step = itertools.count(1)
    period = 1.0 / REFRESH_HZ
    sample_every = max(args.seconds / 10, 1.0)
    costs: list[float] = []
    gc.collect()
    memory_start = rss_mb()
    memory: list[tuple[float, float | None]] = [(0.0, memory_start)]
    memory_minute: float | None = None
    backlog = 0
    produced = 0
    time.sleep(period)  # sessions poll at most every half period: start one period later
    begin = last = time.perf_counter()
    next_refresh = begin + period
    next_sample = begin + sample_every
    while (now := time.perf_counter()) - begin < args.seconds:
        ts = time.time()
        batch = shorts.due(cluster, now - begin, ts)
        due = int((now - last) * args.rate)
        if due:
            batch.extend(live(cluster, due, ts, step))
            last = now
        log.extend(batch)
        produced += len(batch)
        started = time.perf_counter()
        dashboard.refresh()
        patches.flush()  # the server's share of sending it: serializing the patch
        costs.append(time.perf_counter() - started)
        backlog = max(backlog, log.trimmed + len(log) - source.position)
        if memory_minute is None and now - begin >= 60.0:
            memory_minute = rss_mb()
        if now >= next_sample:
            memory.append((now - begin, rss_mb()))
            next_sample += sample_every
        # like Panel's periodic callback: a late refresh delays the next, never doubles it
        next_refresh = max(next_refresh + period, time.perf_counter() + period / 2)
        time.sleep(max(0.0, next_refresh - time.perf_counter()))
    elapsed = time.perf_counter() - begin
    memory_end = rss_mb()
    memory.append((elapsed, memory_end))
    return Result(
        history_events=history_events,
        history_fold_s=fold_s,
        page_build_s=build_s,
        refreshes=len(costs),
        costs=costs,
        elapsed_s=elapsed,
        live_events=produced,
        max_backlog=backlog,
        lost=source.lost,
        started=shorts.started,
        finished=shorts.finished,
        table_rows=len(dashboard.workflows.rows),
        patch_messages=patches.messages,
        patch_bytes=patches.bytes,
        memory=memory,
        memory_start=memory_start,
        memory_minute=memory_minute,
        memory_end=memory_end,
    )


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def run(args: argparse.Namespace) -> int:
    import platform

    from raftoral_lab.bench.measure import load_average, percentile
    from raftoral_lab.bench.table import render

    load = load_average()
    print(
        f"bench dashboard on {platform.python_implementation()} {platform.python_version()}"
        + (f", load average {load:.1f} at start" if load is not None else "")
        + f": {args.nodes} nodes, {args.entries:,} entries, {args.workflows} long workflows "
        f"running, {args.workflow_rate:g} short ones started/s, {args.rate:,} events/s for "
        f"{args.seconds:g} s, refreshing {REFRESH_HZ:g} times/s into a Bokeh document"
    )
    result = measure(args)
    costs = result.costs
    p50 = statistics.median(costs)
    p99 = percentile(costs, 99)
    seconds = max(result.elapsed_s, 1e-9)
    tenth = max(1, len(costs) // 10)
    rows = [
        (
            "history folded",
            f"{result.history_fold_s * 1000:.0f} ms",
            f"{result.history_events:,} events",
        ),
        ("first page built and attached", f"{result.page_build_s * 1000:.0f} ms", ""),
        (
            "refresh cost p50",
            f"{p50 * 1000:.1f} ms",
            "fold what arrived + redraw what changed + the document patch",
        ),
        ("refresh cost p99", f"{p99 * 1000:.1f} ms", ""),
        ("refresh cost max", f"{max(costs) * 1000:.1f} ms", ""),
        (
            "refresh cost p50, first / last tenth",
            f"{statistics.median(costs[:tenth]) * 1000:.1f} / "
            f"{statistics.median(costs[-tenth:]) * 1000:.1f} ms",
            "equal if the cost does not grow as the run goes on",
        ),
        (
            "refreshes/s sustained",
            f"{result.achieved_hz:.2f}",
            f"asked {REFRESH_HZ:g}, over {result.elapsed_s:.0f} s",
        ),
        ("refreshes/s the p99 cost allows", f"{1 / p99:.1f}", f"target >= {TARGET_HZ:g}"),
        (
            "live events folded",
            f"{result.live_events:,}",
            f"{result.live_events / seconds:,.0f}/s",
        ),
        (
            "short workflows started / finished",
            f"{result.started:,} / {result.finished:,}",
            f"{result.table_rows:,} rows in the table at the end",
        ),
        (
            "document patches sent",
            f"{result.patch_bytes / 1e6:.1f} MB",
            f"{result.patch_bytes / 1e3 / seconds:,.0f} kB/s in {result.patch_messages:,} patches",
        ),
        ("largest backlog after a refresh", f"{result.max_backlog:,}", "0: never behind"),
        ("events lost to the bound", f"{result.lost:,}", "0: the bound never bit"),
        (
            "resident memory start / 1 min / end",
            f"{_mb(result.memory_start)} / {_mb(result.memory_minute)} / "
            f"{_mb(result.memory_end)} MB",
            "flat once the event log is full",
        ),
    ]
    print(render("", ("measure", "value", "note"), rows))
    if len(result.memory) > 2:
        print(
            "memory over the run: "
            + ", ".join(f"{t:.0f}s {m:.0f}MB" for t, m in result.memory if m is not None)
        )
    ok = 1 / p99 >= TARGET_HZ and result.max_backlog == 0 and result.lost == 0
    load = load_average()
    print(
        f"verdict: {'OK' if ok else 'BELOW TARGET'} (p99 allows {1 / p99:.1f} refreshes/s, "
        f"{result.achieved_hz:.2f} sustained, backlog {result.max_backlog}, "
        f"lost {result.lost})" + (f"; load average {load:.1f} at end" if load is not None else "")
    )
    return 0
