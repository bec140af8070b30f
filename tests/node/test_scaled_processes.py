"""Scaling out with node processes (issue 9, item 5): three founders and three joiners, each a
`raftoral-lab node --execution-cluster-size 3` process on a private Mosquitto. The management
group keeps three voters; the joiners first grow the execution cluster, then split it in two.
Workflows started through any node run in both clusters, and a `kill -9` of a member of one
cluster stops none of them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.cli.run import workflow_call, workflow_result
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.samples import expected_ten_steps
from raftoral_lab.scale import workflow_cluster
from raftoral_lab.transport.mosquitto import MosquittoProcess

from . import support
from .support import NodeProcess, agreed_leader, explained, make_client, node_status, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

FOUNDERS = (1, 2, 3)
SCALED = ("--app", "raftoral_lab.samples:app", "--execution-cluster-size", "3",
          "--management-voters", "3")  # fmt: skip
WORKFLOWS = 40
DEADLINE = 120.0


async def cluster_statuses(
    client: ClusterClient, nodes: range, cluster: int
) -> dict[int, dict[str, Any] | None]:
    answers: dict[int, dict[str, Any] | None] = {}
    for node in nodes:
        try:
            reply = await client.call(node, "status", timeout=1.0, group=cluster)
        except TimeoutError:
            answers[node] = None
            continue
        answers[node] = reply.get("result") if reply.get("ok") else None
    return answers


async def members_of(client: ClusterClient, cluster: int) -> set[int]:
    """The voters of an execution group, as its leader reports them (empty if none leads)."""
    seen = await cluster_statuses(client, range(1, 7), cluster)
    for status in seen.values():
        if status is not None and status["role"] == "leader":
            return set(status["voters"])
    return set()


async def test_processes_grow_then_split_an_execution_cluster_and_survive_a_kill(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    founders = [support.founder(mosquitto.url, tmp_path, i, FOUNDERS, *SCALED) for i in FOUNDERS]
    processes.extend(founders)
    for process in founders:
        process.start()
    with explained(processes):
        async with make_client(mosquitto.url) as client:
            await agreed_leader(client, FOUNDERS, timeout=30)
            await wait_until(
                lambda: members_of(client, 1),
                timeout=30,
                what="execution cluster 1 to form with a leader",
            )
            for n in range(3):  # one at a time, so each joiner gets the next id (4, 5, 6)
                joiner = NodeProcess(
                    f"joiner{n}", mosquitto.url, tmp_path / f"joiner{n}", "--join", *SCALED
                )
                processes.append(joiner.start())
                await wait_until(
                    lambda j=joiner: j.node_id, timeout=30, what=f"joiner {n} to get an id"
                )

            async def split() -> bool:
                first, second = await members_of(client, 1), await members_of(client, 2)
                return first == {1, 2, 3} and second == {4, 5, 6}

            await wait_until(split, timeout=60, what="clusters {1,2,3} and {4,5,6}")
            management = await node_status(client, 1)
            assert management is not None
            assert set(management["voters"]) == {1, 2, 3}, management
            assert set(management["learners"]) == {4, 5, 6}, management

            deadline = time.monotonic() + DEADLINE
            started: dict[str, int] = {}
            for i in range(WORKFLOWS):
                answer, _ = await workflow_call(
                    client,
                    "workflow.start",
                    deadline=deadline,
                    prefer=1 + i % 6,  # through every node, member of the cluster or not
                    name="ten_steps",
                    version=1,
                    input=i,
                )
                started[str(answer["workflow_id"])] = i
            spread = Counter(workflow_cluster(w) for w in started)
            # round-robin per node that places: both clusters get a fair share
            assert set(spread) == {1, 2} and min(spread.values()) >= WORKFLOWS // 4, spread

            processes[4].kill9()  # node 5, a member of cluster 2
            outcomes = await asyncio.gather(
                *(workflow_result(client, w, deadline=deadline, prefer=1) for w in started)
            )
            for (workflow_id, i), outcome in zip(started.items(), outcomes, strict=True):
                assert outcome == {"status": "completed", "result": expected_ten_steps(i)}, (
                    workflow_id,
                    outcome,
                )
