"""Payment processing (the seed README's `process_payment`), on a 3-node in-process cluster.

Deterministic state goes in `checkpoint`s; the card charge, a side effect, goes in
`checkpoint_compute`: it runs on the owner only and every node gets its committed result.
A declined card is an exception the workflow catches: the failure is committed, so every node
takes the same `except` branch.

At least once: if the owner dies while the charge runs, the new owner charges again. So the
charge carries an idempotency key (the workflow id), as a real payment API expects.

Run it: `python examples/payment.py` (exits 0 when every check holds).
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from raftoral_lab import Lab
from raftoral_lab.errors import CheckpointFailed
from raftoral_lab.workflow import Retry, WorkflowApp, WorkflowContext


class PaymentInput(BaseModel):
    order_id: str
    amount_cents: int
    card: str


class PaymentOutput(BaseModel):
    status: str
    charge_id: str | None = None


class CardDeclined(Exception):
    pass


class FakeGateway:
    """Stands in for Stripe: charges are idempotent by key, and it counts real calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.charges: dict[str, str] = {}

    async def charge(self, idempotency_key: str, card: str, amount_cents: int) -> str:
        self.calls += 1
        await asyncio.sleep(0.01)  # the network
        if card.startswith("4000"):
            raise CardDeclined(f"card {card[-4:]} declined for {amount_cents} cents")
        return self.charges.setdefault(idempotency_key, f"ch_{len(self.charges) + 1}")


gateway = FakeGateway()
app = WorkflowApp()


@app.workflow("process_payment", version=1)
async def process_payment(ctx: WorkflowContext, payment: PaymentInput) -> PaymentOutput:
    order_id = await ctx.checkpoint("order_id", payment.order_id)
    amount = await ctx.checkpoint("amount", payment.amount_cents)
    try:
        charge_id: str = await ctx.checkpoint_compute(
            "charge",
            lambda: gateway.charge(ctx.workflow_id, payment.card, amount.value),
            retry=Retry(attempts=2, initial_delay=0.01, retry_on=(ConnectionError,)),
        )
    except CheckpointFailed as declined:  # committed: the same branch on every node
        status = await ctx.checkpoint("status", f"failed: {declined.error_type}")
        return PaymentOutput(status=status.value)
    status = await ctx.checkpoint("status", f"completed {order_id.value}")
    return PaymentOutput(status=status.value, charge_id=charge_id)


async def main() -> None:
    async with Lab(nodes=3, app=app, broker="memory", tick_seconds=0.01) as lab:
        await lab.wait_for_leader()
        ok = await lab.start_workflow(
            "process_payment",
            1,
            PaymentInput(order_id="ORD-1", amount_cents=4200, card="4242424242424242"),
            node=2,
        )
        paid = await ok.result(timeout=30)
        print("payment 1:", paid)
        assert paid == PaymentOutput(status="completed ORD-1", charge_id="ch_1")

        declined = await lab.start_workflow(
            "process_payment",
            1,
            {"order_id": "ORD-2", "amount_cents": 999, "card": "4000000000000002"},
        )
        refused = await declined.result(timeout=30)
        print("payment 2:", refused)
        assert refused == PaymentOutput(status="failed: CardDeclined")

        # every node ran both workflows, yet the gateway was called once per payment
        for node in (1, 2, 3):
            run = await lab.runtime(node).find_run(ok.workflow_id)
            assert await run.result(timeout=30) == paid
        assert gateway.calls == 2, gateway.calls
    print("payment example: ok")


if __name__ == "__main__":
    asyncio.run(main())
