"""A late observer learns the workflows that run: an observer that connects after they started
asks the nodes to announce, and each node's workflow runtime reports its running workflows
(name, version, owner, committed checkpoints, its own progress and sleep). The remote picture of
each workflow is then the one the in-process view drew from the start."""

from __future__ import annotations

import asyncio
from typing import Any

from raftoral_lab import Lab, WorkflowApp, WorkflowContext
from raftoral_lab.events import ClusterView
from raftoral_lab.node.observer import RemoteObserver
from raftoral_lab.transport.mqtt import MqttTransport

from .test_remote import OBSERVER_ID, wait_until

FIELDS = ("name", "version", "owner", "epoch", "status", "checkpoints", "nodes")
"""What is compared: all of a workflow's entry but its start time (an announce is later)."""


def make_app(gate: asyncio.Event) -> WorkflowApp:
    app = WorkflowApp()

    @app.workflow("sleeper", version=2)
    async def sleeper(ctx: WorkflowContext, n: int) -> int:
        doubled = await ctx.checkpoint_compute("double", lambda: n * 2)
        await ctx.checkpoint("note", "halfway")
        await ctx.sleep(3600)  # a durable timer: the run stays "sleeping" for the test
        return doubled

    @app.workflow("gated", version=1)
    async def gated(ctx: WorkflowContext, n: int) -> int:
        first = await ctx.checkpoint_compute("first", lambda: n + 1)

        async def wait() -> bool:
            return await gate.wait()

        await ctx.checkpoint_compute("wait", wait)  # the owner computes until the gate opens
        return first

    return app


def picture(view: ClusterView, workflow_id: str) -> dict[str, Any] | None:
    state = view.workflows.get(workflow_id)
    if state is None:
        return None
    snapshot = state.snapshot()
    return {field: snapshot[field] for field in FIELDS}


async def test_a_late_observer_sees_running_workflows_as_the_live_view_does() -> None:
    gate = asyncio.Event()
    async with Lab(nodes=3, app=make_app(gate)) as lab:
        sleeper = await lab.start_workflow("sleeper", 2, 5)
        gated = await lab.start_workflow("gated", 1, 1)
        ids = (sleeper.workflow_id, gated.workflow_id)

        def settled() -> bool:
            """Every node has the committed values and took them (an owner that ran ahead of
            its commits reports them consumed only at its next operation); the sleeper sleeps."""
            live = ClusterView(lab.events)
            for workflow_id, count in zip(ids, (3, 1), strict=True):
                seen = picture(live, workflow_id)
                if seen is None or len(seen["checkpoints"]) != count or len(seen["nodes"]) != 3:
                    return False
                for node, run in seen["nodes"].items():
                    if len(run["committed"]) != count:
                        return False
                    if node != seen["owner"] and len(run["consumed"]) != count:
                        return False
            sleeping = picture(live, ids[0])
            assert sleeping is not None
            return all(run["status"] == "sleeping" for run in sleeping["nodes"].values())

        await wait_until(
            settled,
            timeout=20,
            what="both workflows to settle",
            detail=lambda: [picture(ClusterView(lab.events), i) for i in ids],
        )
        transport = MqttTransport(OBSERVER_ID, lab.cluster, lab.url, presence=False)
        async with RemoteObserver(transport) as observer:

            def same() -> bool:
                live = ClusterView(lab.events)
                return all(picture(observer.view, i) == picture(live, i) for i in ids)

            await wait_until(
                same,
                timeout=20,
                what="the late observer's workflows to match the live ones",
                detail=lambda: [
                    (picture(observer.view, i), picture(ClusterView(lab.events), i)) for i in ids
                ],
            )
            assert observer.announces == 3
        live = ClusterView(lab.events)
        sleeping = picture(live, sleeper.workflow_id)
        assert sleeping is not None
        assert (sleeping["name"], sleeping["version"], sleeping["status"]) == (
            "sleeper",
            2,
            "sleeping",
        )
        waiting = picture(live, gated.workflow_id)
        assert waiting is not None and waiting["status"] == "running"
        assert waiting["owner"] == lab.leader_id
        gate.set()
        assert await gated.result(timeout=20) == 2
