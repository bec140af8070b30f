"""Node processes run a user's workflows (issue 5, item 5): three `raftoral-lab node --app
raftoral_lab.samples:app` processes on a private Mosquitto run 200 workflows, started by a
client many at a time, while the leader is killed with `kill -9` twice (and restarted from its
data directory each time). Every workflow completes once, with the right output."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.cli.run import RemoteWorkflowError, workflow_call, workflow_result
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.samples import Order, expected_receipt, expected_ten_steps
from raftoral_lab.transport.mosquitto import MosquittoProcess

from . import support
from .support import NodeProcess, agreed_leader, caught_up, explained, make_client, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

FOUNDERS = (1, 2, 3)
APP = ("--app", "raftoral_lab.samples:app")
WORKFLOWS = 200
IN_FLIGHT = 25
KILL_AFTER = (40, 110)
"""Kill the leader once this many workflows have completed (each number: one kill)."""
ITEMS = ("book", "pen", "lamp")
DEADLINE = 180.0


def founder(mosquitto: MosquittoProcess, tmp_path: Path, node_id: int) -> NodeProcess:
    return support.founder(
        mosquitto.url, tmp_path, node_id, FOUNDERS, "--compact-every", "300", *APP
    )


def job(i: int) -> tuple[str, int, Any, Any]:
    """(name, version, input, expected output as JSON) of workflow number i."""
    if i % 2 == 0:
        return "ten_steps", 1, i, expected_ten_steps(i)
    order = Order(order_id=f"order-{i}", item=ITEMS[i % 3], quantity=1 + i % 4)
    return "process_order", 1, order.model_dump(), expected_receipt(order).model_dump()


async def registered(client: ClusterClient) -> bool:
    """Whether a start is accepted (every node registers its workflows after it starts)."""
    deadline = time.monotonic() + 10
    try:
        await workflow_call(
            client,
            "workflow.start",
            deadline=deadline,
            name="ten_steps",
            version=1,
            input=0,
            workflow_id="warm-up",
        )
        answer = await workflow_result(client, "warm-up", deadline=deadline)
    except (RemoteWorkflowError, TimeoutError):
        return False
    return answer.get("status") == "completed"


async def test_two_hundred_workflows_survive_two_leader_kills(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    nodes = {i: founder(mosquitto, tmp_path, i) for i in FOUNDERS}
    processes.extend(nodes.values())
    for process in nodes.values():
        process.start()
    with explained(processes):
        async with make_client(mosquitto.url) as client:
            await agreed_leader(client, FOUNDERS, timeout=30)
            await wait_until(
                lambda: registered(client), timeout=60, what="the sample workflows to run"
            )

            results: dict[str, dict[str, Any]] = {}
            gate = asyncio.Semaphore(IN_FLIGHT)
            deadline = time.monotonic() + DEADLINE

            async def one(i: int) -> None:
                name, version, value, _ = job(i)
                workflow_id = f"wf-{i:03d}"
                async with gate:
                    _, node = await workflow_call(
                        client,
                        "workflow.start",
                        deadline=deadline,
                        name=name,
                        version=version,
                        input=value,
                        workflow_id=workflow_id,
                    )
                    results[workflow_id] = await workflow_result(
                        client, workflow_id, deadline=deadline, prefer=node
                    )

            killed: list[int] = []

            async def killer() -> None:
                for threshold in KILL_AFTER:
                    await wait_until(
                        lambda t=threshold: len(results) >= t,
                        timeout=DEADLINE,
                        what=f"{threshold} workflows to complete",
                        detail=lambda: len(results),
                    )
                    leader = await agreed_leader(client, FOUNDERS, timeout=30)
                    nodes[leader].kill9()
                    killed.append(leader)
                    others = [n for n in FOUNDERS if n != leader]
                    await agreed_leader(client, others, timeout=30, not_=leader)
                    nodes[leader].start()  # from its data directory

            await asyncio.gather(killer(), *(one(i) for i in range(WORKFLOWS)))

            assert len(killed) == 2
            for i in range(WORKFLOWS):
                expected = job(i)[3]
                outcome = results[f"wf-{i:03d}"]
                assert outcome == {"status": "completed", "result": expected}, (i, outcome)

            # every node's state: each id once, completed, with the right result
            await caught_up(client, FOUNDERS, timeout=60)
            for node in FOUNDERS:
                reply = await client.call(node, "workflow.list", timeout=10)
                assert reply.get("ok"), reply
                listed = [w for w in reply["result"]["workflows"] if w["workflow_id"] != "warm-up"]
                ids = [w["workflow_id"] for w in listed]
                assert len(ids) == WORKFLOWS == len(set(ids)), (node, len(ids), len(set(ids)))
                for info in listed:
                    i = int(info["workflow_id"].removeprefix("wf-"))
                    name, version, _, expected = job(i)
                    assert (info["name"], info["version"]) == (name, version), info
                    assert info["status"] == "completed", (node, info)
                    assert info["result"] == expected, (node, info)
                    assert info["error"] is None, (node, info)
                reply = await client.call(node, "workflow.get", timeout=10, workflow_id="wf-007")
                assert reply["result"]["status"] == "completed", reply
                assert reply["result"]["result"] == job(7)[3], reply
