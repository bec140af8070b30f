"""`raftoral-lab chaos`: node processes over MQTT under a seeded plan of real faults.

Starts `--nodes` `raftoral-lab node` processes (each with its own SQLite data directory) on a
broker, runs a workload of sample workflows, and meanwhile kills nodes with SIGKILL (the
leader too) and restarts them, partitions and heals them through the control topic, and
restarts the broker. At the end it checks that every workflow ended once with the output a
fault-free run gives and that the committed logs of all nodes agree, and prints a summary with
the seed that reproduces the plan.

Exit status: 0 when every check passed, 1 when one failed (or could not be made), 2 for bad
usage (the message says which flag and why).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path

from raftoral_lab.chaos import ChaosConfig, run_chaos
from raftoral_lab.chaos.config import MAX_WORKFLOWS, OWN_BROKER
from raftoral_lab.chaos.schedule import MAX_NODES, MIN_NODES
from raftoral_lab.cli.common import positive_float


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "chaos",
        help="kill, partition and restart real node processes while workflows run; check them",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "--broker",
        default=OWN_BROKER,
        help=f"'{OWN_BROKER}' (default): start our own Mosquitto, which the run also restarts; "
        "or a broker URL (mqtt://host:port): then broker restarts are skipped",
    )
    p.add_argument(
        "--duration",
        type=positive_float,
        default=60.0,
        help="seconds of workload and faults (default 60); recovery and checks follow",
    )
    p.add_argument(
        "--nodes",
        type=_cluster_size,
        default=3,
        help=f"node processes, {MIN_NODES} to {MAX_NODES} (default 3)",
    )
    p.add_argument(
        "--seed", type=_seed, help="seed of the fault plan and workload (default random)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="a new or empty directory for the nodes' data and logs (default: a temporary "
        "one, removed when the run passes)",
    )
    p.add_argument(
        "--rate",
        type=positive_float,
        default=5.0,
        help=f"workflows started per second (default 5; at most {MAX_WORKFLOWS} in a run)",
    )
    p.set_defaults(run=run)


def _cluster_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not MIN_NODES <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"expected {MIN_NODES} to {MAX_NODES} nodes, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    config = ChaosConfig(  # ConfigError (exit 2) for settings that cannot work together
        duration=args.duration,
        nodes=args.nodes,
        seed=seed,
        rate=args.rate,
        broker=args.broker,
        data_dir=args.data_dir,
    )
    report = asyncio.run(run_chaos(config))
    print(report.summary(), flush=True)
    return 0 if report.ok else 1
