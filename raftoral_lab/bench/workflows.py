"""`raftoral-lab bench workflows`: a 10-checkpoint workflow, replicated on three nodes, against
the same workflow on DBOS Transact (10 `@DBOS.step`s on SQLite, one process) when installed.

Setup: a private Mosquitto in its own process; three `Node`s with `WorkflowRuntime`s in this
process (a `Lab` on the Mosquitto URL), every message through the broker. The workflow is
`raftoral_lab.samples:ten_steps` (ten `checkpoint_compute` steps); a run is timed from
`start_workflow` on the leader to `result()` there, so it includes the start, ten checkpoints
and the end, each committed by a majority. Latency: one at a time; throughput: many in flight.
A second latency row runs `ten_sets`, the same steps as plain values: with no side effect in
it the owner runs ahead of its commits, and that row shows what this saves.
DBOS runs the same ten steps, first one at a time, then from a thread pool.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from raftoral_lab.bench.procs import BenchError
from raftoral_lab.samples import STEPS, app, expected_ten_steps, step

P50_TARGET = 0.5
"""Issue 5: p50 at most half of DBOS's."""
THROUGHPUT_TARGET = 5.0
"""Issue 5: throughput at least 5 times DBOS's."""


@dataclass(frozen=True, slots=True)
class WorkflowsConfig:
    samples: int = 200
    """Workflows run one after the other, for the latency."""
    workflows: int = 2_000
    """Workflows of the throughput phase."""
    in_flight: int = 200
    tick: float = 0.05
    dbos: bool | None = None
    """None: when `dbos` is installed."""
    log: Callable[[str], None] = print


@dataclass(frozen=True, slots=True)
class Phase:
    p50_ms: float
    p99_ms: float
    per_s: float


@dataclass(frozen=True, slots=True)
class WorkflowsResult:
    raftoral: Phase
    dbos: Phase | None
    sets: Phase
    """`ten_sets` one at a time (no throughput): the same steps as plain values."""
    broker: str
    note: str


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dbos_installed() -> bool:
    return importlib.util.find_spec("dbos") is not None


async def run(config: WorkflowsConfig) -> WorkflowsResult:
    use_dbos = dbos_installed() if config.dbos is None else config.dbos
    if use_dbos and not dbos_installed():
        raise BenchError("dbos is not installed: pip install dbos (or the `bench` extra)")
    dbos = None
    note = ""
    if use_dbos:
        config.log("DBOS Transact (SQLite, one process)...")
        dbos = await asyncio.to_thread(_run_dbos, config)
    else:
        note = "dbos not installed" if config.dbos is None else "--no-dbos"
    config.log("raftoral: 3 nodes over Mosquitto...")
    raftoral, sets, broker = await _run_raftoral(config)
    return WorkflowsResult(raftoral, dbos, sets, broker, note)


async def _run_raftoral(config: WorkflowsConfig) -> tuple[Phase, Phase, str]:
    from raftoral_lab.bench.commit import mosquitto_version
    from raftoral_lab.lab import Lab
    from raftoral_lab.transport.mosquitto import find_mosquitto, running_mosquitto

    binary = find_mosquitto()
    if binary is None:
        raise BenchError("mosquitto is not installed: `apt-get install mosquitto`")
    async with (
        running_mosquitto(binary=binary) as broker,
        Lab(
            nodes=3, app=app, broker=broker.url, tick_seconds=config.tick, message_events=False
        ) as lab,
    ):
        leader = await lab.wait_for_leader(timeout=30)
        for runtime in lab.runtimes.values():
            await runtime.start(timeout=30)
        runtime = lab.runtime(leader)

        async def one(n: int, name: str = "ten_steps") -> float:
            began = time.perf_counter()
            run = await runtime.start_workflow(name, 1, n, timeout=60)
            value = await run.result(timeout=60)
            elapsed = time.perf_counter() - began
            if value != expected_ten_steps(n):
                raise BenchError(f"{name}({n}) gave {value}, not {expected_ten_steps(n)}")
            return elapsed

        for n in range(20):  # warm up
            await one(n)
            await one(n, "ten_sets")
        latencies = [await one(n) for n in range(config.samples)]
        sets = [await one(n, "ten_sets") * 1000 for n in range(config.samples)]
        gate = asyncio.Semaphore(config.in_flight)

        async def gated(n: int) -> float:
            async with gate:
                return await one(n)

        began = time.perf_counter()
        await asyncio.gather(*(gated(n) for n in range(config.workflows)))
        elapsed = time.perf_counter() - began
        if lab.leader_id != leader:
            raise BenchError("the leader changed during the benchmark; run it again")
        where = f"{mosquitto_version(binary)} at {broker.url} (own process), nodes in-process"
    ms = [x * 1000 for x in latencies]
    phase = Phase(percentile(ms, 0.5), percentile(ms, 0.99), config.workflows / elapsed)
    return phase, Phase(percentile(sets, 0.5), percentile(sets, 0.99), 0.0), where


def _run_dbos(config: WorkflowsConfig) -> Phase:
    from dbos import DBOS, DBOSConfig

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'dbos.sqlite'}"
        settings: DBOSConfig = {"name": "raftoral-bench", "system_database_url": url}
        settings["log_level"] = "WARNING"
        DBOS(config=settings)

        @DBOS.step()
        def dbos_step(value: int, index: int) -> int:
            return step(value, index)

        @DBOS.workflow()
        def dbos_ten_steps(n: int) -> int:
            value = n
            for index in range(STEPS):
                value = dbos_step(value, index)
            return value

        DBOS.launch()
        try:

            def one(n: int) -> float:
                began = time.perf_counter()
                value = dbos_ten_steps(n)
                if value != expected_ten_steps(n):
                    raise BenchError(f"DBOS ten_steps({n}) gave {value}")
                return time.perf_counter() - began

            for n in range(20):
                one(n)
            ms = [one(n) * 1000 for n in range(config.samples)]
            threads = min(config.in_flight, 64)
            began = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(config.workflows)))
            per_s = config.workflows / (time.perf_counter() - began)
        finally:
            DBOS.destroy()
    return Phase(percentile(ms, 0.5), percentile(ms, 0.99), per_s)


def rows(result: WorkflowsResult) -> list[tuple[str, str, str, str, str]]:
    r, d, sets = result.raftoral, result.dbos, result.sets
    out = [
        ("raftoral, 3 nodes, Mosquitto", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
         f"{r.per_s:.0f}", ""),
        ("raftoral, ten_sets (plain values)", f"{sets.p50_ms:.2f}", f"{sets.p99_ms:.2f}", "",
         "no side effect: the owner runs ahead"),
    ]  # fmt: skip
    if d is not None:
        out.append(("DBOS Transact, SQLite, 1 node", f"{d.p50_ms:.2f}", f"{d.p99_ms:.2f}",
                    f"{d.per_s:.0f}", ""))  # fmt: skip
        out.append(
            (
                "ratio raftoral / DBOS",
                f"{r.p50_ms / d.p50_ms:.2f}",
                f"{r.p99_ms / d.p99_ms:.2f}",
                f"{r.per_s / d.per_s:.2f}",
                f"targets: p50 <= {P50_TARGET}, throughput >= {THROUGHPUT_TARGET}",
            )
        )
    return out


def verdicts(result: WorkflowsResult) -> list[str]:
    d = result.dbos
    if d is None:
        return [f"no DBOS comparison ({result.note})"]
    r = result.raftoral
    p50 = r.p50_ms / d.p50_ms
    tput = r.per_s / d.per_s
    return [
        f"p50 ratio {p50:.2f} (target <= {P50_TARGET}): {'met' if p50 <= P50_TARGET else 'MISSED'}",
        f"throughput ratio {tput:.2f} (target >= {THROUGHPUT_TARGET}): "
        + ("met" if tput >= THROUGHPUT_TARGET else "MISSED"),
    ]


def add_parser(which: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`raftoral-lab bench workflows` (registered by cli/bench.py)."""
    from raftoral_lab.cli.common import positive_float, positive_int

    w = which.add_parser(
        "workflows",
        help="a 10-checkpoint workflow on 3 nodes over Mosquitto, against DBOS Transact "
        "(SQLite) when installed",
    )
    w.add_argument("--samples", type=positive_int, default=200, help="one-at-a-time runs (200)")
    w.add_argument("--workflows", type=positive_int, default=2_000, help="throughput runs (2000)")
    w.add_argument("--in-flight", type=positive_int, default=200, help="runs in flight (200)")
    w.add_argument("--tick", type=positive_float, default=0.05, help="node tick seconds (0.05)")
    w.add_argument(
        "--dbos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare with DBOS Transact (default: when it is installed)",
    )
    w.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from raftoral_lab.bench.table import render

    config = WorkflowsConfig(
        samples=args.samples,
        workflows=args.workflows,
        in_flight=args.in_flight,
        tick=args.tick,
        dbos=args.dbos,
        log=lambda text: print(f"bench workflows: {text}", file=sys.stderr, flush=True),
    )
    result = asyncio.run(run(config))
    print(f"bench workflows: ten_steps (10 checkpoints); broker {result.broker}")
    print()
    print(render("", ("measure", "p50 ms", "p99 ms", "workflows/s", "note"), rows(result)))
    print()
    for line in verdicts(result):
        print(line)
    return 0
