"""`raftoral-lab demo`: a live cluster in this process and its dashboard in the browser.

An embedded MQTT broker (or `--broker URL`, or `--broker memory` for none), a `Lab` of
`--nodes` nodes (scaled out into a management group and execution clusters with
`--execution-cluster-size N`), a sample workflow app when the Lab can run workflows, and the
dashboard served on `--port`. Controls are for this machine only, unless `--address` opens
the page to others: then the command prints a URL with a token, and pages opened without it
only watch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from raftoral_lab.cli.common import (
    listen_address,
    new_file,
    port_number,
    positive_float,
    positive_int,
)
from raftoral_lab.core import RaftConfig
from raftoral_lab.dashboard.access import AccessPolicy
from raftoral_lab.dashboard.controller import LabController, LoopController

if TYPE_CHECKING:
    from raftoral_lab.lab import Lab

MAX_EVENTS = 50_000
"""Events the demo's Lab keeps (`Lab(max_events=...)`): the dashboard reads them five times a
second and the recorder twice, so a few seconds would do; this keeps memory flat however long
the class runs (`raftoral-lab bench dashboard` feeds its dashboard the same way)."""

SAMPLE_INPUTS: dict[tuple[str, int], Any] = {
    ("checkout", 1): {"order": "A-17", "items": 5, "step_seconds": 0.5},
    ("countdown", 1): {"from": 4, "sleep_seconds": 0.5},
}


def sample_app() -> Any:
    """Two small workflows that take a few seconds, so a class sees them run; None when the
    workflow layer is not importable."""
    try:
        from raftoral_lab.workflow.app import WorkflowApp
        from raftoral_lab.workflow.context import WorkflowContext
    except ImportError:
        return None
    app = WorkflowApp()

    async def checkout(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
        """Pick each item (computed once, on the owner), then ship."""
        status = await ctx.checkpoint("status", "picking")
        picked: list[str] = []
        delay = float(order.get("step_seconds", 0.5))
        for i in range(int(order.get("items", 3))):

            async def pick(i: int = i) -> str:
                await asyncio.sleep(delay)
                return f"item-{i}"

            picked.append(await ctx.checkpoint_compute(f"pick-{i}", pick))
        await status.set("shipped")
        return {"order": order.get("order"), "picked": picked, "status": status.value}

    async def countdown(ctx: WorkflowContext, spec: dict[str, Any]) -> str:
        """Durable sleeps: each survives a failover of the owner."""
        left = await ctx.checkpoint("left", int(spec.get("from", 3)))
        while left.value > 0:
            await ctx.sleep(float(spec.get("sleep_seconds", 0.5)))
            await left.set(left.value - 1)
        return "lift-off"

    # explicit types: the annotations name WorkflowContext, imported here and not globally
    app.register("checkout", 1, checkout, input_type=dict[str, Any], output_type=dict[str, Any])
    app.register("countdown", 1, countdown, input_type=dict[str, Any], output_type=str)
    return app


class BackgroundLoop:
    """An asyncio loop in a thread of its own: the cluster (or the broker clients) live there,
    so that building dashboard pages on the server's loop never delays a tick."""

    def __init__(self, name: str = "raftoral-lab") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run `coro` on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


class LabThread(BackgroundLoop):
    """A Lab on a background loop; `controller()` reaches it from the dashboard's loop."""

    def __init__(self, lab: Lab, *, examples: dict[tuple[str, int], Any] | None = None) -> None:
        super().__init__("raftoral-lab-cluster")
        self.lab = lab
        self.examples = examples

    def start(self, timeout: float = 60.0) -> None:
        super().start()
        self.call(self.lab.start(), timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self.lab.stop(), timeout)
        self.close()

    def controller(self) -> LoopController:
        return LoopController(LabController(self.lab, examples=self.examples), self.loop)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "demo", help="a live cluster and its dashboard in the browser (for a class)"
    )
    p.add_argument("--nodes", type=positive_int, default=3, help="cluster size (default 3)")
    p.add_argument(
        "--execution-cluster-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="scale out: group 0 becomes a management group and workflows run in execution "
        "clusters of about N nodes, each its own Raft group (e.g. --nodes 15 "
        "--execution-cluster-size 5; default: one cluster, not scaled)",
    )
    p.add_argument(
        "--broker",
        default=None,
        help="broker URL (default: an embedded broker; 'memory' for none at all)",
    )
    p.add_argument("--cluster", default="lab", help="cluster name (default lab)")
    p.add_argument("--port", type=port_number, default=5006, help="dashboard port (default 5006)")
    p.add_argument(
        "--address",
        type=listen_address,
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1: this machine only; any other address "
        "makes a control token, printed below)",
    )
    p.add_argument("--token", help="the control token to use (default: a fresh random one)")
    p.add_argument("--show", action="store_true", help="open the dashboard in a browser")
    p.add_argument(
        "--tick", type=positive_float, default=0.05, help="tick length in seconds (default 0.05)"
    )
    p.add_argument(
        "--no-check-quorum",
        action="store_true",
        help="leaders cut off from a majority keep leading (a stale leader, for the lesson)",
    )
    p.add_argument("--workload", action="store_true", help="start with the write workload on")
    p.add_argument(
        "--record", type=new_file, metavar="FILE.jsonl", help="also record every event to a file"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_args(args)
    try:
        return asyncio.run(_main(args))
    except asyncio.CancelledError:  # SIGTERM: stopped cleanly
        return 0


def check_args(args: argparse.Namespace) -> None:
    """The cluster name and broker URL, before a broker or a node starts (ConfigError)."""
    from raftoral_lab.transport.mqtt import parse_broker_url
    from raftoral_lab.transport.topics import validate_cluster

    validate_cluster(args.cluster)
    if args.broker is not None and args.broker != "memory":
        parse_broker_url(args.broker)


def make_lab(args: argparse.Namespace) -> tuple[Lab, bool]:
    """The Lab; True when it runs the sample workflows."""
    from raftoral_lab.lab import Lab

    config = RaftConfig(check_quorum=not args.no_check_quorum)
    kwargs: dict[str, Any] = {}
    app = sample_app()
    with_app = app is not None and "app" in inspect.signature(Lab).parameters
    if with_app:
        kwargs["app"] = app
    size = getattr(args, "execution_cluster_size", None)
    if size is not None:
        if not with_app:
            from raftoral_lab.errors import ConfigError

            raise ConfigError(
                "--execution-cluster-size needs the workflow layer (execution clusters run "
                "workflows), and it is not importable here"
            )
        kwargs["execution_cluster_size"] = size
    lab = Lab(
        nodes=args.nodes,
        broker=args.broker,
        cluster=args.cluster,
        tick_seconds=args.tick,
        config=config,
        max_events=MAX_EVENTS,
        **kwargs,
    )
    return lab, with_app


async def _main(args: argparse.Namespace) -> int:
    from raftoral_lab.dashboard.controls import Workload
    from raftoral_lab.dashboard.model import ListSource, Model
    from raftoral_lab.dashboard.serve import serve_until_cancelled, session_factory, start_server
    from raftoral_lab.dashboard.serve import urls as dashboard_urls

    _cancel_on_sigterm()
    lab, with_app = make_lab(args)
    runner = LabThread(lab, examples=SAMPLE_INPUTS)
    recording: asyncio.Task[None] | None = None
    await asyncio.to_thread(runner.start)
    try:
        if args.record:
            recording = asyncio.ensure_future(_record(lab, args))
        model = Model(ListSource(lab.events), title=f"cluster {args.cluster!r}", mode="live")
        controller = runner.controller()
        policy = AccessPolicy.for_address(args.address, args.token)
        workload = Workload()
        if args.workload:
            workload.start(controller)
        factory = session_factory(model, controller, policy, workload=workload)
        server = start_server(factory, port=args.port, address=args.address, show=args.show)
        port = server.port
        where = lab.url
        print(f"raftoral-lab demo: {args.nodes} nodes on {where}, cluster {args.cluster!r}")
        if getattr(args, "execution_cluster_size", None) is not None:
            print(
                f"  scaled out: a management group (group 0) and execution clusters of about "
                f"{args.execution_cluster_size} nodes"
            )
        if not with_app:
            print("  workflows: not wired into the Lab yet (the workflow controls say so)")
        for url in dashboard_urls(port, args.address, policy):
            print(f"  dashboard: {url}")
        if policy.token is not None:
            print(f"  control token: {policy.token} (pages opened without it only watch)")
        print("  Ctrl-C to stop", flush=True)
        try:
            await serve_until_cancelled(server)
        finally:
            workload.stop()
    finally:
        if recording is not None:
            recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recording
        await asyncio.to_thread(runner.stop)
    return 0


async def _record(lab: Lab, args: argparse.Namespace) -> None:
    """Copy the lab's events to a recording twice a second (restarted nodes included)."""
    from raftoral_lab.dashboard.model import ListSource
    from raftoral_lab.events.recording import Recorder

    source = ListSource(lab.events)
    config = {
        "tick_seconds": args.tick,
        "nodes": args.nodes,
        "check_quorum": not args.no_check_quorum,
        "execution_cluster_size": getattr(args, "execution_cluster_size", None),
    }
    with Recorder(args.record, cluster=args.cluster, config=config, flush_each=False) as recorder:
        try:
            while True:
                recorder.extend(source.poll())
                recorder.flush()
                await asyncio.sleep(0.5)
        finally:
            recorder.extend(source.poll())


def _cancel_on_sigterm() -> None:
    """A terminated demo stops its nodes and broker like an interrupted one."""
    task = asyncio.current_task()
    if task is None or sys.platform == "win32":
        return
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
