"""`raftoral-lab node`: one Raft node in its own process, on a shared broker.

`--bootstrap` founds a cluster; `--join` finds one through presence, gets a fresh node id from
its leader (committed as a learner, promoted once caught up) and catches up by log or
snapshot. With `--data-dir` the node keeps its id, term, vote, log and snapshot in SQLite and
a restart resumes from them. Ctrl-C leaves the cluster cleanly (the node removes itself);
SIGTERM stops without leaving (a restart comes back as the same member); `kill -9` is a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from raftoral_lab.cli.common import (
    add_broker_args,
    check_broker_args,
    mqtt_transport,
    new_file,
    positive_float,
    positive_int,
)
from raftoral_lab.core import RaftConfig, Storage
from raftoral_lab.errors import ConfigError, RaftoralError
from raftoral_lab.events import EventBase, Recorder
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient, client_id
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.node.state_machine import StateMachine
from raftoral_lab.scale import ClusterPolicy, ManagementState, ScaledRuntime
from raftoral_lab.storage import MemoryStorage, SQLiteStorage
from raftoral_lab.workflow import WorkflowApp, WorkflowRuntime, WorkflowStateMachine

IDENTITY_FILE = "node.json"
SHOWN = {"role_changed", "membership_changed", "snapshot_installed", "snapshot_taken"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("node", help="run one Raft node process on a broker")
    add_broker_args(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--bootstrap", action="store_true", help="found a new cluster")
    how.add_argument("--join", action="store_true", help="join a running cluster")
    p.add_argument("--id", type=positive_int, help="node id when bootstrapping (default 1)")
    p.add_argument(
        "--voters", help="founding voters when bootstrapping, e.g. 1,2,3 (default: this node)"
    )
    p.add_argument(
        "--data-dir", type=Path, help="keep durable state here (SQLite); restart resumes"
    )
    p.add_argument(
        "--tick", type=positive_float, default=0.05, help="seconds per tick (default 0.05)"
    )
    p.add_argument(
        "--election-ticks", type=positive_int, default=10, help="election timeout in ticks"
    )
    p.add_argument(
        "--compact-every", type=positive_int, help="snapshot after this many applied entries"
    )
    p.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        help="run the workflows of this WorkflowApp, e.g. raftoral_lab.samples:app",
    )
    p.add_argument(
        "--execution-cluster-size",
        type=positive_int,
        metavar="N",
        help="scale out (needs --app): group 0 becomes the management group and workflows run "
        "in execution clusters of about N nodes; every node of the cluster must say the same",
    )
    p.add_argument(
        "--management-voters",
        type=positive_int,
        default=5,
        metavar="M",
        help="with --execution-cluster-size: voters of the management group, the other nodes "
        "are learners (default 5)",
    )
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.add_argument(
        "--events",
        choices=("on", "sampled", "off"),
        default="sampled",
        help="publish this node's events on events/{id} for dashboards anywhere: all of them, "
        "one message event in ten (default), or none",
    )
    p.add_argument("--record", type=new_file, help="also write every event to this JSONL file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace) -> int:
    # every flag is checked before anything is written or connected
    check_broker_args(args)
    app = load_app(args.app) if args.app is not None else None
    config = RaftConfig(
        election_timeout=args.election_ticks, heartbeat_interval=max(1, args.election_ticks // 10)
    )
    if args.bootstrap:
        _parse_voters(args.voters, args.id or 1)
    _check_data_dir(args.data_dir)
    policy = None
    if args.execution_cluster_size is not None:
        if app is None:
            raise ConfigError(
                "--execution-cluster-size runs workflows in execution clusters: give --app too"
            )
        policy = ClusterPolicy(args.execution_cluster_size)
    identity = _read_identity(args.data_dir)
    voters: list[int] | None = None
    if identity is not None:
        node_id, how = identity, "restarted from its data directory"
    elif args.bootstrap:
        node_id = args.id or 1
        voters = _parse_voters(args.voters, node_id)
        how = f"founded the cluster with voters {voters}"
    elif args.join:
        async with ClusterClient(mqtt_transport(args, client_id(), presence=False)) as client:
            node_id = await client.join()
        how = "joined as a learner"
    else:
        raise ConfigError(
            "say --bootstrap to found a cluster or --join to join one "
            "(or give the --data-dir of a node to restart it)"
        )
    storage = _storage(args.data_dir)
    _write_identity(args.data_dir, node_id, args.cluster)
    machine: StateMachine | None = None
    if policy is not None:
        machine = ManagementState()
    elif app is not None:
        machine = WorkflowStateMachine()
    node = Node(
        node_id,
        mqtt_transport(args, node_id),
        voters=voters,
        max_voters=args.management_voters if policy is not None else None,
        storage=storage,
        state_machine=machine,
        config=config,
        tick_seconds=args.tick,
        compact_every=args.compact_every,
        on_event=None if args.quiet else _printer(node_id),
        on_crash=lambda: os._exit(1),
    )
    stop = asyncio.Event()
    leave = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        leave.set()
        stop.set()

    loop.add_signal_handler(signal.SIGINT, interrupted)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if args.events != "off":
        EventPublisher(node, sample_messages=1.0 if args.events == "on" else 0.1)
    if args.record is not None:
        try:
            recorder = Recorder(
                args.record, cluster=args.cluster, config={"node": node_id}, flush_each=True
            )
        except OSError as error:
            raise ConfigError(f"--record {args.record}: cannot write it: {error}") from None
        node.listeners.append(recorder.record)
    runtime: WorkflowRuntime | ScaledRuntime | None = None
    if app is not None and policy is None:
        # the handlers are there before the node answers its first request: a client that
        # asks a (re)started node at once must not be told the op is unknown
        runtime = WorkflowRuntime(node, app)
        for op in WorkflowRuntime.RPC_OPS:
            node.rpc_handlers[op] = functools.partial(runtime.serve, op)
    await node.start()
    if app is not None and policy is not None:
        runtime = ScaledRuntime(
            node,
            app,
            policy=policy,
            storage_for=functools.partial(_cluster_storage, args.data_dir),
            forget_storage=functools.partial(_forget_cluster_storage, args.data_dir),
        )
        await runtime.start()
        print(
            f"node {node_id}: execution clusters of {policy.target_size} nodes "
            f"(management group of {args.management_voters} voters)",
            flush=True,
        )
    if isinstance(runtime, WorkflowRuntime):
        # registration is committed in the background (a joiner is not a voter yet)
        await runtime.start(wait=False)
        pairs = ", ".join(f"{name} v{version}" for name, version in runtime.app.pairs())
        print(f"node {node_id}: running workflows of {args.app}: {pairs}", flush=True)
    print(f"node {node_id} of cluster {args.cluster!r} on {args.broker}: {how}", flush=True)
    await stop.wait()
    if leave.is_set():
        print(f"node {node_id}: leaving the cluster", flush=True)
        try:
            await node.leave(timeout=10)
        except RaftoralError as error:
            print(f"node {node_id}: could not leave cleanly: {error}", file=sys.stderr, flush=True)
    if runtime is not None:
        await runtime.stop()
    await node.stop()
    print(f"node {node_id}: stopped", flush=True)
    return 0


def load_app(spec: str) -> WorkflowApp:
    """The WorkflowApp named by `package.module:attribute` (ConfigError saying what is wrong)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute or ":" in attribute:
        raise ConfigError(
            f"--app takes package.module:attribute, e.g. raftoral_lab.samples:app; got {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise ConfigError(
                f"--app {spec}: no module named {module_name!r} (is it on PYTHONPATH, "
                "or installed in this environment?)"
            ) from None
        raise ConfigError(f"--app {spec}: importing {module_name!r} failed: {error}") from None
    except Exception as error:  # the user's module raised while being imported
        raise ConfigError(
            f"--app {spec}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    value: object = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(
                f"--app {spec}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not isinstance(value, WorkflowApp):
        raise ConfigError(
            f"--app {spec}: {attribute!r} is a {type(value).__name__}, not a WorkflowApp "
            "(create it with `app = WorkflowApp()` and register workflows with @app.workflow)"
        )
    if not list(value.pairs()):
        raise ConfigError(f"--app {spec}: the WorkflowApp has no workflows registered")
    return value


def _parse_voters(text: str | None, node_id: int) -> list[int]:
    if text is None:
        return [node_id]
    try:
        voters = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(
            f"--voters takes node ids separated by commas, e.g. 1,2,3; got {text!r}"
        ) from None
    if node_id not in voters or any(v < 1 for v in voters):
        raise ConfigError(
            f"--voters {text} must be positive ids and include this node's id {node_id}"
        )
    return voters


def _check_data_dir(data_dir: Path | None) -> None:
    """The data directory is a directory, or can be made one (nothing is created here)."""
    if data_dir is None:
        return
    try:
        exists, is_dir = data_dir.exists(), data_dir.is_dir()
        parent = next((p for p in data_dir.absolute().parents if p.exists()), None)
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        raise ConfigError(f"--data-dir {str(data_dir)!r} cannot be used: {error}") from None
    if exists:
        if not is_dir:
            raise ConfigError(f"--data-dir {data_dir} is a file; give a directory")
        return
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--data-dir {data_dir} cannot be created: {parent} is not a writable directory"
        )


def _storage(data_dir: Path | None) -> Storage:
    if data_dir is None:
        return MemoryStorage()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--data-dir {data_dir} cannot be created: {error}") from None
    return SQLiteStorage(data_dir / "raft.db")


def _cluster_storage(data_dir: Path | None, cluster: int) -> Storage:
    """This node's storage of execution cluster `cluster` (the same file after a restart)."""
    if data_dir is None:
        return MemoryStorage()
    return SQLiteStorage(data_dir / f"cluster-{cluster}.db")


def _forget_cluster_storage(data_dir: Path | None, cluster: int) -> None:
    """The node left the cluster: should it come back, it joins afresh."""
    if data_dir is not None:
        for path in data_dir.glob(f"cluster-{cluster}.db*"):
            path.unlink(missing_ok=True)


def _read_identity(data_dir: Path | None) -> int | None:
    if data_dir is None or not (data_dir / IDENTITY_FILE).exists():
        return None
    path = data_dir / IDENTITY_FILE
    try:
        return int(json.loads(path.read_text())["node_id"])
    except OSError as exc:
        raise ConfigError(f"cannot read the node identity file {path}: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a node identity file ({exc}); move it away or fix it"
        ) from None


def _write_identity(data_dir: Path | None, node_id: int, cluster: str) -> None:
    if data_dir is not None:
        (data_dir / IDENTITY_FILE).write_text(
            json.dumps({"node_id": node_id, "cluster": cluster}) + "\n"
        )


def _printer(node_id: int) -> Callable[[EventBase], None]:
    def show(event: EventBase) -> None:
        if event.kind in SHOWN:
            fields = event.model_dump(exclude={"kind", "v", "node", "group", "seq", "ts", "tick"})
            details = " ".join(f"{k}={v}" for k, v in fields.items())
            where = f" (cluster {event.group})" if event.group else ""
            print(f"node {node_id}{where}: {event.kind} {details}", flush=True)

    return show
