"""Sample workflows for node processes: `raftoral-lab node --app raftoral_lab.samples:app`.

- `ten_steps` v1: ten `checkpoint_compute` steps on an integer (the benchmark's workflow);
  `expected_ten_steps(n)` is its result, for checks;
- `ten_sets` v1: the same result from ten plain checkpoints (a value and nine `set`s);
- `process_order` v1: an order with a status variable, a price lookup and an inventory check;
  an unknown item fails the workflow with a `LookupError` (every node sees the same failure).

```
raftoral-lab node --bootstrap --app raftoral_lab.samples:app --broker mqtt://127.0.0.1:1883
raftoral-lab run ten_steps --version 1 --input 7 --broker mqtt://127.0.0.1:1883
```
"""

from __future__ import annotations

import functools

from pydantic import BaseModel, Field

from raftoral_lab.workflow import WorkflowApp, WorkflowContext

app = WorkflowApp()

STEPS = 10
MODULUS = 1_000_003

PRICES: dict[str, int] = {"book": 1200, "pen": 150, "lamp": 4500}
"""Prices in cents; an item not listed here fails its order."""
STOCK: dict[str, int] = {"book": 10, "pen": 1000, "lamp": 2}


def step(value: int, index: int) -> int:
    """One step of `ten_steps`: a cheap, order-sensitive function."""
    return (value * 31 + index + 7) % MODULUS


def expected_ten_steps(n: int) -> int:
    value = n
    for index in range(STEPS):
        value = step(value, index)
    return value


@app.workflow("ten_steps", version=1)
async def ten_steps(ctx: WorkflowContext, n: int) -> int:
    value = n
    for index in range(STEPS):
        value = await ctx.checkpoint_compute(f"step-{index}", functools.partial(step, value, index))
    return value


@app.workflow("ten_sets", version=1)
async def ten_sets(ctx: WorkflowContext, n: int) -> int:
    """`ten_steps` with plain values instead of `checkpoint_compute`: no side effect, so the
    owner runs ahead of its commits (same result)."""
    value = await ctx.checkpoint("value", n)
    for index in range(STEPS - 1):
        await value.set(step(value.value, index))
    return step(value.value, STEPS - 1)


class Order(BaseModel):
    order_id: str
    item: str
    quantity: int = Field(default=1, ge=1)


class Receipt(BaseModel):
    order_id: str
    status: str
    total_cents: int


def price_of(item: str) -> int:
    try:
        return PRICES[item]
    except KeyError:
        raise LookupError(f"unknown item {item!r}; the catalog has {sorted(PRICES)}") from None


def expected_receipt(order: Order) -> Receipt:
    """What `process_order` returns for `order` (for an item in the catalog)."""
    total = price_of(order.item) * order.quantity
    status = "confirmed" if STOCK.get(order.item, 0) >= order.quantity else "out_of_stock"
    return Receipt(order_id=order.order_id, status=status, total_cents=total)


@app.workflow("process_order", version=1)
async def process_order(ctx: WorkflowContext, order: Order) -> Receipt:
    status = await ctx.checkpoint("status", "processing")
    price = await ctx.checkpoint_compute("price", lambda: price_of(order.item))
    in_stock = await ctx.checkpoint_compute(
        "inventory", lambda: STOCK.get(order.item, 0) >= order.quantity
    )
    await status.set("confirmed" if in_stock else "out_of_stock")
    return Receipt(order_id=order.order_id, status=status.value, total_cents=price * order.quantity)
