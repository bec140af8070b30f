"""`raftoral-lab sim`: random fault schedules over many seeds, with a replay line per failure."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from raftoral_lab.cli.progress import Progress
from raftoral_lab.sim.schedule import FAULTS, Outcome, parse_faults, run_schedule
from raftoral_lab.sim.simulation import MAX_NODES


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "sim",
        help="run random fault schedules in the simulator and check Raft's safety properties",
        description=(
            "Each seed runs a simulated cluster under random faults; safety is checked after "
            "every step and liveness once the faults are cleared. Prints 'violations: K' and a "
            "replay command for each failing seed; exits 1 when K > 0."
        ),
    )
    p.add_argument("--seeds", type=_positive, default=100, help="how many seeds (default 100)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seed", type=int, help="run this one seed and print its fault schedule")
    p.add_argument("--ticks", type=_positive, default=3000, help="ticks per seed (default 3000)")
    p.add_argument(
        "--nodes",
        type=_cluster_size,
        default=5,
        help=f"cluster size (default 5, at most {MAX_NODES})",
    )
    p.add_argument(
        "--faults",
        default="all",
        help=f"'all', 'none' or a comma list of: {', '.join(FAULTS)} (default all)",
    )
    p.add_argument(
        "--workflows",
        action="store_true",
        help=(
            "every node runs the workflow state machine; workflows start at random ticks and "
            "must each complete once, with the fault-free output, consuming only committed values"
        ),
    )
    p.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--verbose", action="store_true", help="print every injected fault")
    p.set_defaults(run=run)


def _cluster_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_NODES:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_NODES} nodes, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    faults = parse_faults(args.faults)
    if args.seed is not None:
        seeds = [args.seed]
        args.verbose = True
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    log = print if args.verbose else None
    outcomes = _outcomes(seeds, args.ticks, faults, args.nodes, args.jobs, log, args.workflows)
    progress = Progress(len(seeds), "seeds")
    failed: list[Outcome] = []
    committed = 0
    workflows = 0
    for done, outcome in enumerate(outcomes, start=1):
        committed += outcome.committed
        workflows += outcome.stats.get("workflows", 0)
        if outcome.violation:
            failed.append(outcome)
        progress.update(done, f"violations: {len(failed)}")
    print(
        f"seeds: {len(seeds)}  ticks each: {args.ticks}  nodes: {args.nodes}  "
        f"faults: {','.join(sorted(faults)) or 'none'}  entries committed: {committed:,}"
        + (f"  workflows: {workflows:,}" if args.workflows else "")
    )
    print(f"violations: {len(failed)}")
    for outcome in failed:
        print(f"  seed {outcome.seed}: {outcome.violation}")
        print(f"    replay: {outcome.replay_command(args.ticks, faults, args.nodes)}")
    return 1 if failed else 0


def _outcomes(
    seeds: list[int],
    ticks: int,
    faults: frozenset[str],
    nodes: int,
    jobs: int,
    log: object,
    workflows: bool = False,
) -> Iterator[Outcome]:
    one = partial(run_schedule, ticks=ticks, faults=faults, nodes=nodes, workflows=workflows)
    if jobs == 1 or len(seeds) == 1:
        for seed in seeds:
            yield one(seed, log=log) if callable(log) else one(seed)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(one, seeds, chunksize=max(1, len(seeds) // (jobs * 8)))
