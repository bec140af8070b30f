"""Node processes run a user's workflows (issue 5, item 5): three `raftoral-lab node --app
raftoral_lab.samples:app` processes on a private Mosquitto run 200 workflows, started by a
client many at a time, while the leader is killed with `kill -9` twice (and restarted from its
data directory each time). Every workflow completes once, with the right output: each node
records its events (`--record`, one file per process run) and none may start or complete an id
twice, and each node's durable log, replayed, starts and ends every id exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.chaos.checks import check_workflows, read_logs, replay
from raftoral_lab.chaos.workload import Expected, Job
from raftoral_lab.cli.run import RemoteWorkflowError, workflow_call, workflow_result
from raftoral_lab.events import EventBase
from raftoral_lab.events.recording import load
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


def start(process: NodeProcess, tmp_path: Path) -> None:
    """Start (or restart) `process`, recording its events to a new file for this run."""
    process.start("--record", str(recording(tmp_path, process.name, process.runs + 1)))


def recording(tmp_path: Path, name: str, run: int) -> Path:
    return tmp_path / f"{name}-run{run}.jsonl"


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
        start(process, tmp_path)
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
                        lambda t=threshold: len(results) >= t,  # type: ignore[misc]
                        timeout=DEADLINE,
                        what=f"{threshold} workflows to complete",
                        detail=lambda: len(results),
                    )
                    leader = await agreed_leader(client, FOUNDERS, timeout=30)
                    nodes[leader].kill9()
                    killed.append(leader)
                    others = [n for n in FOUNDERS if n != leader]
                    await agreed_leader(client, others, timeout=30, not_=leader)
                    start(nodes[leader], tmp_path)  # from its data directory

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

            # none twice: stop the nodes, then read what they recorded and made durable
            for process in nodes.values():
                process.signal(signal.SIGTERM)
            for process in nodes.values():
                await process.wait_exit(30)
        every_id = {"warm-up"} | {f"wf-{i:03d}" for i in range(WORKFLOWS)}
        assert_recorded_once(tmp_path, nodes, every_id)
        assert_durable_logs_run_each_once(nodes)


def assert_recorded_once(tmp_path: Path, nodes: dict[int, NodeProcess], ids: set[str]) -> None:
    """A process applies each committed entry once, so within one recording an id started or
    completed twice is a workflow that ran twice (a restarted process applies again what came
    after its snapshot: that is why the count is per recording). Every id was started and
    completed somewhere, nothing failed, and a node that ran once from the first entry to the
    last without installing a snapshot saw every id start and complete exactly once."""
    started_anywhere: set[str] = set()
    completed_anywhere: set[str] = set()
    for node, process in nodes.items():
        for run in range(1, process.runs + 1):
            path = recording(tmp_path, process.name, run)
            events = load(path).events
            where = f"node {node}, run {run} ({path.name})"
            started = Counter(workflow_ids(events, "workflow_started"))
            completed = Counter(workflow_ids(events, "workflow_completed"))
            assert max(started.values(), default=0) <= 1, (where, started.most_common(3))
            assert max(completed.values(), default=0) <= 1, (where, completed.most_common(3))
            other = workflow_ids(events, "workflow_failed") + workflow_ids(
                events, "workflow_cancelled"
            )
            assert not other, (where, "ended otherwise", other[:5])
            started_anywhere |= set(started)
            completed_anywhere |= set(completed)
            whole = process.runs == 1 and not any(e.kind == "snapshot_installed" for e in events)
            if whole:
                assert set(started) == set(completed) == ids, (where, len(started), len(completed))
    assert started_anywhere == ids, sorted(started_anywhere ^ ids)[:5]
    assert completed_anywhere == ids, sorted(completed_anywhere ^ ids)[:5]


def workflow_ids(events: Iterable[EventBase], kind: str) -> list[str]:
    return [str(getattr(e, "workflow_id", None)) for e in events if e.kind == kind]


def assert_durable_logs_run_each_once(nodes: dict[int, NodeProcess]) -> None:
    """Every node's snapshot and committed entries, applied to a fresh state machine, start
    and end every id exactly once, with the expected result, and nothing else."""
    logs, problems = read_logs({node: process.data_dir for node, process in nodes.items()})
    assert not problems, problems
    assert len(logs) == len(nodes)
    warm_up = Expected("completed", expected_ten_steps(0))
    jobs = {"warm-up": Job("warm-up", "ten_steps", 1, 0, warm_up)}
    for i in range(WORKFLOWS):
        name, version, value, expected = job(i)
        workflow_id = f"wf-{i:03d}"
        jobs[workflow_id] = Job(workflow_id, name, version, value, Expected("completed", expected))
    replays = [replay(log) for log in logs]
    problems = check_workflows(jobs, replays, acknowledged=jobs)
    assert not problems, problems[:10]
    for replayed in replays:
        assert set(replayed.starts) == set(jobs), replayed.node
        assert max(replayed.starts.values()) == 1, replayed.node
        assert all(len(replayed.endings[w]) == 1 for w in jobs), replayed.node
