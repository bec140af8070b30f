"""`panel serve dashboards/lab.py`: a live cluster and its dashboard, for the `panel serve` habit.

The same as `raftoral-lab demo`: an embedded broker, a Lab (3 nodes), the sample workflows when
the Lab runs workflows. Options after `--args`:

    panel serve dashboards/lab.py --args --nodes 5 --tick 0.1 --no-check-quorum

One cluster serves every browser session of the server. Pages opened from this machine have
the controls; pages from other machines need the token printed in the server's console (or
set one in $RAFTORAL_DASHBOARD_TOKEN) and otherwise only watch.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import panel as pn

from raftoral_lab.cli.common import positive_float, positive_int
from raftoral_lab.cli.demo import SAMPLE_INPUTS, LabThread, make_lab
from raftoral_lab.dashboard.access import AccessPolicy, new_token
from raftoral_lab.dashboard.controls import Workload
from raftoral_lab.dashboard.model import ListSource, Model
from raftoral_lab.dashboard.serve import session_factory

CACHE_KEY = "raftoral-lab:lab"


def _options() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="panel serve dashboards/lab.py --args")
    p.add_argument("--nodes", type=positive_int, default=3)
    p.add_argument("--broker", default=None, help="default: an embedded broker; or 'memory'")
    p.add_argument("--cluster", default="lab")
    p.add_argument("--tick", type=positive_float, default=0.05)
    p.add_argument("--no-check-quorum", action="store_true")
    p.add_argument("--workload", action="store_true")
    args, _unknown = p.parse_known_args(sys.argv[1:])
    return args


def _shared() -> dict[str, Any]:
    """The cluster, its model and controller: made by the first session, kept for all."""
    state = pn.state.cache.get(CACHE_KEY)
    if state is None:
        args = _options()
        lab, _with_app = make_lab(args)
        runner = LabThread(lab, examples=SAMPLE_INPUTS)
        runner.start()
        controller = runner.controller()
        token = os.environ.get("RAFTORAL_DASHBOARD_TOKEN") or new_token()
        workload = Workload()
        if args.workload:
            workload.start(controller)
        state = {
            "runner": runner,
            "model": Model(ListSource(lab.events), title=f"cluster {args.cluster!r}"),
            "controller": controller,
            "policy": AccessPolicy(token=token),
            "workload": workload,
        }
        pn.state.cache[CACHE_KEY] = state
        print(
            f"raftoral-lab: {args.nodes} nodes on {lab.url}; pages from other machines need "
            f"?token={token} for the controls",
            flush=True,
        )
    return state


_state = _shared()
session_factory(
    _state["model"], _state["controller"], _state["policy"], workload=_state["workload"]
)().servable(title="raftoral-lab")
