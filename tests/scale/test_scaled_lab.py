"""Issue 9 end to end: a management group and execution clusters, in one process.

- 15 nodes form three execution clusters; 300 workflows spread over them and all complete,
  even with a node of every cluster (its leader) killed while they run;
- a workflow started on a node outside its cluster is reachable from every node;
- the replication count: entries sent per checkpoint, one 15-node group against three
  5-node execution clusters.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

from raftoral_lab import Lab, WorkflowApp, WorkflowContext
from raftoral_lab.samples import app as sample_app
from raftoral_lab.samples import expected_ten_steps
from raftoral_lab.scale import workflow_cluster

TICK = 0.02
app = WorkflowApp()


async def _add_slowly(total: int, x: int) -> int:
    await asyncio.sleep(0.03)  # long enough for the kills to land mid-run
    return total + x


@app.workflow("slow_sum", version=1)
async def slow_sum(ctx: WorkflowContext, n: int) -> int:
    total = 0
    for i in range(5):
        total = await ctx.checkpoint_compute(
            f"add-{i}", functools.partial(_add_slowly, total, n + i)
        )
    return total


def scaled_lab(workflows: WorkflowApp = app, nodes: int = 15) -> Lab:
    return Lab(
        nodes=nodes, execution_cluster_size=5, app=workflows, broker="memory", tick_seconds=TICK
    )


async def test_fifteen_nodes_form_three_clusters_and_survive_a_kill_in_each() -> None:
    async with scaled_lab() as lab:
        await lab.wait_for_leader()
        await lab.wait_for_clusters(count=3)
        clusters = lab.clusters()
        assert sorted(len(c.members) for c in clusters.values()) == [5, 5, 5]
        every = [m for c in clusters.values() for m in c.members]
        assert sorted(every) == list(range(1, 16)), "each node in exactly one cluster"
        management = lab.node(lab.leader_id or 1).status()
        assert len(management.voters) == 5 and len(management.learners) == 10

        starters = list(range(1, 16))
        runs = await asyncio.gather(
            *(lab.start_workflow("slow_sum", 1, n, node=starters[n % 15]) for n in range(300))
        )
        ids = {run.workflow_id: n for n, run in enumerate(runs)}
        spread = Counter(workflow_cluster(w) for w in ids)
        assert spread == {1: 100, 2: 100, 3: 100}, spread

        killed = [lab.cluster_leader(c) for c in sorted(clusters)]
        assert None not in killed
        for node in killed:
            assert node is not None
            await lab.kill(node)
        survivor = next(n for n in lab.alive() if n not in killed)
        watcher = lab.scaled_runtime(survivor)
        results = await asyncio.gather(
            *(watcher.result(w, timeout=120) for w in ids), return_exceptions=True
        )
        wrong = {
            w: got for (w, n), got in zip(ids.items(), results, strict=True) if got != 5 * n + 10
        }
        assert not wrong, (
            f"{len(wrong)} workflows did not complete right, e.g. {list(wrong.items())[:3]}"
        )

        # every workflow ended once: one completion per id in each cluster's state
        infos = lab.list_workflows()
        assert len(infos) == 300 and all(i.status.value == "completed" for i in infos)

        # the dead are replaced: every cluster gets back to five live members
        async def replaced() -> None:
            while True:
                now = lab.clusters()
                if all(
                    len(c.members) == 5 and not set(c.members) & set(killed) for c in now.values()
                ):
                    return
                await asyncio.sleep(TICK * 5)

        await asyncio.wait_for(replaced(), 30)


async def test_a_workflow_started_outside_its_cluster_is_reachable_from_every_node() -> None:
    async with scaled_lab(sample_app) as lab:
        await lab.wait_for_leader()
        await lab.wait_for_clusters(count=3)
        members = set(lab.clusters()[2].members)
        outsider = min(n for n in lab.alive() if n not in members)
        run = await lab.start_workflow("ten_steps", 1, 7, node=outsider, workflow_id="e2-far")
        assert type(run).__name__ == "RemoteRun"
        assert await run.result(timeout=30) == expected_ten_steps(7)
        for node in lab.alive():
            scaled = lab.scaled_runtime(node)
            assert await scaled.result("e2-far", timeout=30) == expected_ten_steps(7)
            info = await scaled.get_workflow("e2-far")
            assert info.status.value == "completed" and info.checkpoint_count == 10, (node, info)
        # an id without a cluster gets one (from a hash: the same again), and cancel forwards
        first = await lab.start_workflow("ten_steps", 1, 1, node=outsider, workflow_id="mine")
        again = await lab.start_workflow("ten_steps", 1, 1, node=outsider, workflow_id="mine")
        assert first.workflow_id == again.workflow_id and first.workflow_id.endswith("-mine")
        listed = await lab.scaled_runtime(outsider).list_workflows()
        assert {"e2-far", first.workflow_id} <= {i.workflow_id for i in listed}
        assert await lab.scaled_runtime(outsider).cancel("e2-far") is False  # it had ended


async def _entries_per_checkpoint(lab: Lab, workflows: int) -> tuple[float, Counter[int]]:
    """Log entries sent by every node, per checkpoint, while `workflows` ten_steps run."""
    before = Counter[int]()
    for node in lab.nodes.values():
        before.update(node.transport.stats.entries_by_group)
    runs = [await lab.start_workflow("ten_steps", 1, n) for n in range(workflows)]
    for run in runs:
        assert await run.result(timeout=60) == expected_ten_steps(runs.index(run))
    await asyncio.sleep(TICK * 20)  # the last commits reach the followers
    after = Counter[int]()
    for node in lab.nodes.values():
        after.update(node.transport.stats.entries_by_group)
    sent = after - before
    return sum(sent.values()) / (workflows * 10), sent


async def test_each_checkpoint_is_replicated_inside_one_execution_cluster_only() -> None:
    workflows = 30
    async with Lab(nodes=15, app=sample_app, broker="memory", tick_seconds=TICK) as one_group:
        await one_group.wait_for_leader()
        await asyncio.sleep(TICK * 20)
        single, _ = await _entries_per_checkpoint(one_group, workflows)
    async with scaled_lab(sample_app) as lab:
        await lab.wait_for_leader()
        await lab.wait_for_clusters(count=3)
        scaled, by_group = await _entries_per_checkpoint(lab, workflows)
    print(
        f"entries sent per checkpoint: one 15-node group {single:.1f}, "
        f"three 5-node clusters {scaled:.1f} (by group {dict(by_group)})"
    )
    # one group sends each entry to 14 followers, a cluster to 4: the seed's claim is that
    # ratio (4/14); allow for retransmissions and the start/end entries around checkpoints
    assert single >= 14
    assert scaled <= single * 4 / 14 * 1.3, (single, scaled)
    assert by_group[0] == 0, "the management group carries nothing per workflow"


async def _until(condition: object, what: str, timeout: float = 30.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(TICK * 5)


async def test_a_killed_node_comes_back_into_its_cluster_and_a_joiner_is_placed() -> None:
    lab = Lab(nodes=6, execution_cluster_size=3, app=sample_app, broker="memory", tick_seconds=TICK)
    async with lab:
        await lab.wait_for_leader()
        await lab.wait_for_clusters(count=2)
        start = {c: x.members for c, x in lab.clusters().items()}
        assert start == {1: (1, 2, 3), 2: (4, 5, 6)}

        await lab.kill(2)
        await _until(
            lambda: 2 not in lab.clusters()[1].members and len(lab.clusters()[1].members) == 3,
            "node 2 to be replaced in cluster 1",
        )
        run = await lab.start_workflow("ten_steps", 1, 4, workflow_id="e1-while-down")
        assert await run.result(timeout=30) == expected_ten_steps(4)

        await lab.restart(2)
        await _until(
            lambda: {c: x.members for c, x in lab.clusters().items()} == start,
            "node 2 back in cluster 1, and the sharing over",
        )
        await lab.wait_for_clusters(count=2)
        # node 2 left cluster 1 and came back as a new member: it caught up on the workflow
        caught_up = await lab.scaled_runtime(2).result("e1-while-down", timeout=30)
        assert caught_up == expected_ten_steps(4)

        joiner = await lab.join()
        await _until(
            lambda: any(joiner in x.members for x in lab.clusters().values()),
            f"joiner {joiner} to be placed",
        )
        await lab.wait_for_clusters(count=2)
        status = lab.node(lab.leader_id or 1).status()
        assert joiner in status.learners and len(status.voters) == 5, "management stays small"
        run = await lab.start_workflow("ten_steps", 1, 9, node=joiner)
        assert await run.result(timeout=30) == expected_ten_steps(9)
