"""Owner failover: killed, partitioned away, removed, or no longer the leader. The run goes on
on another node from the committed values; side effects run at least once, at most once more
per failover that falls inside them."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from raftoral_lab.errors import WorkflowAborted
from raftoral_lab.workflow import WorkflowApp, WorkflowContext

from .conftest import ClusterFactory
from .support import (
    STEPS,
    TIMEOUT,
    finish_on,
    per_step,
    start_and_reach_halfway,
    steps_app,
    wait_until,
)


async def test_owner_killed_between_steps(make_cluster: ClusterFactory) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    cluster = await make_cluster(3, steps_app(calls, halfway))
    owner = await start_and_reach_halfway(cluster, "k")
    await cluster.kill(owner)
    new_leader = await cluster.wait_for_leader(exclude={owner})
    halfway.set()
    survivors = [n for n in (1, 2, 3) if n != owner]
    await finish_on(cluster, survivors, "k")
    info = cluster.runtimes[new_leader].get_workflow("k")
    assert (info.owner, info.epoch) == (new_leader, 2)
    assert per_step(calls) == Counter(range(STEPS)), "no step computed twice"
    assert {node for node, step in calls if step >= STEPS // 2} == {new_leader}

    # the killed node comes back, runs from the committed values and computes nothing
    before = sum(calls.values())
    await cluster.restart(owner)
    await finish_on(cluster, [owner], "k")
    assert sum(calls.values()) == before


@pytest.mark.parametrize("kill_inside", [True, False], ids=["inside-compute", "after-commit"])
async def test_side_effect_runs_at_most_twice_and_only_when_failover_falls_inside(
    make_cluster: ClusterFactory, kill_inside: bool
) -> None:
    app = WorkflowApp()
    calls: Counter[int] = Counter()
    release_charge = asyncio.Event()
    after_charge = asyncio.Event()

    async def charge(node: int) -> str:
        calls[node] += 1  # the side effect
        await release_charge.wait()
        return "charged"

    @app.workflow("pay")
    async def pay(ctx: WorkflowContext) -> str:
        await ctx.checkpoint("begin", 1)
        receipt = await ctx.checkpoint_compute("charge", lambda: charge(ctx.node_id))
        await after_charge.wait()  # not a side effect: every node waits here
        status = await ctx.checkpoint("status", "done")
        return f"{receipt}/{status.value}"

    cluster = await make_cluster(3, app)
    await cluster.runtimes[1].start_workflow("pay", 1, workflow_id="p")
    if kill_inside:
        await wait_until(lambda: sum(calls.values()) == 1, what="the owner inside charge")
    else:
        release_charge.set()
        await wait_until(
            lambda: all(cluster.run(n, "p").consumed == 2 for n in (1, 2, 3)),
            what="the charge committed and consumed everywhere",
        )
    owner = cluster.runtimes[1].get_workflow("p").owner
    assert owner is not None
    await cluster.kill(owner)
    new_leader = await cluster.wait_for_leader(exclude={owner})
    if kill_inside:
        await wait_until(lambda: calls[new_leader] == 1, what="the new owner to charge again")
        release_charge.set()
    after_charge.set()
    for node in (n for n in (1, 2, 3) if n != owner):
        assert await cluster.run(node, "p").result(TIMEOUT) == "charged/done"
    if kill_inside:
        assert calls == Counter({owner: 1, new_leader: 1}), "twice: the failover fell inside"
    else:
        assert calls == Counter({owner: 1}), "once: the failover came after the commit"


async def test_owner_partitioned_away(make_cluster: ClusterFactory) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    cluster = await make_cluster(3, steps_app(calls, halfway))
    owner = await start_and_reach_halfway(cluster, "part")
    cluster.network.isolate(owner)
    new_leader = await cluster.wait_for_leader(exclude={owner})
    halfway.set()
    majority = [n for n in (1, 2, 3) if n != owner]
    await finish_on(cluster, majority, "part")
    assert cluster.runtimes[new_leader].get_workflow("part").epoch >= 2
    cluster.network.heal()
    await finish_on(cluster, [owner], "part")  # the old owner catches up; its proposals lost
    assert max(per_step(calls).values()) <= 2 and set(per_step(calls)) == set(range(STEPS))
    late = [s for (n, s) in calls if n == owner and s >= STEPS // 2]
    assert len(late) <= 1, "the cut-off owner computed at most the step it was in"


async def test_owner_removed_from_the_cluster(make_cluster: ClusterFactory) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    cluster = await make_cluster(3, steps_app(calls, halfway))
    owner = await start_and_reach_halfway(cluster, "rm")
    await cluster.remove(owner)
    new_leader = await cluster.wait_for_leader(exclude={owner})
    halfway.set()
    await finish_on(cluster, [n for n in (1, 2, 3) if n != owner], "rm")
    info = cluster.runtimes[new_leader].get_workflow("rm")
    assert info.owner == new_leader and info.owner != owner
    assert per_step(calls) == Counter(range(STEPS))
    with pytest.raises(WorkflowAborted, match="removed"):
        await cluster.run(owner, "rm").result(TIMEOUT)


async def test_leadership_transfer_moves_ownership(make_cluster: ClusterFactory) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    cluster = await make_cluster(3, steps_app(calls, halfway))
    owner = await start_and_reach_halfway(cluster, "tr")
    target = next(n for n in (1, 2, 3) if n != owner)
    await cluster.transfer_leader(target)
    await wait_until(
        lambda: cluster.runtimes[target].get_workflow("tr").owner == target,
        what="the new leader to own the run",
    )
    halfway.set()
    await finish_on(cluster, [1, 2, 3], "tr")
    changes = cluster.events_of("owner_changed", workflow_id="tr", node=target)
    assert [(e.owner, e.epoch) for e in changes] == [(target, 2)]  # type: ignore[attr-defined]
    assert per_step(calls) == Counter(range(STEPS))
    assert {n for n, s in calls if s >= STEPS // 2} == {target}


async def test_a_node_lacking_a_version_never_owns_it(make_cluster: ClusterFactory) -> None:
    ran: Counter[tuple[int, int]] = Counter()

    def build(versions: tuple[int, ...]) -> WorkflowApp:
        app = WorkflowApp()
        for version in versions:

            async def flow(ctx: WorkflowContext, x: int, version: int = version) -> dict[str, int]:
                ran[(ctx.node_id, version)] += 1
                doubled = await ctx.checkpoint_compute("double", lambda: x * 2)
                return {"version": version, "value": doubled}

            app.register("flow", version, flow)
        return app

    cluster = await make_cluster(3, build((1,)), apps={3: build((1, 2))})
    await cluster.transfer_leader(1)
    run = await cluster.runtimes[1].start_workflow("flow", 2, 21, workflow_id="v2")
    assert await run.result(TIMEOUT) == {"version": 2, "value": 42}  # JSON: node 1 lacks v2
    assert await cluster.run(3, "v2").result(TIMEOUT) == {"version": 2, "value": 42}
    assert cluster.runtimes[1].get_workflow("v2").owner == 3
    owners = {e.owner for e in cluster.events_of("owner_changed", workflow_id="v2")}  # type: ignore[attr-defined]
    assert owners == {3}
    assert {node for node, version in ran if version == 2} == {3}

    v1 = await cluster.runtimes[3].start_workflow("flow", 1, 5, workflow_id="v1")
    assert await v1.result(TIMEOUT) == {"version": 1, "value": 10}
    assert cluster.runtimes[3].get_workflow("v1").owner == 1  # the leader has v1: it owns it


async def test_when_the_owner_dies_a_node_lacking_the_version_never_takes_the_run(
    make_cluster: ClusterFactory,
) -> None:
    """Node 1 lacks v2. The owner dies twice: once while node 1 leads (it must hand the run
    to the other capable node), once when node 1 and one capable node are all that is left
    (whoever leads, the capable node owns the run). The run ends right; node 1 never owns it,
    never runs it, never computes a step of it."""
    computed: Counter[tuple[int, str]] = Counter()
    gates = [asyncio.Event(), asyncio.Event()]

    def build(with_v2: bool) -> WorkflowApp:
        app = WorkflowApp()

        @app.workflow("phases", version=1)
        async def v1(ctx: WorkflowContext, n: int) -> int:
            return n

        if with_v2:

            @app.workflow("phases", version=2)
            async def v2(ctx: WorkflowContext, n: int) -> int:
                total = 0
                for phase in range(3):
                    if phase:
                        await gates[phase - 1].wait()
                    for i in range(3):

                        def step(key: str = f"p{phase}-{i}", i: int = i) -> int:
                            computed[(ctx.node_id, key)] += 1
                            return n * i

                        total += await ctx.checkpoint_compute(f"p{phase}-{i}", step)
                return total

        return app

    cluster = await make_cluster(3, build(False), apps={2: build(True), 3: build(True)})
    await cluster.transfer_leader(1)
    await cluster.runtimes[1].start_workflow("phases", 2, 5, workflow_id="lack")
    capable = [2, 3]
    await wait_until(
        lambda: all(cluster.runs_consumed(n, "lack") == 3 for n in capable),
        what="the capable nodes at the first gate",
    )
    first = cluster.runtimes[1].get_workflow("lack").owner
    assert first in capable
    second = next(n for n in capable if n != first)

    # the owner, a follower, dies while the lacking node leads: it hands the run on
    await cluster.kill(first)
    await wait_until(
        lambda: cluster.runtimes[1].get_workflow("lack").owner == second,
        what=f"the leader to move the run to node {second}",
        detail=lambda: cluster.runtimes[1].get_workflow("lack"),
    )
    gates[0].set()
    await wait_until(lambda: cluster.runs_consumed(second, "lack") == 6, what="the second gate")

    # the first owner comes back; the new owner leads, then dies: only 1 and `first` are left
    await cluster.restart(first)
    await wait_until(lambda: cluster.runs_consumed(first, "lack") == 6, what="the restarted run")
    await cluster.transfer_leader(second)
    await cluster.kill(second)
    await cluster.wait_for_leader(exclude={second})
    await wait_until(
        lambda: cluster.runtimes[1].get_workflow("lack").owner == first,
        what=f"the run to move back to node {first}",
        detail=lambda: cluster.runtimes[1].get_workflow("lack"),
    )
    gates[1].set()
    expected = 3 * 5 * (0 + 1 + 2)
    assert await cluster.run(first, "lack").result(TIMEOUT) == expected
    assert await cluster.run(1, "lack").result(TIMEOUT) == expected
    await cluster.restart(second)
    assert await cluster.run(second, "lack").result(TIMEOUT) == expected

    started = cluster.events_of("workflow_started", workflow_id="lack")
    changed = cluster.events_of("owner_changed", workflow_id="lack")
    owners = [e.owner for e in started + changed]  # type: ignore[attr-defined]
    assert 1 not in owners, owners
    assert {e.owner for e in changed} == {first, second}  # type: ignore[attr-defined]
    assert cluster.run(1, "lack").execution is None, "node 1 never ran v2"
    assert {node for node, _ in computed} <= set(capable)
    assert {key for _, key in computed} == {f"p{p}-{i}" for p in range(3) for i in range(3)}


JOB_STEPS = 40
JOB_TOTAL = sum(range(JOB_STEPS))


async def test_many_workflows_survive_two_leader_kills(make_cluster: ClusterFactory) -> None:
    """30 concurrent workflows on 5 nodes while the leader is killed twice: every one ends
    with the right output on every survivor, each ran once, and a step was computed again
    only when a failover could have fallen inside it."""
    app = WorkflowApp()
    computed: Counter[tuple[str, int]] = Counter()
    # every run waits at these steps (no side effect: on every node) until its kill is done
    gates = {10: asyncio.Event(), 20: asyncio.Event()}

    @app.workflow("job")
    async def job(ctx: WorkflowContext, n: int) -> int:
        acc = await ctx.checkpoint("acc", 0)
        for i in range(JOB_STEPS):
            if i in gates:
                await gates[i].wait()

            def step(i: int = i) -> int:
                computed[(ctx.workflow_id, i)] += 1
                return n * i

            value = await ctx.checkpoint_compute(f"step-{i}", step)
            await acc.set(acc.value + value)
        return acc.value

    cluster = await make_cluster(5, app)
    runs = await asyncio.gather(
        *(
            cluster.runtimes[1 + n % 5].start_workflow("job", 1, n, workflow_id=f"job-{n}")
            for n in range(30)
        )
    )
    killed: list[int] = []
    for kill, gate in enumerate(gates.values(), start=1):
        leader = await cluster.wait_for_leader(exclude=killed)
        # kill while the runs are under way under this leader: each at its gate, with the
        # checkpoint before it and two per step (compute and set) consumed
        await wait_until(
            lambda leader=leader, kill=kill: all(  # type: ignore[misc]
                cluster.run(leader, r.workflow_id).consumed >= 1 + 2 * 10 * kill for r in runs
            ),
            what=f"every run under way before kill {kill}",
        )
        assert not any(cluster.run(leader, r.workflow_id).done for r in runs)
        await cluster.kill(leader)
        killed.append(leader)
        gate.set()
    survivors = cluster.alive()
    for run in runs:
        n = int(run.workflow_id.split("-")[1])
        for node in survivors:
            assert await cluster.run(node, run.workflow_id).result(TIMEOUT) == n * JOB_TOTAL
    assert set(computed) == {(f"job-{n}", i) for n in range(30) for i in range(JOB_STEPS)}
    assert max(computed.values()) <= 1 + len(killed)
    for node in survivors:
        done = Counter(e.workflow_id for e in cluster.events_of("workflow_completed", node=node))  # type: ignore[attr-defined]
        assert done == Counter({f"job-{n}": 1 for n in range(30)}), f"node {node}"
    changes = cluster.events_of("owner_changed", node=survivors[0])
    assert Counter(e.workflow_id for e in changes) == Counter(  # type: ignore[attr-defined]
        {f"job-{n}": 2 for n in range(30)}
    ), "both kills moved every run"


async def test_a_durable_sleep_survives_the_owner(make_cluster: ClusterFactory) -> None:
    app = WorkflowApp()

    @app.workflow("nap")
    async def nap(ctx: WorkflowContext) -> list[float]:
        before = await ctx.now()
        await ctx.sleep(0.5)
        after = await ctx.now()
        return [before, after]

    cluster = await make_cluster(3, app)
    await cluster.runtimes[1].start_workflow("nap", 1, workflow_id="nap")
    owner = cluster.runtimes[1].get_workflow("nap").owner
    assert owner is not None
    await wait_until(
        lambda: cluster.runtimes[owner].get_workflow("nap").checkpoint_count == 2,
        what="the wake-up time committed",
    )
    until = cluster.runtimes[owner].get_workflow("nap").checkpoints[1].value
    await cluster.kill(owner)
    new_leader = await cluster.wait_for_leader(exclude={owner})
    before, after = await cluster.run(new_leader, "nap").result(TIMEOUT)
    assert after >= until >= before + 0.5, "the new owner woke at the committed time"
    assert cluster.runtimes[new_leader].get_workflow("nap").owner == new_leader
    wakes = {e.until for e in cluster.events_of("workflow_sleeping", workflow_id="nap")}  # type: ignore[attr-defined]
    assert wakes == {until}
