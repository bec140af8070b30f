"""`panel serve dashboards/observe.py --args --cluster C --broker URL`: watch and control a
cluster that runs elsewhere, through its broker.

Events come from the nodes' `events/{id}` streams (`RemoteObserver`), controls go out as
control messages and requests (`RemoteController`); both live on a loop of their own.
`--watch-only` draws no controls at all. Pages from other machines need the token printed in
the server's console (or $RAFTORAL_DASHBOARD_TOKEN) for the controls.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import panel as pn

from raftoral_lab.cli.common import add_broker_args, mqtt_transport
from raftoral_lab.cli.demo import BackgroundLoop
from raftoral_lab.dashboard.access import AccessPolicy, new_token
from raftoral_lab.dashboard.controller import Controller, LoopController, ObserverController
from raftoral_lab.dashboard.model import BusSource, Model
from raftoral_lab.dashboard.serve import session_factory
from raftoral_lab.events import EventBus
from raftoral_lab.node.client import client_id
from raftoral_lab.node.observer import RemoteObserver
from raftoral_lab.node.remote_control import RemoteController

CACHE_KEY = "raftoral-lab:observe"


def _options() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="panel serve dashboards/observe.py --args")
    add_broker_args(p, required=False)
    p.add_argument("--watch-only", action="store_true")
    args, _unknown = p.parse_known_args(sys.argv[1:])
    if args.broker is None:
        args.broker = os.environ.get("RAFTORAL_BROKER", "mqtt://127.0.0.1:1883")
    return args


def _shared() -> dict[str, Any]:
    state = pn.state.cache.get(CACHE_KEY)
    if state is None:
        args = _options()
        background = BackgroundLoop("raftoral-lab-observer")
        background.start()
        transport = mqtt_transport(args, client_id(), presence=False)
        bus = EventBus(buffer=100_000)
        source = BusSource(bus)
        remote = RemoteController(transport)

        async def connect() -> RemoteObserver:
            await remote.start()
            observer = RemoteObserver(transport, bus=bus)
            await observer.start()
            return observer

        observer = background.call(connect(), 30)
        controller: Controller = (
            ObserverController("served with --watch-only")
            if args.watch_only
            else LoopController(remote, background.loop)
        )
        token = os.environ.get("RAFTORAL_DASHBOARD_TOKEN") or new_token()
        state = {
            "observer": observer,
            "model": Model(
                source, title=f"cluster {args.cluster!r} on {args.broker}", mode="remote"
            ),
            "controller": controller,
            "policy": AccessPolicy(token=token),
        }
        pn.state.cache[CACHE_KEY] = state
        print(
            f"raftoral-lab: watching cluster {args.cluster!r} on {args.broker}; pages from "
            f"other machines need ?token={token} for the controls",
            flush=True,
        )
    return state


_state = _shared()
session_factory(_state["model"], _state["controller"], _state["policy"])().servable(
    title="raftoral-lab (remote)"
)
