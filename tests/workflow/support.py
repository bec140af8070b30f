"""A small in-process cluster for the workflow tests: N Nodes on a MemoryNetwork, each with a
WorkflowStateMachine and a WorkflowRuntime (the Lab does the same; these tests need only this).

Nothing here sleeps for a fixed time to let something happen: waits poll a condition until a
deadline, and a missed deadline fails with what was last seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from raftoral_lab.core import ConfChange, ConfChangeOp, RaftConfig, Role
from raftoral_lab.events import EventBase
from raftoral_lab.node import Node
from raftoral_lab.storage import MemoryStorage
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.workflow import (
    WorkflowApp,
    WorkflowContext,
    WorkflowRun,
    WorkflowRuntime,
    WorkflowStateMachine,
)

T = TypeVar("T")

TICK = 0.01
TIMEOUT = 20.0
"""Deadline of every wait: generous, since a loaded CI machine may be slow (never asserted)."""


async def wait_until(
    condition: Callable[[], T | Awaitable[T | None] | None],
    *,
    what: str,
    timeout: float = TIMEOUT,
    interval: float = TICK,
    detail: Callable[[], object] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        last = result
        if result:
            return result
        if time.monotonic() > deadline:
            shown = detail() if detail is not None else last
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; saw {shown}")
        await asyncio.sleep(interval)


class WorkflowCluster:
    """`apps` gives a node its own app (to test versions and divergence); others get `app`."""

    def __init__(
        self,
        size: int = 3,
        app: WorkflowApp | None = None,
        *,
        apps: Mapping[int, WorkflowApp] | None = None,
        compact_every: int | None = None,
        retain_finished: int = 1000,
        config: RaftConfig | None = None,
    ) -> None:
        self.size = size
        self.app = app or WorkflowApp()
        self.apps = dict(apps or {})
        self.compact_every = compact_every
        self.retain_finished = retain_finished
        self.config = config or RaftConfig()
        self.network = MemoryNetwork()
        self.nodes: dict[int, Node] = {}
        self.runtimes: dict[int, WorkflowRuntime] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.events: list[EventBase] = []

    async def start(self) -> None:
        voters = list(range(1, self.size + 1))
        await asyncio.gather(*(self._start_node(n, voters) for n in voters))
        await self.wait_for_leader()
        await asyncio.gather(*(rt.start() for rt in self.runtimes.values()))

    async def close(self) -> None:
        for node_id in list(self.nodes):
            await self.runtimes[node_id].stop()
            await self.nodes[node_id].stop()

    async def __aenter__(self) -> WorkflowCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start_node(self, node_id: int, voters: list[int] | None) -> None:
        storage = self.storages.setdefault(node_id, MemoryStorage())
        node = Node(
            node_id,
            self.network.transport(node_id),
            voters=voters,
            storage=storage,
            state_machine=WorkflowStateMachine(retain_finished=self.retain_finished),
            config=self.config,
            tick_seconds=TICK,
            compact_every=self.compact_every,
            on_event=self.events.append,
        )
        self.nodes[node_id] = node
        self.runtimes[node_id] = WorkflowRuntime(node, self.apps.get(node_id, self.app))
        await node.start()

    # --- looking ---------------------------------------------------------------------------

    def alive(self) -> list[int]:
        return sorted(n for n, node in self.nodes.items() if node.running)

    @property
    def leader_id(self) -> int | None:
        leaders = [
            (node.status().term, n)
            for n, node in self.nodes.items()
            if node.running and node.status().role is Role.LEADER
        ]
        if not leaders:
            return None
        top = max(term for term, _ in leaders)
        at_top = [n for term, n in leaders if term == top]
        return at_top[0] if len(at_top) == 1 else None

    async def wait_for_leader(self, *, exclude: Iterable[int] = ()) -> int:
        excluded = set(exclude)

        def found() -> int | None:
            leader = self.leader_id
            return leader if leader is not None and leader not in excluded else None

        return await wait_until(found, what=f"a leader other than {sorted(excluded)}")

    def run(self, node_id: int, workflow_id: str) -> WorkflowRun:
        return self.runtimes[node_id].get_run(workflow_id)

    def runs_consumed(self, node_id: int, workflow_id: str) -> int:
        """How far node `node_id`'s run has consumed the queue (0 before it knows the run)."""
        try:
            return self.runtimes[node_id].get_run(workflow_id).consumed
        except LookupError:
            return 0

    def events_of(self, kind: str, **fields: Any) -> list[EventBase]:
        return [
            e
            for e in self.events
            if e.kind == kind and all(getattr(e, k, None) == v for k, v in fields.items())
        ]

    # --- faults ----------------------------------------------------------------------------

    async def kill(self, node_id: int) -> None:
        """A crash: the node and its runtime stop at once; the storage survives."""
        await self.nodes[node_id].stop(crash=True)
        await self.runtimes[node_id].stop()

    async def restart(self, node_id: int, app: WorkflowApp | None = None) -> None:
        if app is not None:
            self.apps[node_id] = app
        await self._start_node(node_id, voters=None)
        await self.runtimes[node_id].start()

    async def join(self, app: WorkflowApp | None = None) -> int:
        """A brand-new node: added as a learner through the leader, then started empty."""
        node_id = max(self.nodes) + 1
        if app is not None:
            self.apps[node_id] = app
        leader = await self.wait_for_leader()
        await self.nodes[leader].change_membership(ConfChange(ConfChangeOp.ADD_LEARNER, node_id))
        await self._start_node(node_id, voters=None)
        await self.runtimes[node_id].start()
        return node_id

    async def remove(self, node_id: int) -> None:
        via = next(n for n in self.alive() if n != node_id)
        await self.nodes[via].change_membership(ConfChange(ConfChangeOp.REMOVE, node_id))

    async def transfer_leader(self, to: int) -> int:
        leader = await self.wait_for_leader()
        if leader != to:
            self.nodes[leader].group().raft.transfer_leader(to)
            await wait_until(lambda: self.leader_id == to, what=f"node {to} to lead")
        return to


# --- a workflow for fault tests -----------------------------------------------------------

STEPS = 20
EXPECTED = sum(i * i for i in range(STEPS))


def steps_app(calls: Counter[tuple[int, int]], halfway: asyncio.Event) -> WorkflowApp:
    """STEPS computed squares added up; every node waits at the halfway point for the test."""
    app = WorkflowApp()

    @app.workflow("steps")
    async def steps(ctx: WorkflowContext, n: int) -> int:
        total = await ctx.checkpoint("total", 0)
        for i in range(n):
            if i == n // 2:
                await halfway.wait()

            def square(i: int = i) -> int:
                calls[(ctx.node_id, i)] += 1
                return i * i

            value = await ctx.checkpoint_compute(f"square-{i}", square)
            await total.update(lambda t, value=value: t + value)  # type: ignore[misc]
        return total.value

    return app


HALFWAY_OPS = 1 + 2 * (STEPS // 2)


async def start_and_reach_halfway(cluster: WorkflowCluster, workflow_id: str) -> int:
    """Start the run from node 2, wait until every node waits at halfway; the owner's id."""
    await cluster.runtimes[2].start_workflow("steps", 1, STEPS, workflow_id=workflow_id)
    await wait_until(
        lambda: all(cluster.run(n, workflow_id).consumed == HALFWAY_OPS for n in cluster.alive()),
        what="every node at halfway",
        detail=lambda: {n: cluster.run(n, workflow_id).consumed for n in cluster.alive()},
    )
    owner = cluster.runtimes[2].get_workflow(workflow_id).owner
    assert owner is not None and owner == cluster.leader_id
    return owner


def per_step(calls: Counter[tuple[int, int]]) -> Counter[int]:
    return Counter(step for (_, step), n in calls.items() for _ in range(n))


async def finish_on(cluster: WorkflowCluster, nodes: list[int], workflow_id: str) -> None:
    for node in nodes:
        assert await cluster.run(node, workflow_id).result(TIMEOUT) == EXPECTED, f"node {node}"


# --- the Lab subset the examples use -------------------------------------------------------
