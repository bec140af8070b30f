"""`raftoral-lab bench`: speed, measured as ratios against baselines taken in the same run."""

from __future__ import annotations

import argparse
import asyncio
import platform
import signal
import sys

from raftoral_lab.bench import core, events, scale, workflows
from raftoral_lab.bench import dashboard as bench_dashboard
from raftoral_lab.bench.table import render
from raftoral_lab.cli.common import positive_int
from raftoral_lab.cli.progress import progress_by_label
from raftoral_lab.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("bench", help="measure speed (see docs/performance.md)")
    which = p.add_subparsers(
        dest="bench", required=True, metavar="{core,commit,workflows,events,dashboard,scale}"
    )
    c = which.add_parser("core", help="the Raft core alone in the simulator: no I/O")
    c.add_argument(
        "--entries", type=positive_int, default=200_000, help="entries to commit (default 200k)"
    )
    c.add_argument(
        "--burst", type=positive_int, default=1_000, help="proposals per burst (default 1000)"
    )
    c.add_argument(
        "--ticks", type=positive_int, default=20_000, help="idle ticks to time (default 20k)"
    )
    c.set_defaults(run=run_core)
    m = which.add_parser(
        "commit",
        help="commit latency and throughput of a 3-node cluster over MQTT, against the raw "
        "broker round trip (and PySyncObj when installed)",
    )
    m.add_argument(
        "--broker",
        default="mosquitto",
        help="mosquitto (start a private one), embedded (the amqtt broker, in its own process) "
        "or the URL of a running broker (default mosquitto)",
    )
    m.add_argument(
        "--samples",
        type=positive_int,
        default=2_000,
        help="round trips and sequential proposals timed per latency row (default 2000)",
    )
    m.add_argument(
        "--proposals", type=positive_int, default=10_000, help="throughput proposals (10000)"
    )
    m.add_argument(
        "--in-flight", type=positive_int, default=1_000, help="proposals in flight (1000)"
    )
    m.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="throughput rounds per setup; the median is shown with the spread (default 3)",
    )
    m.add_argument(
        "--processes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure node processes (default: yes)",
    )
    m.add_argument(
        "--pysyncobj",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compare with PySyncObj (default: when it is installed)",
    )
    m.set_defaults(run=run_commit)
    workflows.add_parser(which)
    events.add_parser(which)
    bench_dashboard.add_parser(which)
    scale.add_parser(which)


def run_core(args: argparse.Namespace) -> int:
    if args.entries < args.burst or args.burst < 1 or args.ticks < 1:
        raise ConfigError(
            f"need --entries >= --burst >= 1 and --ticks >= 1, got --entries {args.entries} "
            f"--burst {args.burst} --ticks {args.ticks}"
        )
    print(
        f"bench core on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}; 3-node cluster, bursts of {args.burst}, 16-byte commands"
    )
    result = core.run(args.entries, args.burst, args.ticks)
    rows = [
        ("committed entries/s (3 nodes)", result.committed_per_s, "target >= 100,000"),
        ("baseline: Entry + append to 3 lists/s", result.baseline_per_s, "same run"),
        ("ratio Raft / baseline", result.committed_per_s / result.baseline_per_s, ""),
        ("idle ticks/s (5 nodes, heartbeats)", result.idle_ticks_per_s, ""),
    ]
    print(render("", ("measure", "value", "note"), rows))
    return 0


def run_commit(args: argparse.Namespace) -> int:
    from raftoral_lab.bench import commit

    progress = progress_by_label()

    def log(text: str) -> None:
        print(f"bench commit: {text}", file=sys.stderr, flush=True)

    config = commit.CommitConfig(
        broker=args.broker,
        samples=args.samples,
        proposals=args.proposals,
        in_flight=args.in_flight,
        rounds=args.rounds,
        processes=args.processes,
        pysyncobj=args.pysyncobj,
        progress=progress,
        log=log,
    )

    async def main() -> commit.CommitResult:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:  # SIGTERM stops the children and brokers like Ctrl-C does
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await commit.run(config)

    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:
        print("raftoral-lab bench: stopped (SIGTERM)", file=sys.stderr)
        return 143
    print(commit.header(result))
    print()
    print(
        render("", ("measure", "p50 ms", "p99 ms", "ops/s", "ratio", "note"), commit.rows(result))
    )
    print()
    for line in commit.verdicts(result):
        print(line)
    print()
    print(commit.SETUPS)
    return 0
