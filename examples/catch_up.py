"""Catch-up: a node joins while a workflow is halfway through 1000 checkpoints.

The log is compacted every 100 entries, so the new node receives a snapshot that holds the
running workflow with its committed checkpoint queue. It starts the workflow at once and takes
the first 500 values from that queue instead of computing them, then follows the live run.
(The seed's joiners never ran snapshot-installed workflows; ours do.)

To join at exactly the halfway point, the workflow waits there for a signal from `main`. That
wait is in-process test scaffolding, not something a real workflow would do.

Run it: `python examples/catch_up.py` (exits 0 when every check holds).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from raftoral_lab import Lab
from raftoral_lab.workflow import WorkflowApp, WorkflowContext

TOTAL = 1000
JOIN_AT = 500

app = WorkflowApp()
joined = asyncio.Event()
computed: Counter[int] = Counter()


@app.workflow("count", version=1)
async def count(ctx: WorkflowContext, total: int) -> int:
    counter = await ctx.checkpoint("counter", 0)
    for i in range(1, total + 1):
        if i == JOIN_AT + 1:
            await joined.wait()

        def next_value(i: int = i) -> int:
            computed[ctx.node_id] += 1  # only ever runs on the owner
            return i

        await counter.set(await ctx.checkpoint_compute("next", next_value))
    return counter.value


async def main() -> None:
    async with Lab(nodes=3, app=app, broker="memory", tick_seconds=0.01, compact_every=100) as lab:
        leader = await lab.wait_for_leader()
        run = await lab.start_workflow("count", 1, TOTAL, workflow_id="big-count")
        runtime = lab.runtime(leader)
        while runtime.get_workflow("big-count").checkpoint_count < 1 + 2 * JOIN_AT:
            await asyncio.sleep(0.01)
        before = sum(computed.values())

        new_id = await lab.join()
        print(f"node {new_id} joined after {JOIN_AT} of {TOTAL} steps")
        mine = await lab.runtime(new_id).find_run("big-count")  # once it has caught up a bit
        while mine.consumed < 1 + 2 * JOIN_AT:  # caught up from the snapshot's queue
            await asyncio.sleep(0.01)
        assert sum(computed.values()) == before, "catching up computed nothing"
        joined.set()

        assert await run.result(timeout=60) == TOTAL
        assert await mine.result(timeout=60) == TOTAL
        assert mine.computations == 0 and computed[new_id] == 0
        assert sum(computed.values()) == TOTAL  # each step computed once, on the owner
        print(f"node {new_id} reached {TOTAL} too, without computing a single step")
    print("catch-up example: ok")


if __name__ == "__main__":
    asyncio.run(main())
