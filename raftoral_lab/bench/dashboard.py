"""`raftoral-lab bench dashboard`: what one dashboard refresh costs on the server.

The picture of a busy class cluster: 5 nodes whose logs hold 10,000 entries, 50 workflows
running with their checkpoint queues, and a live stream of events (appends, commits, applies,
messages, checkpoints) arriving at `--rate` events per second. A real `Dashboard` (every
view: topology, logs, timeline, workflow table and queues, feed, counters, header) refreshes
5 times a second, as on a projector; each refresh folds what arrived and redraws what changed.

Measured: the fold of the history (what a late page pays once), the cost of one refresh
(p50, p99, max), the refresh rate that cost allows, the rate achieved, the largest backlog of
unread events after a refresh (0: never behind), and the process's resident memory over the
run (`--seconds 600` for the 10-minute check: it must stay flat).
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

HELP = "server-side cost of a dashboard refresh on a 5-node, 10k-entry, 50-workflow cluster"
REFRESH_HZ = 5.0
TARGET_HZ = 5.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bench dashboard` under `raftoral-lab bench`."""
    from raftoral_lab.cli.common import positive_float, positive_int

    p = commands.add_parser("dashboard", help=HELP)
    p.add_argument("--nodes", type=positive_int, default=5, help="cluster size (default 5)")
    p.add_argument("--entries", type=positive_int, default=10_000, help="log entries (10,000)")
    p.add_argument("--workflows", type=positive_int, default=50, help="running workflows (50)")
    p.add_argument("--rate", type=positive_int, default=5_000, help="live events per second")
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
        for node in cluster.ids():
            out.append(
                c.event(
                    "workflow_started",
                    node,
                    ts,
                    workflow_id=wid,
                    name="checkout",
                    version=1,
                    owner=leader,
                )
            )
        for ordinal in range(10):
            out.extend(checkpoint(cluster, wid, ordinal, ts, consume=ordinal < 8))
        cluster.ordinals[wid] = 10
    return out


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
    refreshes: int
    costs: list[float]
    achieved_hz: float
    live_events: int
    max_backlog: int
    memory: list[tuple[float, float | None]]


def measure(args: argparse.Namespace) -> Result:
    from raftoral_lab.dashboard.app import Dashboard
    from raftoral_lab.dashboard.controller import ObserverController
    from raftoral_lab.dashboard.model import ListSource, Model

    cluster = Cluster(args.nodes)
    past = history(cluster, args.entries, args.workflows, time.time())
    # the source keeps a few seconds of events, as a bounded Lab.events would
    log = EventLog(maxlen=max(len(past), args.rate * 2))
    log.extend(past)
    model = Model(ListSource(log), title="bench", mode="live")
    started = time.perf_counter()
    dashboard = Dashboard(model, ObserverController("a benchmark"), start=False)  # folds it all
    fold_s = time.perf_counter() - started
    if cluster.workflows:
        dashboard.select_workflow(cluster.workflows[0])
    step = itertools.count(1)
    period = 1.0 / REFRESH_HZ
    costs: list[float] = []
    memory: list[tuple[float, float | None]] = [(0.0, rss_mb())]
    backlog = 0
    produced = 0
    time.sleep(period)  # sessions poll at most every half period: start one period later
    begin = last = time.perf_counter()
    next_refresh = begin + period
    next_sample = begin + max(args.seconds / 10, 1.0)
    gc.collect()
    while (now := time.perf_counter()) - begin < args.seconds:
        due = int((now - last) * args.rate)
        if due:
            log.extend(live(cluster, due, time.time(), step))
            produced += due
            last = now
        started = time.perf_counter()
        dashboard.refresh()
        costs.append(time.perf_counter() - started)
        source = model.source
        assert isinstance(source, ListSource)
        backlog = max(backlog, log.trimmed + len(log) - source.position)
        if now >= next_sample:
            memory.append((now - begin, rss_mb()))
            next_sample += max(args.seconds / 10, 1.0)
        # like Panel's periodic callback: a late refresh delays the next, never doubles it
        next_refresh = max(next_refresh + period, time.perf_counter() + period / 2)
        time.sleep(max(0.0, next_refresh - time.perf_counter()))
    elapsed = time.perf_counter() - begin
    memory.append((elapsed, rss_mb()))
    return Result(
        history_events=len(past),
        history_fold_s=fold_s,
        refreshes=len(costs),
        costs=costs,
        achieved_hz=len(costs) / elapsed,
        live_events=produced,
        max_backlog=backlog,
        memory=memory,
    )


def run(args: argparse.Namespace) -> int:
    import platform

    from raftoral_lab.bench.table import render

    print(
        f"bench dashboard on {platform.python_implementation()} {platform.python_version()}: "
        f"{args.nodes} nodes, {args.entries:,} entries, {args.workflows} running workflows, "
        f"{args.rate:,} events/s for {args.seconds:g} s, refreshing {REFRESH_HZ:g} times/s"
    )
    result = measure(args)
    costs = sorted(result.costs)
    p50 = statistics.median(costs)
    p99 = costs[min(len(costs) - 1, int(len(costs) * 0.99))]
    rows = [
        (
            "history folded and page built",
            f"{result.history_fold_s * 1000:.0f} ms",
            f"{result.history_events:,} events",
        ),
        ("refresh cost p50", f"{p50 * 1000:.1f} ms", "fold what arrived + redraw what changed"),
        ("refresh cost p99", f"{p99 * 1000:.1f} ms", ""),
        ("refresh cost max", f"{costs[-1] * 1000:.1f} ms", ""),
        ("refreshes/s the p99 cost allows", f"{1 / p99:.1f}", f"target >= {TARGET_HZ:g}"),
        ("refreshes/s achieved", f"{result.achieved_hz:.2f}", f"asked {REFRESH_HZ:g}"),
        (
            "live events folded",
            f"{result.live_events:,}",
            f"{result.live_events / max(args.seconds, 1e-9):,.0f}/s",
        ),
        ("largest backlog after a refresh", f"{result.max_backlog:,}", "0: never behind"),
    ]
    mem = [m for _, m in result.memory if m is not None]
    if mem:
        rows.append(
            (
                "resident memory start / end",
                f"{mem[0]:.0f} / {mem[-1]:.0f} MB",
                f"peak {max(mem):.0f} MB",
            )
        )
    print(render("", ("measure", "value", "note"), rows))
    if len(result.memory) > 2:
        print(
            "memory over the run: "
            + ", ".join(f"{t:.0f}s {m:.0f}MB" for t, m in result.memory if m is not None)
        )
    ok = 1 / p99 >= TARGET_HZ and result.max_backlog == 0
    print(
        f"verdict: {'OK' if ok else 'BELOW TARGET'} (p99 allows {1 / p99:.1f} refreshes/s, "
        f"backlog {result.max_backlog})"
    )
    return 0
