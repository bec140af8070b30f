"""The engine on a healthy 3-node cluster: every node runs, the owner proposes, the others
consume; outcomes, errors and idempotency are the same on every node."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest
from pydantic import BaseModel

from raftoral_lab.errors import (
    CheckpointFailed,
    InvalidWorkflowInput,
    NonDeterminismError,
    UnknownWorkflow,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowIdConflict,
    WorkflowNotFound,
    WorkflowTimeout,
)
from raftoral_lab.workflow import Retry, WorkflowApp, WorkflowContext, WorkflowStatus

from .conftest import ClusterFactory
from .support import TIMEOUT, wait_until


class Order(BaseModel):
    item: str
    quantity: int = 1


class Receipt(BaseModel):
    status: str
    item: str


async def test_a_thousand_sets_give_the_same_values_on_every_node(
    make_cluster: ClusterFactory,
) -> None:
    """The seed's followers saw each `set` shifted by one; here every node sees 0..999."""
    app = WorkflowApp()
    seen: dict[int, list[int]] = defaultdict(list)

    @app.workflow("counter")
    async def counter(ctx: WorkflowContext, n: int) -> int:
        var = await ctx.checkpoint("counter", -1)
        seen[ctx.node_id].append(var.value)
        for i in range(n):
            await var.set(i)
            seen[ctx.node_id].append(var.value)
        return var.value

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[2].start_workflow("counter", 1, 1000, workflow_id="c")
    assert await run.result(TIMEOUT) == 999
    for node in (1, 2, 3):
        assert await cluster.run(node, "c").result(TIMEOUT) == 999
        assert seen[node] == list(range(-1, 1000)), f"node {node} saw other values"
    info = cluster.runtimes[1].get_workflow("c")
    assert info.status is WorkflowStatus.COMPLETED and info.checkpoint_count == 1001


async def test_typed_input_and_output_and_compute_runs_exactly_once(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()
    calls: Counter[int] = Counter()

    def check_inventory(node: int, item: str) -> bool:
        calls[node] += 1
        return item != "unobtainium"

    @app.workflow("process_order", version=1)
    async def process_order(ctx: WorkflowContext, order: Order) -> Receipt:
        status = await ctx.checkpoint("status", "processing")
        ok = await ctx.checkpoint_compute(
            "inventory", lambda: check_inventory(ctx.node_id, order.item)
        )
        await status.set("confirmed" if ok else "out_of_stock")
        return Receipt(status=status.value, item=order.item)

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[1].start_workflow("process_order", 1, Order(item="x"))
    receipts = [await cluster.run(n, run.workflow_id).result(TIMEOUT) for n in (1, 2, 3)]
    assert receipts == [Receipt(status="confirmed", item="x")] * 3
    owner = cluster.runtimes[1].get_workflow(run.workflow_id).owner
    assert calls == Counter({owner: 1}), "the side effect ran once, on the owner"
    assert [cluster.run(n, run.workflow_id).computations for n in (1, 2, 3)].count(1) == 1

    with pytest.raises(InvalidWorkflowInput, match="quantity"):
        await cluster.runtimes[2].start_workflow(
            "process_order", 1, {"item": "x", "quantity": "many"}
        )


async def test_unregistered_pair_fails_at_start_with_a_clear_error(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()

    @app.workflow("known", version=1)
    async def known(ctx: WorkflowContext) -> int:
        return 1

    cluster = await make_cluster(3, app)
    with pytest.raises(UnknownWorkflow, match=r"'known' version 2 .*registered: 'known' v1"):
        await cluster.runtimes[1].start_workflow("known", 2)
    with pytest.raises(UnknownWorkflow, match="'nope' version 1"):
        await cluster.runtimes[3].start_workflow("nope", 1, {"a": 1})
    assert cluster.runtimes[1].list_workflows() == []


async def test_duplicate_start_with_the_same_id_runs_once(make_cluster: ClusterFactory) -> None:
    app = WorkflowApp()
    bodies: Counter[int] = Counter()
    charges: Counter[int] = Counter()

    @app.workflow("charge")
    async def charge(ctx: WorkflowContext, amount: int) -> str:
        bodies[ctx.node_id] += 1

        def pay() -> str:
            charges[ctx.node_id] += 1
            return f"paid {amount}"

        return await ctx.checkpoint_compute("pay", pay)

    @app.workflow("other")
    async def other(ctx: WorkflowContext) -> None:
        return None

    cluster = await make_cluster(3, app)
    runs = await asyncio.gather(
        *(cluster.runtimes[n].start_workflow("charge", 1, 10, workflow_id="o-1") for n in (1, 2, 3))
    )
    assert [await r.result(TIMEOUT) for r in runs] == ["paid 10"] * 3
    again = await cluster.runtimes[2].start_workflow("charge", 1, 99, workflow_id="o-1")
    assert again is runs[1]
    assert await again.result(timeout=0) == "paid 10"  # done: no wait at all
    assert bodies == Counter({1: 1, 2: 1, 3: 1}), "each node ran the body once"
    assert sum(charges.values()) == 1
    assert len(cluster.runtimes[1].list_workflows()) == 1
    assert len(cluster.events_of("workflow_started", workflow_id="o-1")) == 3  # once per node
    with pytest.raises(WorkflowIdConflict):
        await cluster.runtimes[1].start_workflow("other", 1, workflow_id="o-1")


async def test_an_id_forgotten_past_retain_finished_runs_again_as_a_new_run(
    make_cluster: ClusterFactory,
) -> None:
    """The documented limit of "never runs twice": with retain_finished=1, once another
    workflow has finished, the first id is forgotten and starting it again is a new run, on
    every node, with its own result (not the old handle's)."""
    app = WorkflowApp()
    bodies: Counter[tuple[int, int]] = Counter()

    @app.workflow("echo")
    async def echo(ctx: WorkflowContext, x: int) -> int:
        bodies[(ctx.node_id, x)] += 1
        return (await ctx.checkpoint("x", x)).value

    cluster = await make_cluster(3, app, retain_finished=1)
    first = await cluster.runtimes[1].start_workflow("echo", 1, 1, workflow_id="a")
    assert await first.result(TIMEOUT) == 1
    again = await cluster.runtimes[2].start_workflow("echo", 1, 5, workflow_id="a")
    assert await again.result(TIMEOUT) == 1, "remembered: the existing run"
    other = await cluster.runtimes[1].start_workflow("echo", 1, 2, workflow_id="b")
    assert await other.result(TIMEOUT) == 2
    await wait_until(
        lambda: all(cluster.runtimes[n].state_machine.get("a") is None for n in (1, 2, 3)),
        what="every node to forget 'a'",
    )
    rerun = await cluster.runtimes[2].start_workflow("echo", 1, 3, workflow_id="a")
    for node in (1, 2, 3):
        assert await cluster.run(node, "a").result(TIMEOUT) == 3, f"node {node}"
    assert await rerun.result(TIMEOUT) == 3
    assert await first.result(0) == 1, "a caller's old handle keeps the old outcome"
    assert bodies == Counter({(n, x): 1 for n in (1, 2, 3) for x in (1, 2, 3)})


async def test_result_after_completion_returns_at_once_on_every_node(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()

    @app.workflow("quick")
    async def quick(ctx: WorkflowContext, x: int) -> int:
        return (await ctx.checkpoint("x", x)).value * 2

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[3].start_workflow("quick", 1, 21)
    assert await run.result(TIMEOUT) == 42
    for node in (1, 2, 3):
        handle = cluster.run(node, run.workflow_id)
        await wait_until(lambda h=handle: h.done, what=f"node {node} to finish")  # type: ignore[misc]
        assert await handle.result(timeout=0) == 42
        assert await handle.result(timeout=0) == 42  # and again
    with pytest.raises(WorkflowNotFound):
        cluster.runtimes[1].get_run("missing")
    with pytest.raises(WorkflowNotFound):
        await cluster.runtimes[1].find_run("missing", timeout=0.05)
    assert (await cluster.runtimes[2].find_run(run.workflow_id)).workflow_id == run.workflow_id


async def test_a_raising_workflow_fails_the_same_way_on_every_node(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()

    @app.workflow("boom")
    async def boom(ctx: WorkflowContext, n: int) -> int:
        value = await ctx.checkpoint("n", n)
        raise ValueError(f"boom {value.value}")

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[2].start_workflow("boom", 1, 42)
    for node in (1, 2, 3):
        with pytest.raises(WorkflowFailed) as caught:
            await cluster.run(node, run.workflow_id).result(TIMEOUT)
        assert (caught.value.error_type, caught.value.message) == ("ValueError", "boom 42")
    info = cluster.runtimes[3].get_workflow(run.workflow_id)
    assert info.status is WorkflowStatus.FAILED and info.error is not None


class PaymentDeclined(Exception):
    pass


async def test_a_failing_compute_is_retried_on_the_owner_then_committed_as_a_failure(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()
    attempts: Counter[int] = Counter()
    caught: dict[int, tuple[str, str]] = {}

    async def charge(node: int) -> str:
        attempts[node] += 1
        raise PaymentDeclined("card declined")

    @app.workflow("pay")
    async def pay(ctx: WorkflowContext) -> str:
        try:
            await ctx.checkpoint_compute(
                "charge", lambda: charge(ctx.node_id), retry=Retry(attempts=3, initial_delay=0)
            )
        except CheckpointFailed as error:
            caught[ctx.node_id] = (error.error_type, error.message)
        await ctx.checkpoint_compute("charge-again", lambda: charge(ctx.node_id))
        return "unreachable"

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[1].start_workflow("pay", 1)
    for node in (1, 2, 3):
        with pytest.raises(WorkflowFailed) as failed:
            await cluster.run(node, run.workflow_id).result(TIMEOUT)
        assert (failed.value.error_type, failed.value.message) == (
            "PaymentDeclined",
            "card declined",
        )
    assert caught == {n: ("PaymentDeclined", "card declined") for n in (1, 2, 3)}
    owner = cluster.runtimes[1].get_workflow(run.workflow_id).owner
    assert attempts == Counter({owner: 4}), "3 attempts + 1, on the owner only"


async def test_divergent_code_on_one_node_raises_there_and_the_others_finish(
    make_cluster: ClusterFactory,
) -> None:
    def build(second_key: str) -> WorkflowApp:
        app = WorkflowApp()

        @app.workflow("flow")
        async def flow(ctx: WorkflowContext) -> str:
            first = await ctx.checkpoint("first", 1)
            second = await ctx.checkpoint(second_key, 2)
            return f"{first.value}-{second.value}"

        return app

    cluster = await make_cluster(3, build("second"), apps={3: build("deuxieme")})
    await cluster.transfer_leader(1)  # node 3 must not own the run
    run = await cluster.runtimes[1].start_workflow("flow", 1, workflow_id="d")
    assert await run.result(TIMEOUT) == "1-2"
    assert await cluster.run(2, "d").result(TIMEOUT) == "1-2"
    with pytest.raises(NonDeterminismError) as caught:
        await cluster.run(3, "d").result(TIMEOUT)
    error = caught.value
    assert (error.ordinal, error.expected_key, error.actual_key, error.node) == (
        1,
        "second",
        "deuxieme",
        3,
    )
    assert "'second'" in str(error) and "'deuxieme'" in str(error)
    assert cluster.events_of("workflow_divergence", workflow_id="d", node=3)
    await wait_until(
        lambda: 3 in cluster.runtimes[1].get_workflow("d").excluded, what="node 3 excluded"
    )


async def test_now_random_and_sleep_are_committed_values(make_cluster: ClusterFactory) -> None:
    app = WorkflowApp()
    seen: dict[int, tuple[float, float, float]] = {}

    @app.workflow("clock")
    async def clock(ctx: WorkflowContext) -> list[float]:
        start = await ctx.now()
        draw = await ctx.random()
        await ctx.sleep(0.05)
        after = await ctx.now()
        seen[ctx.node_id] = (start, draw, after)
        return [start, draw, after]

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[1].start_workflow("clock", 1)
    result = await run.result(TIMEOUT)
    for node in (1, 2, 3):
        assert await cluster.run(node, run.workflow_id).result(TIMEOUT) == result
    assert len(set(seen.values())) == 1, "every node saw the same committed values"
    start, draw, after = result
    assert 0 <= draw < 1 and after >= start + 0.05
    sleeping = cluster.events_of("workflow_sleeping", workflow_id=run.workflow_id)
    assert len(sleeping) == 3 and len({e.until for e in sleeping}) == 1  # type: ignore[attr-defined]


async def test_cancel_stops_every_node_and_list_and_get_show_it(
    make_cluster: ClusterFactory,
) -> None:
    app = WorkflowApp()
    never = asyncio.Event()

    @app.workflow("waits")
    async def waits(ctx: WorkflowContext) -> None:
        await ctx.checkpoint("began", True)
        await never.wait()

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[2].start_workflow("waits", 1, workflow_id="long")
    await wait_until(
        lambda: all(cluster.run(n, "long").consumed == 1 for n in (1, 2, 3)),
        what="every node past the first checkpoint",
    )
    info = cluster.runtimes[3].get_workflow("long")
    assert info.status is WorkflowStatus.RUNNING and [c.key for c in info.checkpoints] == ["began"]
    assert info.owner == cluster.leader_id and info.epoch == 1
    with pytest.raises(WorkflowTimeout):
        await run.result(timeout=0.01)
    assert await cluster.runtimes[1].cancel("long") is True
    for node in (1, 2, 3):
        with pytest.raises(WorkflowCancelled):
            await cluster.run(node, "long").result(TIMEOUT)
    assert await cluster.runtimes[1].cancel("long") is False
    assert [w.status for w in cluster.runtimes[1].list_workflows()] == [WorkflowStatus.CANCELLED]
    with pytest.raises(WorkflowNotFound):
        await cluster.runtimes[1].cancel("missing")


async def test_serve_answers_client_requests_with_json(make_cluster: ClusterFactory) -> None:
    """What a node's rpc handler calls for `raftoral-lab run` (JSON in, JSON out)."""
    app = WorkflowApp()

    @app.workflow("greet")
    async def greet(ctx: WorkflowContext, name: str) -> str:
        return (await ctx.checkpoint("greeting", f"hello {name}")).value

    @app.workflow("fail")
    async def fail(ctx: WorkflowContext) -> None:
        raise KeyError("missing")

    release = asyncio.Event()

    @app.workflow("held")
    async def held(ctx: WorkflowContext) -> str:
        await release.wait()
        return (await ctx.checkpoint("done", "released")).value

    cluster = await make_cluster(3, app)
    serve = cluster.runtimes[2].serve
    # `wait` is how long the node holds a result request for a run still going
    await serve("workflow.start", {"name": "held", "version": 1, "workflow_id": "h"})
    early = await asyncio.wait_for(
        serve("workflow.result", {"workflow_id": "h", "wait": 0.05}), TIMEOUT
    )  # a node that ignored `wait` would hold the request until the run ends: never, here
    assert early["error"] == "WorkflowTimeout" and "within 0.05 s" in early["message"], early
    release.set()
    assert await serve("workflow.result", {"workflow_id": "h", "wait": TIMEOUT}) == {
        "status": "completed",
        "result": "released",
    }
    started = await serve("workflow.start", {"name": "greet", "version": 1, "input": "ada"})
    wid = started["workflow_id"]
    assert await serve("workflow.result", {"workflow_id": wid, "wait": TIMEOUT}) == {
        "status": "completed",
        "result": "hello ada",
    }
    assert (await serve("workflow.get", {"workflow_id": wid}))["status"] == "completed"
    failed = await serve("workflow.start", {"name": "fail", "version": 1, "workflow_id": "f"})
    assert failed["workflow_id"] == "f"
    assert await serve("workflow.result", {"workflow_id": "f", "wait": TIMEOUT}) == {
        "status": "failed",
        "error": {"type": "KeyError", "message": "'missing'"},
    }
    listed = await serve("workflow.list", {})
    assert [w["workflow_id"] for w in listed["workflows"]] == ["h", wid, "f"]
    assert (await serve("workflow.start", {"name": "nope", "version": 1}))["error"] == (
        "UnknownWorkflow"
    )
    assert (await serve("workflow.get", {"workflow_id": "zz"}))["error"] == "WorkflowNotFound"
    assert (await serve("workflow.start", {"version": 1}))["error"] == "bad_request"
    assert (await serve("workflow.cancel", {"workflow_id": "f"})) == {"cancelled": False}
    assert (await serve("nope", {}))["error"] == "unknown_op"


async def test_the_event_stream_tells_the_run(make_cluster: ClusterFactory) -> None:
    """What the dashboard draws: per node, started, then each checkpoint committed and
    consumed in order, then completed; proposals come from the owner alone."""
    app = WorkflowApp()

    @app.workflow("two")
    async def two(ctx: WorkflowContext) -> int:
        a = await ctx.checkpoint("a", 1)
        b = await ctx.checkpoint("b", 2)
        return a.value + b.value

    cluster = await make_cluster(3, app)
    run = await cluster.runtimes[1].start_workflow("two", 1, workflow_id="ev")
    assert await run.result(TIMEOUT) == 3
    for node in (1, 2, 3):
        await wait_until(lambda n=node: cluster.run(n, "ev").done, what=f"node {node} done")  # type: ignore[misc]
    owner = cluster.runtimes[1].get_workflow("ev").owner
    proposed = cluster.events_of("checkpoint_proposed", workflow_id="ev")
    assert {e.node for e in proposed} == {owner}
    assert [(e.ordinal, e.key, e.epoch) for e in proposed] == [(0, "a", 1), (1, "b", 1)]  # type: ignore[attr-defined]
    for node in (1, 2, 3):
        stream = [
            (e.kind, getattr(e, "ordinal", None))
            for e in cluster.events
            if e.node == node
            and getattr(e, "workflow_id", None) == "ev"
            and e.kind != "checkpoint_proposed"
        ]
        assert stream[0] == ("workflow_started", None)
        assert stream[-1] == ("workflow_completed", None)
        middle = stream[1:-1]
        consumed = [o for k, o in middle if k == "checkpoint_consumed"]
        committed = [o for k, o in middle if k == "checkpoint_committed"]
        assert consumed == [0, 1] and committed == [0, 1] and len(middle) == 4
        for ordinal in (0, 1):  # a value is consumed only after it committed here
            assert middle.index(("checkpoint_committed", ordinal)) < middle.index(
                ("checkpoint_consumed", ordinal)
            )


async def test_a_runtime_not_started_yet_tells_clients_to_ask_again() -> None:
    """A node answers requests from the moment it is connected; its runtime may start a moment
    later. A client asking in between is told to retry, not that the op is unknown."""
    from raftoral_lab.cli.run import RETRYABLE
    from raftoral_lab.node import Node
    from raftoral_lab.transport.memory import MemoryNetwork
    from raftoral_lab.workflow import WorkflowRuntime, WorkflowStateMachine

    app = WorkflowApp()

    @app.workflow("w")
    async def w(ctx: WorkflowContext) -> int:
        return 1

    node = Node(1, MemoryNetwork().transport(1), voters=[1], state_machine=WorkflowStateMachine())
    runtime = WorkflowRuntime(node, app)
    answer = await runtime.serve("workflow.start", {"name": "w", "version": 1})
    assert answer["error"] in RETRYABLE, answer
    assert "starting" in answer["message"]
