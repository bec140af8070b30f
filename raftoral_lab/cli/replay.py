"""`raftoral-lab replay FILE.jsonl`: the dashboard on a recording, with a time slider."""

from __future__ import annotations

import argparse
import asyncio

from raftoral_lab.cli.common import existing_file
from raftoral_lab.cli.dashboard import add_serve_args
from raftoral_lab.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("replay", help="the dashboard on a recording, with a time slider")
    p.add_argument("file", metavar="FILE.jsonl", help="a recording (JSONL, or .jsonl.gz)")
    add_serve_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        existing_file(args.file)  # before the dashboard starts
    except argparse.ArgumentTypeError as error:
        raise ConfigError(f"{error}; give a recording made with --record") from None
    try:
        return asyncio.run(_main(args))
    except asyncio.CancelledError:
        return 0


async def _main(args: argparse.Namespace) -> int:
    from raftoral_lab.cli.demo import _cancel_on_sigterm
    from raftoral_lab.dashboard.access import AccessPolicy
    from raftoral_lab.dashboard.controller import ObserverController
    from raftoral_lab.dashboard.replay import replay_model
    from raftoral_lab.dashboard.serve import serve_until_cancelled, session_factory, start_server
    from raftoral_lab.dashboard.serve import urls as dashboard_urls

    _cancel_on_sigterm()
    model = replay_model(args.file)
    controller = ObserverController("a recording cannot be changed")
    policy = AccessPolicy.for_address(args.address, args.token)
    server = start_server(
        session_factory(model, controller, policy),
        port=args.port,
        address=args.address,
        show=args.show,
    )
    span = model.end - model.start
    unit = "ticks" if model.time_unit == "tick" else "s"
    print(f"raftoral-lab replay: {len(model.events)} events over {span:g} {unit} from {args.file}")
    for url in dashboard_urls(server.port, args.address, policy):
        print(f"  dashboard: {url}")
    print("  Ctrl-C to stop", flush=True)
    await serve_until_cancelled(server)
    return 0
