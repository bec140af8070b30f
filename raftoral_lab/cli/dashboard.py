"""`raftoral-lab dashboard`: watch and control a cluster that runs elsewhere, through its broker.

Events come from the nodes' `events/{id}` streams (a `RemoteObserver`); controls go out as
control messages on `node/{id}/control` and requests on `node/{id}/rpc` (a
`RemoteController`). Served on 127.0.0.1 by default; any other `--address` prints a URL with
a control token, and pages opened without it only watch.
"""

from __future__ import annotations

import argparse
import asyncio

from raftoral_lab.cli.common import (
    add_broker_args,
    check_broker_args,
    listen_address,
    mqtt_transport,
    port_number,
)
from raftoral_lab.dashboard.access import AccessPolicy
from raftoral_lab.node.client import client_id


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "dashboard", help="the dashboard of a cluster that runs elsewhere (through its broker)"
    )
    add_broker_args(p)
    add_serve_args(p)
    p.add_argument(
        "--watch-only", action="store_true", help="no controls at all, for anyone (a projector)"
    )
    p.set_defaults(run=run)


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=port_number, default=5006, help="dashboard port (default 5006)")
    p.add_argument(
        "--address",
        type=listen_address,
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1; any other address needs a token)",
    )
    p.add_argument("--token", help="the control token (default: a fresh random one)")
    p.add_argument("--show", action="store_true", help="open the dashboard in a browser")


def run(args: argparse.Namespace) -> int:
    check_broker_args(args)
    try:
        return asyncio.run(_main(args))
    except asyncio.CancelledError:
        return 0


async def _main(args: argparse.Namespace) -> int:
    from raftoral_lab.cli.demo import _cancel_on_sigterm
    from raftoral_lab.dashboard.controller import Controller, ObserverController
    from raftoral_lab.dashboard.model import BusSource, Model
    from raftoral_lab.dashboard.serve import serve_until_cancelled, session_factory, start_server
    from raftoral_lab.dashboard.serve import urls as dashboard_urls
    from raftoral_lab.events import EventBus
    from raftoral_lab.node.observer import RemoteObserver
    from raftoral_lab.node.remote_control import RemoteController

    _cancel_on_sigterm()
    transport = mqtt_transport(args, client_id(), presence=False)
    bus = EventBus(buffer=100_000)
    source = BusSource(bus)
    remote = RemoteController(transport)
    await remote.start()  # starts the shared transport
    observer = RemoteObserver(transport, bus=bus)
    await observer.start()
    try:
        model = Model(source, title=f"cluster {args.cluster!r} on {args.broker}", mode="remote")
        controller: Controller = (
            ObserverController("started with --watch-only") if args.watch_only else remote
        )
        policy = AccessPolicy.for_address(args.address, args.token)
        server = start_server(
            session_factory(model, controller, policy),
            port=args.port,
            address=args.address,
            show=args.show,
        )
        print(f"raftoral-lab dashboard: cluster {args.cluster!r} on {args.broker}")
        for url in dashboard_urls(server.port, args.address, policy):
            print(f"  dashboard: {url}")
        if policy.token is not None and not args.watch_only:
            print(f"  control token: {policy.token} (pages opened without it only watch)")
        print("  Ctrl-C to stop", flush=True)
        await serve_until_cancelled(server)
    finally:
        await observer.stop()
        await remote.close()
    return 0
