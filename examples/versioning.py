"""Workflow versioning: v1 and v2 of `process_order` registered side by side.

A v1 run that started before the rollout keeps running v1 code to its end, while new runs use
v2 (which adds a fraud check). Runs are pinned to the (name, version) they started with; a
version no node registered is refused at once. Once no v1 run is left, a later deployment can
drop v1 (the seed README's three phases).

Run it: `python examples/versioning.py` (exits 0 when every check holds).
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from raftoral_lab import Lab
from raftoral_lab.errors import UnknownWorkflow
from raftoral_lab.workflow import WorkflowApp, WorkflowContext, WorkflowStatus


class Order(BaseModel):
    order_id: str
    amount_cents: int


class Outcome(BaseModel):
    status: str
    version: int


app = WorkflowApp()
v1_may_finish = asyncio.Event()


@app.workflow("process_order", version=1)
async def process_order_v1(ctx: WorkflowContext, order: Order) -> Outcome:
    status = await ctx.checkpoint("status", "processing")
    await v1_may_finish.wait()  # a long-running v1 order, still open during the rollout
    await status.set("completed")
    return Outcome(status=status.value, version=1)


async def fraud_score(order: Order) -> float:
    await asyncio.sleep(0.01)
    return 0.9 if order.amount_cents > 100_000 else 0.1


@app.workflow("process_order", version=2)
async def process_order_v2(ctx: WorkflowContext, order: Order) -> Outcome:
    status = await ctx.checkpoint("status", "processing")
    score = await ctx.checkpoint_compute("fraud_check", lambda: fraud_score(order))  # new in v2
    if score > 0.5:
        await status.set("fraud_detected")
    else:
        await status.set("completed")
    return Outcome(status=status.value, version=2)


async def main() -> None:
    async with Lab(nodes=3, app=app, broker="memory", tick_seconds=0.01) as lab:
        await lab.wait_for_leader()
        old = await lab.start_workflow("process_order", 1, Order(order_id="A", amount_cents=500))
        new_ok = await lab.start_workflow("process_order", 2, Order(order_id="B", amount_cents=500))
        new_bad = await lab.start_workflow(
            "process_order", 2, Order(order_id="C", amount_cents=500_000)
        )
        assert await new_ok.result(timeout=30) == Outcome(status="completed", version=2)
        assert await new_bad.result(timeout=30) == Outcome(status="fraud_detected", version=2)

        leader = await lab.wait_for_leader()
        running = [
            (w.name, w.version)
            for w in lab.runtime(leader).list_workflows()
            if w.status is WorkflowStatus.RUNNING
        ]
        print("still running during the rollout:", running)
        assert running == [("process_order", 1)]
        v1_may_finish.set()
        assert await old.result(timeout=30) == Outcome(status="completed", version=1)

        try:
            await lab.start_workflow("process_order", 3, Order(order_id="D", amount_cents=1))
        except UnknownWorkflow as refused:
            print("refused:", refused)
        else:
            raise AssertionError("version 3 is registered nowhere and must be refused")
    print("versioning example: ok")


if __name__ == "__main__":
    asyncio.run(main())
