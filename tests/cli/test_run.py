"""`raftoral-lab run` (a client that starts a workflow and prints its result) against an
in-process Lab on its embedded broker, and `raftoral-lab node --app` spec errors."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from raftoral_lab import Lab
from raftoral_lab.cli.main import main
from raftoral_lab.cli.node import load_app
from raftoral_lab.errors import ConfigError
from raftoral_lab.samples import Order, app, expected_receipt, expected_ten_steps

CLUSTER = "runtest"


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    async with Lab(nodes=3, app=app, cluster=CLUSTER, tick_seconds=0.02) as lab:
        await lab.wait_for_leader()
        for runtime in lab.runtimes.values():  # registrations committed
            await runtime.start()
        yield lab


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "raftoral_lab.cli.main", "run", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def target(lab: Lab) -> tuple[str, ...]:
    return ("--cluster", CLUSTER, "--broker", lab.url, "--timeout", "30")


async def test_run_prints_the_result(lab: Lab) -> None:
    code, out, err = await run_cli("ten_steps", "--version", "1", "--input", "7", *target(lab))
    assert code == 0, err
    assert json.loads(out) == expected_ten_steps(7)


async def test_run_with_a_model_input_and_a_given_id(lab: Lab) -> None:
    order = Order(order_id="A-1", item="lamp", quantity=3)
    code, out, err = await run_cli(
        "process_order", "--version", "1", "--input", order.model_dump_json(),
        "--workflow-id", "order-A-1", *target(lab),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == expected_receipt(order).model_dump()
    assert json.loads(out)["status"] == "out_of_stock"
    info = lab.get_workflow("order-A-1")
    assert info.status.value == "completed"
    # the same id again: the existing run's result, not a second run
    code, again, err = await run_cli(
        "process_order", "--version", "1", "--input", order.model_dump_json(),
        "--workflow-id", "order-A-1", *target(lab),
    )  # fmt: skip
    assert code == 0, err
    assert again == out
    assert [w.workflow_id for w in lab.list_workflows()].count("order-A-1") == 1


async def test_no_wait_prints_the_id(lab: Lab) -> None:
    workflow_id = f"nowait-{uuid.uuid4().hex[:8]}"
    code, out, err = await run_cli(
        "ten_steps", "--version", "1", "--input", "3", "--workflow-id", workflow_id,
        "--no-wait", *target(lab),
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == workflow_id
    run = lab.runtime(lab.leader_id or 1).get_run(workflow_id)
    assert await run.result(timeout=30) == expected_ten_steps(3)


async def test_a_failed_workflow_exits_1_with_the_remote_error(lab: Lab) -> None:
    code, out, err = await run_cli(
        "process_order", "--version", "1", "--input",
        '{"order_id": "B", "item": "unicorn"}', *target(lab),
    )  # fmt: skip
    assert code == 1, (out, err)
    assert out == ""
    assert "failed: LookupError: unknown item 'unicorn'" in err, err


async def test_an_unknown_workflow_is_a_clear_error(lab: Lab) -> None:
    code, out, err = await run_cli("nope", "--version", "4", *target(lab))
    assert code == 2, (out, err)
    assert "UnknownWorkflow" in err and "'nope' version 4 is not registered" in err, err


async def test_an_invalid_input_is_refused_by_the_cluster(lab: Lab) -> None:
    code, out, err = await run_cli(
        "ten_steps", "--version", "1", "--input", '"seven"', *target(lab)
    )
    assert code == 2, (out, err)
    assert "InvalidWorkflowInput" in err, err
    assert lab.list_workflows() == [] or all(w.name != "ten_steps" for w in lab.list_workflows())


async def test_no_cluster_found(lab: Lab) -> None:
    code, out, err = await run_cli(
        "ten_steps", "--version", "1", "--input", "1",
        "--cluster", "nobody-here", "--broker", lab.url, "--timeout", "1",
    )  # fmt: skip
    assert code == 2, (out, err)
    assert "no cluster 'nobody-here' found" in err, err


def test_bad_json_input_fails_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["run", "ten_steps", "--version", "1", "--input", "{oops", "--broker", "mqtt://x:1"]
    )
    assert code == 2
    assert "--input is not JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("raftoral_lab.samples", "takes package.module:attribute"),
        (":app", "takes package.module:attribute"),
        ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
        ("raftoral_lab.samples:nothing", "has no attribute 'nothing'"),
        ("raftoral_lab.samples:STEPS", "is a int, not a WorkflowApp"),
    ],
)
def test_app_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_app(spec)
    assert message in str(caught.value)


def test_app_spec_loads_the_samples() -> None:
    assert load_app("raftoral_lab.samples:app") is app


def test_node_with_a_bad_app_exits_2_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["node", "--bootstrap", "--broker", "mqtt://127.0.0.1:1", "--app", "x.y:z"])
    assert code == 2
    assert "no module named 'x.y'" in capsys.readouterr().err
