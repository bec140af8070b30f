"""`Lab`: a whole cluster in one process, with the controls a lesson needs.

```python
async with Lab(nodes=3) as lab:                 # embedded MQTT broker by default
    await lab.wait_for_leader()
    await lab.propose(b"hello")
    await lab.kill(lab.leader_id)               # a crash: the node's storage survives
    await lab.restart(1)
    new_id = await lab.join()                   # a new member, through the leader
    await lab.partition({1}, {2, 3}); await lab.heal()
```

Every entry point is async (Jupyter runs top-level `await`, and `asyncio.run` fails inside a
kernel). The nodes are real `Node`s on a real transport: the memory network (`broker="memory"`),
the embedded broker (the default), or any broker URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from raftoral_lab.core import ConfChange, ConfChangeOp, RaftConfig, Role, Storage
from raftoral_lab.errors import ConfigError, NodeError, ProposalTimeout, WorkflowNotFound
from raftoral_lab.events import EventBase, EventLog, Recorder
from raftoral_lab.node import CommandLog, Node, StateMachine
from raftoral_lab.node.client import ClusterClient, client_id
from raftoral_lab.node.publisher import EventPublisher
from raftoral_lab.scale import (
    ClusterPolicy,
    ExecutionCluster,
    ManagementState,
    RemoteRun,
    RoundRobin,
    ScaledRuntime,
    WorkflowPlacement,
)
from raftoral_lab.scale.state import workflow_cluster
from raftoral_lab.storage import MemoryStorage, SQLiteStorage
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.broker import EmbeddedBroker
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mqtt import MqttTransport
from raftoral_lab.transport.signing import check_secret
from raftoral_lab.workflow import (
    WorkflowApp,
    WorkflowInfo,
    WorkflowRun,
    WorkflowRuntime,
    WorkflowStateMachine,
)

MEMORY = "memory"


class Lab:
    def __init__(
        self,
        nodes: int = 3,
        *,
        app: WorkflowApp | None = None,
        state_machine: Callable[[int], StateMachine] | None = None,
        broker: str | None = None,
        cluster: str = "lab",
        tick_seconds: float = 0.05,
        config: RaftConfig | None = None,
        data_dir: str | Path | None = None,
        compact_every: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        tls_ca_file: str | Path | None = None,
        secret: str | bytes | None = None,
        retain_finished: int = 1000,
        publish_events: bool = True,
        sample_messages: float = 0.1,
        record: str | Path | None = None,
        message_events: bool = True,
        max_events: int | None = None,
        execution_cluster_size: int | None = None,
        max_cluster_size: int | None = None,
        management_voters: int | None = None,
        placement: WorkflowPlacement | None = None,
    ) -> None:
        """`app` (a WorkflowApp) makes every node run its workflows; without it the nodes
        replicate plain commands (`lab.propose`); `state_machine(node_id)` builds each node's
        own state machine instead, whenever it starts (restart and join too: it is rebuilt
        from the snapshot and the log). `broker`: None for an embedded broker,
        "memory" for no broker at all, or a URL (`mqtt://host:1883`, `mqtts://...`) to use
        Mosquitto or any other broker.
        `data_dir` keeps each node's state in SQLite there; by default it lives in memory
        (and still survives `kill` and `restart`, as a disk would).

        `execution_cluster_size` scales out (needs an `app`): group 0 becomes a management
        group of `management_voters` voters (default 5, or 3 below 5 nodes) with every other
        node a learner, and workflows run in execution clusters of about that many nodes
        (at most `max_cluster_size`), placed round-robin or by `placement`.

        `message_events` makes every node report each Raft message it sends and receives, so
        the dashboard draws message rates; benchmarks turn it off.

        `max_events` keeps only the newest that many in `lab.events` (None: all of them), so
        a long-running demo's memory stays flat; a reader that falls behind counts the rest
        as lost (`events.trimmed`).

        `retain_finished`: how many finished workflows every node remembers. It bounds "an id
        never runs twice": after that many later workflows finished, an id is forgotten and
        a start with it runs the workflow again, as a new run."""
        _check_arguments(
            nodes=nodes,
            tick_seconds=tick_seconds,
            config=config,
            app=app,
            state_machine=state_machine,
            data_dir=data_dir,
            compact_every=compact_every,
            retain_finished=retain_finished,
            record=record,
        )
        self.size = nodes
        self.broker_url = broker
        self.cluster = cluster
        self.tick_seconds = tick_seconds
        self.config = config or RaftConfig()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.compact_every = compact_every
        self._auth: dict[str, Any] = {
            "username": username,
            "password": password,
            "tls": tls,
            "tls_ca_file": tls_ca_file,
        }
        if secret is not None:
            check_secret(secret)  # a weak secret fails here, not in every node
        self._secret = secret
        self.nodes: dict[int, Node] = {}
        """Every node ever started here, by id; `alive` tells which are running."""
        if app is not None and state_machine is not None:
            raise ConfigError("give a Lab either an app or a state_machine factory, not both")
        self.app = app
        self._state_machine = state_machine
        self.policy: ClusterPolicy | None = None
        """The execution-cluster policy when the lab is scaled out (else None)."""
        self.management_voters = nodes
        if execution_cluster_size is not None:
            if app is None:
                raise ConfigError(
                    "execution clusters run workflows: give the Lab an app as well "
                    "(Lab(nodes=15, execution_cluster_size=5, app=your_app))"
                )
            self.policy = ClusterPolicy(execution_cluster_size, max_size=max_cluster_size)
            default_voters = 5 if nodes >= 5 else min(nodes, 3)
            self.management_voters = management_voters or default_voters
            if not 1 <= self.management_voters <= nodes:
                raise ConfigError(
                    f"management_voters must be between 1 and nodes ({nodes}), "
                    f"got {management_voters}"
                )
        elif management_voters is not None or max_cluster_size is not None:
            raise ConfigError(
                "management_voters and max_cluster_size apply to a scaled lab: "
                "set execution_cluster_size too"
            )
        self.placement: WorkflowPlacement = placement or RoundRobin()
        self.scaled: dict[int, ScaledRuntime] = {}
        """Each running node's scaled runtime (management and execution clusters), by id."""
        self._group_storages: dict[tuple[int, int], Storage] = {}
        self.retain_finished = retain_finished
        self.events = EventLog(maxlen=max_events)
        """Every event of every node (the newest `max_events` when set), in the order they
        happened in this process (`lab.events.to_dataframe()`, `.filter(...)`)."""
        self.runtimes: dict[int, WorkflowRuntime] = {}
        self.publish_events = publish_events
        """Every node publishes its events on `events/{id}`, so an observer anywhere on the
        broker (`raftoral-lab dashboard`, a RemoteObserver) sees the cluster."""
        self.sample_messages = sample_messages
        """The share of message-level events published (each stands for 1/share messages):
        publishing every one of them would double what the broker carries."""
        self.message_events = message_events
        self._publishers: dict[int, EventPublisher] = {}
        self.recorder: Recorder | None = None
        if record is not None:
            settings = {
                "nodes": nodes,
                "tick_seconds": tick_seconds,
                "broker": broker or "embedded",
                "election_timeout": self.config.election_timeout,
                "heartbeat_interval": self.config.heartbeat_interval,
            }
            self.recorder = Recorder(record, cluster=cluster, config=settings)
            """Every event also goes to this JSONL file (`raftoral-lab replay FILE` shows it)."""
        self._storages: dict[int, Storage] = {}
        self._removed: set[int] = set()
        self._network: MemoryNetwork | None = None
        self._embedded: EmbeddedBroker | None = None
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        if self.broker_url == MEMORY:
            self._network = MemoryNetwork(cluster=self.cluster)
        elif self.broker_url is None:
            self._embedded = EmbeddedBroker()
            await self._embedded.start()
        self._started = True
        founders = list(range(1, self.size + 1))
        voters = founders[: self.management_voters]
        starts = [self._start_node(node_id, voters) for node_id in founders]
        failures = [
            outcome
            for outcome in await asyncio.gather(*starts, return_exceptions=True)
            if isinstance(outcome, BaseException)
        ]
        if failures:
            # `async with` runs no __aexit__ when __aenter__ raises: leave nothing running
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        """Stop every node and the embedded broker; state in `data_dir` stays on disk."""
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(r.stop() for r in self.runtimes.values()), return_exceptions=True)
        await asyncio.gather(*(r.stop() for r in self.scaled.values()), return_exceptions=True)
        await asyncio.gather(*(node.stop() for node in self.nodes.values()), return_exceptions=True)
        if self.recorder is not None:
            self.recorder.close()
        for storage in [*self._storages.values(), *self._group_storages.values()]:
            close = getattr(storage, "close", None)
            if close is not None:
                close()
        if self._embedded is not None:
            await self._embedded.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The broker the nodes use ("memory" for the in-process network)."""
        if self._embedded is not None:
            return self._embedded.url
        return self.broker_url or MEMORY

    # --- looking -------------------------------------------------------------------------------

    def node(self, node_id: int) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise ConfigError(
                f"no node {node_id} in this lab; nodes are {sorted(self.nodes)}"
            ) from None

    def alive(self) -> list[int]:
        return sorted(n for n, node in self.nodes.items() if node.running)

    @property
    def leader_id(self) -> int | None:
        """The leader of the highest term a running node has reached, if that term has one
        (a deposed leader cut off from the others is not the leader)."""
        running = [node.status() for node in self.nodes.values() if node.running]
        if not running:
            return None
        top = max(status.term for status in running)
        leaders = [s.id for s in running if s.term == top and s.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_for_leader(self, timeout: float = 10.0, *, exclude: Iterable[int] = ()) -> int:
        """Wait until a leader is elected (not one of `exclude`) and return its id."""
        excluded = set(exclude)
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader_id
            if leader is not None and leader not in excluded:
                return leader
            if time.monotonic() > deadline:
                raise ProposalTimeout(
                    f"no leader elected within {timeout:g} s; alive nodes: {self.alive()}"
                )
            await asyncio.sleep(self.tick_seconds)

    async def propose(
        self, data: bytes, *, node: int | None = None, timeout: float = 10.0
    ) -> object:
        """Replicate `data` through `node` (default: the leader; a follower would forward)."""
        target = node if node is not None else (self.leader_id or self._any_alive())
        return await self.node(target).propose(data, timeout=timeout)

    # --- workflows -----------------------------------------------------------------------------

    def runtime(self, node_id: int) -> WorkflowRuntime:
        """The workflow runtime of a running node (the Lab needs an `app`); in a scaled lab,
        see `scaled_runtime` (a node has one workflow runtime per execution cluster)."""
        if self.app is None:
            raise ConfigError(
                "this Lab has no workflows: create it with Lab(app=your_workflow_app)"
            )
        if self.policy is not None:
            raise ConfigError(
                "a scaled lab runs one workflow runtime per execution cluster: use "
                "lab.scaled_runtime(node), or lab.start_workflow / lab.get_workflow"
            )
        try:
            return self.runtimes[node_id]
        except KeyError:
            raise NodeError(f"node {node_id} is not running; alive nodes: {self.alive()}") from None

    def scaled_runtime(self, node_id: int) -> ScaledRuntime:
        """The scaled runtime of a running node of a scaled lab (`execution_cluster_size`)."""
        if self.policy is None:
            raise ConfigError(
                "this Lab is not scaled out: create it with Lab(nodes=15, "
                "execution_cluster_size=5, app=...), or use lab.runtime(node)"
            )
        try:
            return self.scaled[node_id]
        except KeyError:
            raise NodeError(f"node {node_id} is not running; alive nodes: {self.alive()}") from None

    async def start_workflow(
        self,
        name: str,
        version: int,
        input: Any = None,
        *,
        node: int | None = None,
        workflow_id: str | None = None,
        timeout: float = 10.0,
    ) -> WorkflowRun | RemoteRun:
        """Start (name, version) with `input` on `node` (default: the leader). Starting an id
        that exists returns the existing run; it never runs twice while the nodes remember it
        (see `retain_finished`). In a scaled lab the run goes to an execution cluster
        (forwarded when `node` is not a member of it)."""
        target = node if node is not None else (self.leader_id or self._any_alive())
        if self.policy is not None:
            return await self.scaled_runtime(target).start_workflow(
                name, version, input, workflow_id=workflow_id, timeout=timeout
            )
        return await self.runtime(target).start_workflow(
            name, version, input, workflow_id=workflow_id, timeout=timeout
        )

    def list_workflows(self) -> list[WorkflowInfo]:
        if self.policy is not None:
            return [
                info
                for runtime in self._cluster_runtimes().values()
                for info in runtime.list_workflows()
            ]
        return self.runtime(self.leader_id or self._any_alive()).list_workflows()

    def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        if self.policy is not None:
            cluster = workflow_cluster(workflow_id)
            runtime = self._cluster_runtimes().get(cluster) if cluster is not None else None
            if runtime is None:
                raise WorkflowNotFound(workflow_id)
            return runtime.get_workflow(workflow_id)
        return self.runtime(self.leader_id or self._any_alive()).get_workflow(workflow_id)

    # --- execution clusters (a scaled lab) -------------------------------------------------------

    def clusters(self) -> dict[int, ExecutionCluster]:
        """The execution clusters as the management group's leader has them."""
        if self.policy is None:
            return {}
        leader = self.leader_id
        source = self.scaled.get(leader) if leader is not None else None
        source = source or next(iter(self.scaled.values()), None)
        return source.clusters() if source is not None else {}

    def cluster_leader(self, cluster: int) -> int | None:
        """The leader of an execution cluster, as its running members see it."""
        leaders = {
            scaled.cluster_leader(cluster)
            for scaled in self.scaled.values()
            if cluster in scaled.runtimes
        }
        leaders.discard(None)
        return leaders.pop() if len(leaders) == 1 else None

    async def wait_for_clusters(self, count: int | None = None, timeout: float = 30.0) -> None:
        """Wait until the execution clusters have formed (`count` of them, if given): every
        running node hosts its clusters, each with a leader, and knows its workflows."""
        if self.policy is None:
            raise ConfigError("this Lab is not scaled out (no execution_cluster_size)")
        deadline = time.monotonic() + timeout
        while True:
            clusters = self.clusters()
            formed = bool(clusters) and (count is None or len(clusters) == count)
            if (
                formed
                and all(self.cluster_leader(c) is not None for c in clusters)
                and all(self.scaled[n].ready() for n in self.alive() if n in self.scaled)
            ):
                return
            if time.monotonic() > deadline:
                raise ProposalTimeout(
                    f"execution clusters not formed within {timeout:g} s: have "
                    f"{ {c: list(x.members) for c, x in clusters.items()} }"
                )
            await asyncio.sleep(self.tick_seconds)

    def _cluster_runtimes(self) -> dict[int, WorkflowRuntime]:
        """One in-process workflow runtime per execution cluster (a running member's)."""
        found: dict[int, WorkflowRuntime] = {}
        for node_id in self.alive():
            scaled = self.scaled.get(node_id)
            if scaled is None:
                continue
            for cluster, runtime in scaled.runtimes.items():
                found.setdefault(cluster, runtime)
        return found

    # --- controls ------------------------------------------------------------------------------

    async def set_tick(self, seconds: float) -> None:
        """The speed dial: every node's tick length (elections and heartbeats count ticks)."""
        if seconds <= 0:
            raise ConfigError(f"tick_seconds must be positive, got {seconds}")
        self.tick_seconds = seconds
        for node in self.nodes.values():
            node.tick_seconds = seconds

    def dashboard(self, **options: Any) -> Any:
        """The live dashboard of this lab, for a notebook cell."""
        from importlib import import_module

        return import_module("raftoral_lab.dashboard").lab_dashboard(self, **options)

    async def kill(self, node_id: int) -> None:
        """Crash a node: it stops at once, without goodbye; its storage survives."""
        node = self.node(node_id)
        if not node.running:
            raise NodeError(f"node {node_id} is not running")
        await self._stop_runtimes(node_id)
        await node.stop(crash=True)
        self._record(node_id, "node_crashed")

    async def restart(self, node_id: int) -> None:
        """Start a killed node again from its storage (term, vote, log and snapshot)."""
        node = self.node(node_id)
        if node.running:
            raise NodeError(f"node {node_id} is running; kill it first")
        if node_id in self._removed:
            raise NodeError(f"node {node_id} was removed from the cluster; join a new node instead")
        await self._start_node(node_id, voters=None)
        self._record(node_id, "node_restarted")

    async def join(self, *, timeout: float = 30.0) -> int:
        """Add a brand-new node: the leader gives it an id, it joins as a learner, catches up
        (by snapshot when the log was compacted) and is promoted to voter."""
        async with ClusterClient(self._transport(client_id(), presence=False)) as client:
            node_id = await client.join(timeout=timeout)
        await self._start_node(node_id, voters=None)
        self._record(node_id, "node_joined")
        return node_id

    async def remove(self, node_id: int, *, timeout: float = 10.0) -> None:
        """Remove a member through the log (the leader too), then stop it."""
        self.node(node_id)
        via = self.leader_id or self._any_alive(exclude={node_id})
        await self.node(via).change_membership(
            ConfChange(ConfChangeOp.REMOVE, node_id), timeout=timeout
        )
        self._removed.add(node_id)
        await self._stop_runtimes(node_id)
        if self.nodes[node_id].running:
            await self.nodes[node_id].stop()
        self._record(node_id, "node_removed")

    async def partition(self, *sides: Iterable[int]) -> None:
        """Cut the network between `sides`; a node named in no side is alone."""
        groups = [_node_set(side) for side in sides]
        every = set(self.nodes)
        named: set[int] = set()
        for side in groups:
            if side - every:
                raise ConfigError(
                    f"unknown node(s) {sorted(side - every)}; nodes are {sorted(every)}"
                )
            if side & named:
                raise ConfigError(f"node(s) {sorted(side & named)} appear in two partition sides")
            named |= side
        groups += [{n} for n in sorted(every - named)]
        for side in groups:
            for node_id in side:
                self.nodes[node_id].transport.faults.blocked = every - side
        self._record(0, "partitioned", {"sides": [sorted(side) for side in groups]})

    async def isolate(self, node_id: int) -> None:
        await self.partition({node_id}, set(self.nodes) - {node_id})

    async def heal(self) -> None:
        for node in self.nodes.values():
            node.transport.faults.heal()
        self._record(0, "healed")

    async def set_drop_rate(self, rate: float) -> None:
        """Drop this fraction of Raft messages on every node (0 to 1)."""
        for node in self.nodes.values():
            node.transport.faults.drop_rate = rate

    async def set_delay(self, low: float, high: float | None = None) -> None:
        """Delay every Raft message by a random time in [low, high] seconds."""
        for node in self.nodes.values():
            node.transport.faults.set_delay(low, high)

    # --- plumbing ------------------------------------------------------------------------------

    async def _stop_runtimes(self, node_id: int) -> None:
        runtime = self.runtimes.pop(node_id, None)
        if runtime is not None:
            await runtime.stop()
        scaled = self.scaled.pop(node_id, None)
        if scaled is not None:
            await scaled.stop()

    async def _start_node(self, node_id: int, voters: list[int] | None) -> Node:
        storage = self._storages.get(node_id)
        if storage is None:
            storage = self._new_storage(node_id)
            self._storages[node_id] = storage
        machine: StateMachine
        if self.policy is not None:
            machine = ManagementState()
        elif self._state_machine is not None:
            machine = self._state_machine(node_id)
        elif self.app is not None:
            machine = WorkflowStateMachine(retain_finished=self.retain_finished)
        else:
            machine = CommandLog()
        founding_learners = None
        if voters is not None and self.policy is not None:
            founding_learners = [n for n in range(1, self.size + 1) if n not in voters]
        node = Node(
            node_id,
            self._transport(node_id),
            voters=voters,
            learners=founding_learners,
            max_voters=self.management_voters if self.policy is not None else None,
            storage=storage,
            state_machine=machine,
            config=self.config,
            tick_seconds=self.tick_seconds,
            compact_every=self.compact_every,
            message_events=self.message_events,
            on_event=self._on_event,
        )
        self.nodes[node_id] = node
        if self.publish_events:
            self._publishers[node_id] = EventPublisher(node, sample_messages=self.sample_messages)
        await node.start()
        if self.policy is not None and self.app is not None:
            scaled = ScaledRuntime(
                node,
                self.app,
                policy=self.policy,
                placement=self.placement,
                storage_for=functools.partial(self._group_storage, node_id),
                forget_storage=functools.partial(self._forget_group_storage, node_id),
                retain_finished=self.retain_finished,
            )
            self.scaled[node_id] = scaled
            await scaled.start()
        elif self.app is not None:
            runtime = WorkflowRuntime(node, self.app)
            for op in WorkflowRuntime.RPC_OPS:
                node.rpc_handlers[op] = functools.partial(runtime.serve, op)
            self.runtimes[node_id] = runtime
            # a joiner registers its versions once it has caught up; do not hold join() for it
            await runtime.start(wait=voters is not None)
        return node

    def _new_storage(self, node_id: int, group: int = 0) -> Storage:
        if self.data_dir is None:
            return MemoryStorage()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        suffix = f"-cluster-{group}" if group else ""
        return SQLiteStorage(self.data_dir / f"node-{node_id}{suffix}.db")

    def _group_storage(self, node_id: int, group: int) -> Storage:
        """A node's storage of an execution group: the same one after a restart."""
        key = (node_id, group)
        storage = self._group_storages.get(key)
        if storage is None:
            storage = self._group_storages[key] = self._new_storage(node_id, group)
        return storage

    def _forget_group_storage(self, node_id: int, group: int) -> None:
        """The node left the cluster: a later return starts it afresh (as a joiner)."""
        storage = self._group_storages.pop((node_id, group), None)
        close = getattr(storage, "close", None)
        if close is not None:
            close()
        path = getattr(storage, "path", None)
        if path is not None:
            for leftover in Path(path).parent.glob(Path(path).name + "*"):
                leftover.unlink(missing_ok=True)

    def _transport(self, node_id: int, *, presence: bool = True) -> Transport:
        if not self._started:
            raise NodeError(
                "the lab is not started; use `async with Lab(...) as lab` or await lab.start()"
            )
        if self._network is not None:
            return self._network.transport(node_id, presence=presence, secret=self._secret)
        return MqttTransport(
            node_id, self.cluster, self.url, presence=presence, secret=self._secret, **self._auth
        )

    def _any_alive(self, exclude: set[int] | None = None) -> int:
        candidates = [n for n in self.alive() if n not in (exclude or set())]
        if not candidates:
            raise NodeError("no node is running in this lab")
        return candidates[0]

    def _on_event(self, event: EventBase) -> None:
        self.events.append(event)
        if self.recorder is not None:
            self.recorder.record(event)

    def _record(self, node_id: int, kind: str, fields: dict[str, Any] | None = None) -> None:
        """Lab-level facts (kills, partitions) join the same event stream as the nodes'."""
        node = self.nodes.get(node_id)
        if node is not None:
            node.emit(0, kind, fields or {})
        else:
            with contextlib.suppress(StopIteration):
                any_node = next(iter(self.nodes.values()))
                any_node.emit(0, kind, fields or {})


def _node_set(side: object) -> set[int]:
    """One side of a partition: an iterable of node ids (ConfigError saying so otherwise)."""
    if isinstance(side, str | bytes) or not isinstance(side, Iterable):
        raise ConfigError(
            f"a partition side is a set of node ids, e.g. lab.partition({{1}}, {{2, 3}}); "
            f"got {side!r}"
        )
    ids = set(side)
    bad = [n for n in ids if isinstance(n, bool) or not isinstance(n, int)]
    if bad:
        raise ConfigError(f"node ids are ints, got {bad!r} in partition side {side!r}")
    return ids


def _check_arguments(
    *,
    nodes: object,
    tick_seconds: object,
    config: object,
    app: object,
    state_machine: object,
    data_dir: object,
    compact_every: object,
    retain_finished: object,
    record: object,
) -> None:
    """Refuse bad Lab arguments at once, saying which and what to give instead."""

    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(nodes) or not 1 <= nodes <= 1000:  # type: ignore[operator]
        raise ConfigError(f"nodes must be a whole number from 1 to 1000, got {nodes!r}")
    if (
        isinstance(tick_seconds, bool)
        or not isinstance(tick_seconds, int | float)
        or not math.isfinite(tick_seconds)
        or tick_seconds <= 0
    ):
        raise ConfigError(
            f"tick_seconds must be a positive number of seconds (0.05 is usual), "
            f"got {tick_seconds!r}"
        )
    if config is not None and not isinstance(config, RaftConfig):
        raise ConfigError(f"config must be a RaftConfig(...), got {type(config).__name__}")
    if app is not None and not isinstance(app, WorkflowApp):
        raise ConfigError(
            f"app must be a WorkflowApp (app = WorkflowApp(); @app.workflow(...)), "
            f"got {type(app).__name__}"
        )
    if state_machine is not None and not callable(state_machine):
        raise ConfigError(
            "state_machine must be a function of the node id that builds a state machine, "
            f"got {type(state_machine).__name__}"
        )
    if data_dir is not None and not isinstance(data_dir, str | Path):
        raise ConfigError(f"data_dir must be a path, got {type(data_dir).__name__}")
    if compact_every is not None and (not whole(compact_every) or compact_every < 1):  # type: ignore[operator]
        raise ConfigError(
            f"compact_every must be a whole number of entries >= 1, got {compact_every!r}"
        )
    if not whole(retain_finished) or retain_finished < 0:  # type: ignore[operator]
        raise ConfigError(f"retain_finished must be a whole number >= 0, got {retain_finished!r}")
    if record is not None:
        if not isinstance(record, str | Path):
            raise ConfigError(f"record must be a file path, got {type(record).__name__}")
        folder = Path(record).parent
        if not folder.is_dir():
            raise ConfigError(
                f"record: the folder {str(folder)!r} does not exist; create it or record "
                "somewhere else"
            )
