"""`raftoral-lab status`: a table of the cluster's nodes as they report themselves."""

from __future__ import annotations

import argparse
import asyncio

from raftoral_lab.bench.table import render
from raftoral_lab.cli.common import (
    add_broker_args,
    check_broker_args,
    mqtt_transport,
    positive_float,
)
from raftoral_lab.node.client import ClusterClient, client_id

COLUMNS = ("node", "role", "term", "leader", "commit", "applied", "last", "voters", "learners")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("status", help="print the nodes, roles, terms and indexes of a cluster")
    add_broker_args(p)
    p.add_argument(
        "--timeout", type=positive_float, default=5.0, help="seconds to wait for nodes (default 5)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_broker_args(args)
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    async with ClusterClient(mqtt_transport(args, client_id(), presence=False)) as client:
        await client.discover(timeout=args.timeout)
        statuses = await client.status()
        gone = sorted(n for n, doc in client.presence.items() if not doc.get("alive"))
    rows = []
    for node, status in sorted(statuses.items()):
        if status is None:
            rows.append((node, "no answer", "", "", "", "", "", "", ""))
            continue
        rows.append(
            (
                node,
                status["role"],
                status["term"],
                "-" if status["leader"] is None else status["leader"],  # node 0 is an id
                status["commit_index"],
                status["applied_index"],
                status["last_index"],
                ",".join(map(str, status["voters"])),
                ",".join(map(str, status["learners"])) or "-",
            )
        )
    print(render(f"cluster {args.cluster!r} on {args.broker}", COLUMNS, rows))
    if gone:
        print(f"gone (presence says not alive): {', '.join(map(str, gone))}")
    return 0
