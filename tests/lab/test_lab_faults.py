"""A Lab running a workflow through the teaching faults, on each transport a lesson may use:
the memory network, the embedded broker and a Mosquitto the test starts (`Lab(broker=URL)`).
With a drop rate and a delay set, the owner (the leader) is partitioned away mid-run; the
majority takes the run over, the partition heals, and every node gets the right result. The
drops are counted per reason on the transports and shown as events."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

import pytest

from raftoral_lab.lab import Lab
from raftoral_lab.transport.mosquitto import find_mosquitto, running_mosquitto
from raftoral_lab.transport.stats import DropReason
from raftoral_lab.workflow import WorkflowApp, WorkflowContext

STEPS = 12
EXPECTED = sum(i * i for i in range(STEPS))
HALFWAY_OPS = 1 + 2 * (STEPS // 2)
"""Checkpoint operations taken before the halfway gate: the total, then (square, total) pairs."""
TIMEOUT = 30.0
"""Deadline of every wait; generous for a loaded machine (never asserted as a speed)."""
REQUIRE_ENV = "RAFTORAL_REQUIRE_MOSQUITTO"


@pytest.fixture(
    params=["memory", "embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]
)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """What `Lab(broker=...)` takes: "memory", None (embedded) or a private Mosquitto's URL."""
    if request.param != "mosquitto":
        yield None if request.param == "embedded" else "memory"
        return
    binary = find_mosquitto()
    if binary is None:
        reason = "mosquitto binary not found (apt-get install mosquitto)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(reason)
    async with running_mosquitto(None, binary) as mosquitto:
        yield mosquitto.url


def gated_app(halfway: asyncio.Event) -> WorkflowApp:
    """STEPS computed squares added up; every node's run waits at halfway for the test."""
    app = WorkflowApp()

    @app.workflow("squares")
    async def squares(ctx: WorkflowContext, n: int) -> int:
        total = await ctx.checkpoint("total", 0)
        for i in range(n):
            if i == n // 2:
                await halfway.wait()

            def square(i: int = i) -> int:
                return i * i

            value = await ctx.checkpoint_compute(f"square-{i}", square)
            await total.update(lambda t, value=value: t + value)  # type: ignore[misc]
        return total.value

    return app


async def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {TIMEOUT:g} s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_workflow_survives_drops_delay_and_its_owner_cut_off(broker: str | None) -> None:
    halfway = asyncio.Event()
    async with Lab(nodes=3, app=gated_app(halfway), broker=broker, tick_seconds=0.02) as lab:
        if broker is not None:
            assert lab.url == broker, "the lab uses the broker it was given"
        leader = await lab.wait_for_leader(TIMEOUT)
        others = [n for n in (1, 2, 3) if n != leader]
        await lab.start_workflow("squares", 1, STEPS, node=others[0], workflow_id="sq")
        await wait_until(
            lambda: all(lab.runtime(n).get_run("sq").consumed == HALFWAY_OPS for n in (1, 2, 3)),
            "every node's run at halfway",
        )
        owner = lab.runtime(leader).get_workflow("sq").owner
        assert owner == leader

        await lab.set_drop_rate(0.1)
        await lab.set_delay(0.002, 0.01)
        await lab.partition({owner}, others)
        successor = await lab.wait_for_leader(TIMEOUT, exclude={owner})
        await wait_until(
            lambda: lab.runtime(successor).get_workflow("sq").owner == successor,
            f"node {successor} to take the run over",
        )
        halfway.set()
        for node in others:
            assert await lab.runtime(node).get_run("sq").result(TIMEOUT) == EXPECTED, node
        assert not lab.runtime(owner).get_run("sq").done, "the cut-off owner cannot end it"

        await lab.heal()
        assert await lab.runtime(owner).get_run("sq").result(TIMEOUT) == EXPECTED
        for node in (1, 2, 3):
            info = lab.runtime(node).get_workflow("sq")
            assert (info.status.value, info.result, info.owner) == (
                "completed",
                EXPECTED,
                successor,
            ), node

        counted = {
            reason: sum(lab.node(n).transport.stats.dropped[reason] for n in (1, 2, 3))
            for reason in (DropReason.DROP_RATE, DropReason.PARTITION)
        }
        assert counted[DropReason.DROP_RATE] > 0, counted
        assert counted[DropReason.PARTITION] > 0, counted
        shown = [e for e in lab.events if e.kind == "message_dropped"]
        for reason, count in counted.items():
            events = sum(1 for e in shown if getattr(e, "reason", None) == reason)
            assert events == count, (reason, events, count)
        assert lab.node(owner).transport.faults.delay == (0.002, 0.01), "heal keeps the delay"
