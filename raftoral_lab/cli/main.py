"""The `raftoral-lab` command: wiring only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from raftoral_lab import __version__
from raftoral_lab.cli import bench, broker, chaos, dashboard, demo, node, replay, run, sim, status
from raftoral_lab.errors import RaftoralError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftoral-lab",
        description="See Raft consensus and durable workflows at work.",
    )
    parser.add_argument("--version", action="version", version=f"raftoral-lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (sim, node, status, broker, bench, demo, dashboard, replay, run, chaos):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except RaftoralError as error:
        print(f"raftoral-lab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"raftoral-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
