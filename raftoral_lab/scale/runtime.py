"""One node of a scaled cluster: the management group, its execution clusters, forwarding.

```python
node = Node(7, transport, voters=[1, 2, 3], learners=[4, 5, 6, 7, ...], max_voters=3,
            state_machine=ManagementState())
scaled = ScaledRuntime(node, app, policy=ClusterPolicy(target_size=5))
await node.start(); await scaled.start()
run = await scaled.start_workflow("ten_steps", 1, 3)     # from any node
await run.result(timeout=30)
```

What each node does, every tick:
- hosts the execution clusters the management state puts it in: a Raft group and a
  `WorkflowRuntime` per cluster (founders bootstrap it; later members wait to be added), and
  lets go of a cluster once that cluster's own log has removed it;
- as leader of group 0: watches who is alive and proposes a new `Plan` when the cluster
  policy's answer changes (only plans go through group 0, nothing per workflow);
- as leader of an execution group: moves that group's Raft membership towards the plan, one
  change at a time through the group's own log (add a learner, which is promoted once caught
  up; then remove who left), so its checkpoints stay inside its members.
Requests (`workflow.start/result/get/list/cancel`, from the API or the node's rpc topic) are
served by the local runtime of the workflow's cluster, or forwarded to a member of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from raftoral_lab.core import ConfChange, ConfChangeOp, Role, Storage
from raftoral_lab.errors import (
    NodeError,
    RaftoralError,
    WorkflowCancelled,
    WorkflowError,
    WorkflowFailed,
    WorkflowNotFound,
    WorkflowTimeout,
)
from raftoral_lab.node import Node
from raftoral_lab.node.liveness import Liveness
from raftoral_lab.scale.placement import ClusterPolicy, RoundRobin, WorkflowPlacement
from raftoral_lab.scale.state import (
    ExecutionCluster,
    ManagementState,
    Plan,
    workflow_cluster,
    workflow_id_in,
)
from raftoral_lab.storage import MemoryStorage
from raftoral_lab.workflow import (
    WorkflowApp,
    WorkflowInfo,
    WorkflowRun,
    WorkflowRuntime,
    WorkflowStateMachine,
)
from raftoral_lab.workflow.state_machine import DEFAULT_RETAIN_FINISHED, WorkflowStatus

FORWARD_TIMEOUT = 3.0
"""Seconds one member of a cluster has to answer a forwarded request before the next is tried."""


class RemoteRun:
    """A workflow that runs in an execution cluster this node is not a member of: its result
    is asked of that cluster's members (the value is its JSON form unless the app here knows
    the workflow's output type)."""

    def __init__(self, runtime: ScaledRuntime, workflow_id: str, name: str, version: int) -> None:
        self.runtime = runtime
        self.workflow_id = workflow_id
        self.name = name
        self.version = version
        cluster = workflow_cluster(workflow_id)
        assert cluster is not None
        self.cluster = cluster

    async def result(self, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait = 5.0 if deadline is None else max(0.0, min(5.0, deadline - loop.time()))
            answer = await self.runtime.serve(
                "workflow.result", {"workflow_id": self.workflow_id, "wait": wait}
            )
            status = answer.get("status")
            if status == WorkflowStatus.COMPLETED.value:
                app = self.runtime.app
                if (self.name, self.version) in app:
                    return app.get(self.name, self.version).output_from_json(answer.get("result"))
                return answer.get("result")
            if status == WorkflowStatus.FAILED.value:
                error = answer.get("error") or {}
                raise WorkflowFailed(
                    self.workflow_id, str(error.get("type")), str(error.get("message"))
                )
            if status == WorkflowStatus.CANCELLED.value:
                raise WorkflowCancelled(self.workflow_id)
            if _refused(answer) and answer["error"] not in ("WorkflowTimeout", "ProposalTimeout"):
                raise _remote_error(answer, self.workflow_id)
            if deadline is not None and loop.time() >= deadline:
                raise WorkflowTimeout(
                    f"workflow {self.workflow_id!r} did not end within {timeout:g} s "
                    f"(asked execution cluster {self.cluster} from node {self.runtime.id})"
                )

    def __repr__(self) -> str:
        return f"RemoteRun({self.workflow_id!r}, {self.name!r} v{self.version})"


class ScaledRuntime:
    """Runs `app` on `node` as one member of a management group and of execution clusters."""

    RPC_OPS = WorkflowRuntime.RPC_OPS

    def __init__(
        self,
        node: Node,
        app: WorkflowApp,
        *,
        policy: ClusterPolicy | None = None,
        placement: WorkflowPlacement | None = None,
        storage_for: Callable[[int], Storage] | None = None,
        forget_storage: Callable[[int], None] | None = None,
        retain_finished: int = DEFAULT_RETAIN_FINISHED,
        propose_timeout: float = 5.0,
    ) -> None:
        """`storage_for(cluster)` gives this node's storage of an execution group (the same
        one again after a restart, so nothing is lost); `forget_storage(cluster)` is called
        once the node left that cluster. By default both live in memory."""
        machine = node.group(0).state_machine
        if not isinstance(machine, ManagementState):
            raise WorkflowError(
                f"node {node.id} applies group 0 to {type(machine).__name__}: a scaled node "
                "needs Node(..., state_machine=ManagementState())"
            )
        self.node = node
        self.app = app
        self.policy = policy or ClusterPolicy()
        self.placement: WorkflowPlacement = placement or RoundRobin()
        self.management = machine
        self.retain_finished = retain_finished
        self.propose_timeout = propose_timeout
        self.runtimes: dict[int, WorkflowRuntime] = {}
        """The workflow runtime of each execution cluster hosted here, by cluster id."""
        self._storage_for = storage_for or (lambda _cluster: MemoryStorage())
        self._forget_storage = forget_storage
        self._liveness = Liveness(node, 0)
        self._live: frozenset[int] = frozenset()
        self._live_since = 0.0
        self._planning = False
        self._changing: set[int] = set()
        self._unwanted_since: dict[int, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped = False
        machine.listener = self._on_plan

    @property
    def id(self) -> int:
        return self.node.id

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the workflow ops on the node's rpc topic and start the management loop."""
        if self._loop_task is not None:
            return
        for op in self.RPC_OPS:
            self.node.rpc_handlers[op] = functools.partial(self.serve, op)
        self._emit_clusters()
        self._loop_task = asyncio.get_running_loop().create_task(
            self._manage(), name=f"node-{self.id}-scale"
        )

    async def stop(self) -> None:
        self._stopped = True
        self.management.listener = None
        tasks = [t for t in [self._loop_task, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(r.stop() for r in self.runtimes.values()), return_exceptions=True)

    # --- looking -------------------------------------------------------------------------------

    def clusters(self) -> dict[int, ExecutionCluster]:
        """The execution clusters as this node's management state has them."""
        return dict(self.management.clusters)

    def cluster_leader(self, cluster: int) -> int | None:
        """The leader of an execution cluster this node hosts (None if unknown or not here)."""
        group = self.node.groups.get(cluster)
        return group.raft.leader if group is not None else None

    def ready(self) -> bool:
        """Whether every cluster this node should host is hosted, has a leader and knows this
        node's workflow versions."""
        mine = self.management.member_of(self.id)
        return bool(self.management.clusters) and all(
            c in self.runtimes
            and self.runtimes[c].registered
            and self.node.group(c).raft.leader is not None
            for c in mine
        )

    # --- what users call -----------------------------------------------------------------------

    async def start_workflow(
        self,
        name: str,
        version: int,
        input: Any = None,
        *,
        workflow_id: str | None = None,
        timeout: float = 10.0,
    ) -> WorkflowRun | RemoteRun:
        """Start (name, version) in the execution cluster the placement picks (or that
        `workflow_id` names: `e{cluster}-...`); forwarded when this node is not a member.
        An id without a cluster gets one from a hash of the id, so starting it again (while
        the clusters are the same) finds the same run."""
        cluster, workflow_id = self._place(name, version, workflow_id)
        local = self.runtimes.get(cluster)
        if local is not None:
            return await local.start_workflow(
                name, version, input, workflow_id=workflow_id, timeout=timeout
            )
        payload = self.app.input_json(name, version, input)
        fields = {
            "name": name,
            "version": version,
            "input": payload,
            "workflow_id": workflow_id,
            "cluster": cluster,
        }
        answer = await self._forward(cluster, "workflow.start", fields, timeout=timeout)
        if _refused(answer):
            raise _remote_error(answer, workflow_id)
        return RemoteRun(self, str(answer["workflow_id"]), name, version)

    async def result(self, workflow_id: str, timeout: float | None = None) -> Any:
        """The outcome of any workflow of the cluster, from this node."""
        return await self.get_run(workflow_id).result(timeout)

    def get_run(self, workflow_id: str) -> WorkflowRun | RemoteRun:
        """A handle on a workflow: local when this node runs its cluster, remote otherwise
        (a remote handle is made without asking; its `result` asks)."""
        cluster = self._cluster_of(workflow_id)
        local = self.runtimes.get(cluster)
        if local is not None:
            return local.get_run(workflow_id)
        return RemoteRun(self, workflow_id, "", 0)

    async def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        answer = await self.serve("workflow.get", {"workflow_id": workflow_id})
        if _refused(answer):
            raise _remote_error(answer, workflow_id)
        return WorkflowInfo.from_json(answer)

    async def list_workflows(self) -> list[WorkflowInfo]:
        """Every workflow of every execution cluster (each asked once)."""
        answer = await self.serve("workflow.list", {})
        return [WorkflowInfo.from_json(item) for item in answer.get("workflows", [])]

    async def cancel(self, workflow_id: str, *, timeout: float = 10.0) -> bool:
        answer = await self.serve("workflow.cancel", {"workflow_id": workflow_id})
        if _refused(answer):
            raise _remote_error(answer, workflow_id)
        return bool(answer.get("cancelled"))

    # --- requests ------------------------------------------------------------------------------

    async def serve(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Answer a workflow op with JSON, here or through a member of the right cluster.
        A request that names its `cluster` was forwarded already: it is served here or
        refused (`not_member`), never forwarded again."""
        try:
            forwarded = fields.get("cluster")
            if op == "workflow.list":
                return await self._list(forwarded)
            if op == "workflow.start" and forwarded is None:
                cluster, workflow_id = self._place(
                    str(fields["name"]), int(fields["version"]), fields.get("workflow_id")
                )
                fields = fields | {"workflow_id": workflow_id}
            elif forwarded is not None:
                cluster = int(forwarded)
            else:
                cluster = self._cluster_of(str(fields["workflow_id"]))
            local = self.runtimes.get(cluster)
            if local is not None:
                inner = {k: v for k, v in fields.items() if k != "cluster"}
                return await local.serve(op, inner)
            if forwarded is not None:
                return {
                    "error": "not_member",
                    "message": f"node {self.id} is not a member of execution cluster {cluster}",
                }
            wait = fields.get("wait")
            timeout = FORWARD_TIMEOUT + (float(wait) if wait is not None else 0.0)
            return await self._forward(cluster, op, fields | {"cluster": cluster}, timeout=timeout)
        except RaftoralError as error:
            return {"error": type(error).__name__, "message": str(error)}
        except (KeyError, TypeError, ValueError) as error:
            return {"error": "bad_request", "message": f"{op}: {error!r}"}

    def _place(self, name: str, version: int, workflow_id: str | None) -> tuple[int, str]:
        clusters = sorted(self.management.clusters)
        if workflow_id is not None:
            if not isinstance(workflow_id, str) or not workflow_id:
                raise WorkflowError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
            named = workflow_cluster(workflow_id)
            if named is not None:
                if named not in self.management.clusters:
                    raise WorkflowError(
                        f"workflow id {workflow_id!r} names execution cluster {named}, which "
                        f"does not exist (clusters: {clusters}); leave out the e{named}- prefix"
                    )
                return named, workflow_id
            if not clusters:
                raise WorkflowError("no execution cluster has formed yet; wait_for_clusters()")
            chosen = clusters[zlib.crc32(workflow_id.encode()) % len(clusters)]
            return chosen, workflow_id_in(chosen, workflow_id)
        if not clusters:
            raise WorkflowError("no execution cluster has formed yet; wait_for_clusters()")
        chosen = self.placement.choose(clusters, name, version)
        if chosen not in self.management.clusters:
            raise WorkflowError(f"the placement chose cluster {chosen}, which does not exist")
        return chosen, workflow_id_in(chosen, uuid.uuid4().hex)

    def _cluster_of(self, workflow_id: str) -> int:
        cluster = workflow_cluster(workflow_id)
        if cluster is None:
            raise WorkflowNotFound(workflow_id)
        return cluster

    async def _list(self, forwarded: object) -> dict[str, Any]:
        if forwarded is not None:
            local = self.runtimes.get(int(str(forwarded)))
            if local is None:
                return {"error": "not_member", "message": f"node {self.id} lacks {forwarded}"}
            return await local.serve("workflow.list", {})
        found: list[dict[str, Any]] = []
        for cluster in sorted(self.management.clusters):
            local = self.runtimes.get(cluster)
            if local is not None:
                answer = await local.serve("workflow.list", {})
            else:
                answer = await self._forward(
                    cluster, "workflow.list", {"cluster": cluster}, timeout=FORWARD_TIMEOUT
                )
            found.extend(answer.get("workflows", []))
        return {"workflows": found}

    async def _forward(
        self, cluster: int, op: str, fields: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """Ask the members of `cluster` in turn (live ones first) until one serves `op`."""
        target = self.management.clusters.get(cluster)
        if target is None:
            return {"error": "WorkflowNotFound", "message": f"no execution cluster {cluster}"}
        live = set(self.management.live)
        members = sorted(target.members, key=lambda m: (m not in live, m))
        last = f"no member of execution cluster {cluster} answered"
        for member in members:
            self.node.emit(cluster, "proposal_forwarded", {"to": member, "size": 0})
            try:
                reply = await self.node.rpc.call(member, op, timeout=timeout, **fields)
            except TimeoutError:
                last = f"member {member} of execution cluster {cluster} did not answer"
                continue
            except NodeError as error:
                return {"error": "NodeError", "message": str(error)}
            result = reply.get("result")
            if reply.get("ok") and isinstance(result, dict):
                if result.get("error") == "not_member":
                    last = str(result.get("message"))
                    continue
                return result
            last = f"member {member} refused {op}: {reply.get('message')}"
        return {"error": "ProposalTimeout", "message": last}

    # --- the management loop -------------------------------------------------------------------

    async def _manage(self) -> None:
        while not self._stopped and self.node.running:
            await asyncio.sleep(self.node.tick_seconds)
            try:
                self._host_clusters()
                now = time.monotonic()
                if self._leads(0):
                    self._plan(now)
                for cluster in list(self.runtimes):
                    if self._leads(cluster):
                        self._steer_membership(cluster)
            except RaftoralError:
                continue  # a group went away meanwhile: look again next tick

    def _leads(self, group: int) -> bool:
        """Leader of `group` with an entry of its own term applied (its state is current)."""
        hosted = self.node.groups.get(group)
        if hosted is None:
            return False
        raft = hosted.raft
        return raft.role is Role.LEADER and raft.log.term(raft.applied_index) == raft.term

    def _host_clusters(self) -> None:
        """Host what the plan gives this node; let go of what its group's log took away."""
        wanted = {c.id: c for c in self.management.clusters.values() if self.id in c.members}
        for cluster in wanted.values():
            if cluster.id not in self.runtimes:
                self._host(cluster)
        now = time.monotonic()
        grace = 8 * self.node.config.election_timeout * self.node.tick_seconds
        for cluster_id in [c for c in self.runtimes if c not in wanted]:
            raft = self.node.group(cluster_id).raft
            since = self._unwanted_since.setdefault(cluster_id, now)
            if self.id not in raft.conf.members or (
                raft.role is not Role.LEADER and now - since > grace
            ):
                self._spawn(self._leave(cluster_id))
        for cluster_id in list(self._unwanted_since):
            if cluster_id in wanted:
                del self._unwanted_since[cluster_id]

    def _host(self, cluster: ExecutionCluster) -> None:
        storage = self._storage_for(cluster.id)
        founder = self.id in cluster.founders and storage.load().snapshot is None
        self.node.add_group(
            cluster.id,
            WorkflowStateMachine(retain_finished=self.retain_finished),
            storage,
            voters=list(cluster.founders) if founder else None,
        )
        runtime = WorkflowRuntime(
            self.node,
            self.app,
            group=cluster.id,
            propose_timeout=self.propose_timeout,
            abort_on_removal=False,  # `_host_clusters` decides when this node lets go
        )
        self.runtimes[cluster.id] = runtime
        self._spawn(runtime.start(wait=False))

    async def _leave(self, cluster_id: int) -> None:
        runtime = self.runtimes.pop(cluster_id, None)
        self._unwanted_since.pop(cluster_id, None)
        if runtime is None:
            return
        await runtime.stop()
        hosted = self.node.groups.get(cluster_id)
        self.node.remove_group(cluster_id)
        close = getattr(hosted.storage, "close", None) if hosted is not None else None
        if close is not None:
            close()
        if self._forget_storage is not None:
            self._forget_storage(cluster_id)

    def _plan(self, now: float) -> None:
        """As management leader: propose the policy's clusters when they differ."""
        self._liveness.sample(now)
        members = self.node.group(0).raft.conf.members
        live = frozenset(n for n in members if self._liveness.alive(n, now))
        if live != self._live:
            self._live, self._live_since = live, now
        settled = live == members or now - self._live_since >= self._liveness.grace
        if self._planning or not settled:
            return
        management = self.management
        clusters = self.policy.plan(management.clusters, live, management.next_cluster)
        if clusters == management.clusters and tuple(sorted(live)) == management.live:
            return
        plan = Plan(management.version, tuple(clusters[c] for c in sorted(clusters)), tuple(live))
        self._planning = True
        self._spawn(self._propose_plan(plan))

    async def _propose_plan(self, plan: Plan) -> None:
        try:
            await self.node.propose(plan.encode(), group=0, timeout=self.propose_timeout)
        except RaftoralError:
            pass  # planned again next tick
        finally:
            self._planning = False

    def _steer_membership(self, cluster_id: int) -> None:
        """As leader of an execution group: one step of its membership towards the plan."""
        cluster = self.management.clusters.get(cluster_id)
        if cluster is None or cluster_id in self._changing:
            return
        conf = self.node.group(cluster_id).raft.conf
        wanted = set(cluster.members)
        joining = sorted(wanted - conf.members)
        leaving = sorted(conf.members - wanted, key=lambda n: (n == self.id, n))
        if joining:
            change = ConfChange(ConfChangeOp.ADD_LEARNER, joining[0])
        elif leaving:
            change = ConfChange(ConfChangeOp.REMOVE, leaving[0])
        else:
            return
        self._changing.add(cluster_id)
        self._spawn(self._change(cluster_id, change))

    async def _change(self, cluster_id: int, change: ConfChange) -> None:
        try:
            await self.node.change_membership(
                change, group=cluster_id, timeout=self.propose_timeout
            )
        except RaftoralError:
            pass  # tried again next tick
        finally:
            self._changing.discard(cluster_id)

    def _on_plan(self, state: ManagementState) -> None:
        self._emit_clusters()

    def _emit_clusters(self) -> None:
        management = self.management
        self.node.emit(
            0,
            "clusters_planned",
            {
                "version": management.version,
                "cluster_ids": sorted(management.clusters),
                "clusters": [
                    list(management.clusters[c].members) for c in sorted(management.clusters)
                ],
                "live": list(management.live),
            },
        )

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _refused(answer: dict[str, Any]) -> bool:
    """An op's answer is a refusal when its `error` is a name (a failed workflow's `error`
    is the workflow's own error object, and a WorkflowInfo's is None)."""
    return isinstance(answer.get("error"), str)


def _remote_error(answer: dict[str, Any], workflow_id: str) -> WorkflowError:
    kind, message = answer.get("error"), str(answer.get("message"))
    if kind == "WorkflowNotFound":
        return WorkflowNotFound(workflow_id)
    return WorkflowError(f"{kind}: {message}")
