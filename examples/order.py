"""Order processing (the seed README's `process_order`), with a failover in the middle.

The workflow checks inventory once (a side effect, on the owner), then waits for the
warehouse with a durable `ctx.sleep`: the wake-up time is committed, so when the owner is
killed during the sleep, the new leader takes the run over and wakes at the same moment. The
inventory check is not done again: it was committed before the failover.

Run it: `python examples/order.py` (exits 0 when every check holds).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pydantic import BaseModel

from raftoral_lab import Lab
from raftoral_lab.workflow import WorkflowApp, WorkflowContext


class OrderInput(BaseModel):
    order_id: str
    item_id: str


class OrderOutput(BaseModel):
    status: str
    handled_by: int


inventory_checks: Counter[int] = Counter()
STOCK = {"ITEM-456": 3}

app = WorkflowApp()


async def check_inventory(node: int, item_id: str) -> bool:
    inventory_checks[node] += 1
    await asyncio.sleep(0.01)
    return STOCK.get(item_id, 0) > 0


@app.workflow("process_order", version=1)
async def process_order(ctx: WorkflowContext, order: OrderInput) -> OrderOutput:
    status = await ctx.checkpoint("status", "processing")
    in_stock = await ctx.checkpoint_compute(
        "inventory", lambda: check_inventory(ctx.node_id, order.item_id)
    )
    if not in_stock:
        await status.set("out_of_stock")
        return OrderOutput(status=status.value, handled_by=ctx.node_id)
    await ctx.sleep(1.0)  # the warehouse packs the parcel; a failover may happen meanwhile
    finisher = await ctx.checkpoint_compute("finisher", lambda: ctx.node_id)
    await status.set("confirmed")
    return OrderOutput(status=status.value, handled_by=finisher)


async def main() -> None:
    async with Lab(nodes=3, app=app, broker="memory", tick_seconds=0.01) as lab:
        first_leader = await lab.wait_for_leader()
        run = await lab.start_workflow(
            "process_order", 1, OrderInput(order_id="ORD-123", item_id="ITEM-456")
        )
        info = lab.runtime(first_leader).get_workflow(run.workflow_id)
        while info.checkpoint_count < 3:  # status, inventory, the committed wake-up time
            await asyncio.sleep(0.01)
            info = lab.runtime(first_leader).get_workflow(run.workflow_id)
        print(f"node {first_leader} owns the run and sleeps; killing it")
        await lab.kill(first_leader)
        new_leader = await lab.wait_for_leader(exclude={first_leader})
        survivor = lab.runtime(new_leader).get_run(run.workflow_id)
        receipt = await survivor.result(timeout=30)
        print("receipt:", receipt)
        assert receipt == OrderOutput(status="confirmed", handled_by=new_leader)
        assert sum(inventory_checks.values()) == 1, "checked once, before the failover"

        out = await lab.start_workflow(
            "process_order", 1, OrderInput(order_id="ORD-124", item_id="ITEM-000")
        )
        assert (await out.result(timeout=30)).status == "out_of_stock"
    print("order example: ok")


if __name__ == "__main__":
    asyncio.run(main())
