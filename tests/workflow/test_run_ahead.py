"""The owner runs ahead of its commits (workflow/runtime.py, `_Execution._run_ahead`).

A leader that owns a run proposes each checkpoint and goes on with its own value at once, so
the checkpoints of a run leave in a few appends instead of one commit round trip each. Nothing
of the run is answered before the log holds all of it, a side effect waits for it too, and when
the log commits something else (the owner lost the run while its proposals were not committed)
the run starts again on the committed values.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from raftoral_lab.core import AppendEntries, Message
from raftoral_lab.node import Node
from raftoral_lab.workflow import WorkflowApp, WorkflowContext

from .conftest import ClusterFactory
from .support import TIMEOUT, wait_until

STEPS = 10


def count_appends(leader: Node) -> Counter[int]:
    """Appends that carry entries, per follower, from now on."""
    counts: Counter[int] = Counter()
    transport = leader.group().transport
    send = transport.send

    def counting(messages: object) -> None:
        batch: list[Message] = list(messages)  # type: ignore[call-overload]
        for message in batch:
            if isinstance(message, AppendEntries) and message.entries:
                counts[message.dst] += 1
        send(batch)

    transport.send = counting  # type: ignore[method-assign]
    return counts


async def test_an_owner_sends_a_runs_checkpoints_in_a_few_appends(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()

    @app.workflow("steps")
    async def steps(ctx: WorkflowContext, n: int) -> int:
        value = await ctx.checkpoint("value", n)
        for i in range(1, STEPS):
            await value.set(value.value * 3 + i)
        return value.value

    cluster = await make_cluster(3, app)
    leader = await cluster.wait_for_leader()
    counts = count_appends(cluster.nodes[leader])
    run = await cluster.runtimes[leader].start_workflow("steps", 1, 1, workflow_id="w")
    expected = 1
    for i in range(1, STEPS):
        expected = expected * 3 + i
    assert await run.result(timeout=TIMEOUT) == expected
    for node_id in cluster.alive():
        here = await cluster.runtimes[node_id].find_run("w")
        assert await here.result(timeout=TIMEOUT) == expected
        assert here.consumed == STEPS
    followers = [n for n in cluster.alive() if n != leader]
    # start, ten checkpoints and the end are 12 entries; one commit round trip each would be
    # 12 appends per follower
    assert all(counts[f] <= 6 for f in followers), counts
    assert [e.ordinal for e in cluster.events_of("checkpoint_committed", node=leader)] == list(
        range(STEPS)
    )
    assert not cluster.events_of("workflow_rewound")


async def test_an_owner_that_ran_ahead_and_lost_the_run_runs_again_on_the_committed_values(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()
    inside = asyncio.Event()
    release = asyncio.Event()
    computed_by: Counter[int] = Counter()

    async def gate(node: int) -> int:
        computed_by[node] += 1
        inside.set()
        await release.wait()
        return node

    @app.workflow("who")
    async def who(ctx: WorkflowContext) -> list[int]:
        first = await ctx.checkpoint_compute("gate", lambda: gate(ctx.node_id))
        rest = [(await ctx.checkpoint(f"then-{i}", first * 10 + i)).value for i in range(3)]
        return [first, *rest]

    cluster = await make_cluster(3, app)
    old = await cluster.wait_for_leader()
    await cluster.runtimes[old].start_workflow("who", 1, workflow_id="w")
    await wait_until(inside.is_set, what="the owner inside its first step")
    # cut the owner off, then let it go on: it runs ahead on values nobody else sees
    cluster.network.isolate(old)
    release.set()

    def ran_ahead() -> bool:
        execution = cluster.runtimes[old].get_run("w").execution
        return execution is not None and len(execution.ahead) == 4 and execution.consumed == 0

    await wait_until(ran_ahead, what="the cut-off owner to run ahead to the end of its run")
    new = await cluster.wait_for_leader(exclude={old})
    await wait_until(
        lambda: cluster.runs_consumed(new, "w") == 4, what="the new owner to finish the run"
    )
    cluster.network.heal()
    results = set()
    for node_id in (1, 2, 3):
        here = await cluster.runtimes[node_id].find_run("w")
        results.add(tuple(await here.result(timeout=TIMEOUT)))
    assert results == {(new, new * 10, new * 10 + 1, new * 10 + 2)}, "the committed values"
    assert cluster.events_of("workflow_rewound", node=old), "the old owner ran again"
    assert computed_by[old] == 1, "running again consumes the committed values"
