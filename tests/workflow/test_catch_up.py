"""Catching up: a node that joins mid-workflow (through the log, or through a snapshot of a
compacted log) runs the workflow from the committed queue, computes none of it, and reaches
the same result; a node that was cut off while the run ended settles from the snapshot."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from .conftest import ClusterFactory
from .support import (
    HALFWAY_OPS,
    STEPS,
    TIMEOUT,
    finish_on,
    per_step,
    start_and_reach_halfway,
    steps_app,
    wait_until,
)


@pytest.mark.parametrize("path", ["log", "snapshot"])
async def test_a_node_joining_mid_workflow_uses_the_queue(
    make_cluster: ClusterFactory, path: str
) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    compact_every = 8 if path == "snapshot" else None
    cluster = await make_cluster(3, steps_app(calls, halfway), compact_every=compact_every)
    await start_and_reach_halfway(cluster, "j")
    computed = sum(calls.values())

    joiner = await cluster.join()
    await wait_until(
        lambda: cluster.runs_consumed(joiner, "j") == HALFWAY_OPS,
        what="the joiner to catch up to the halfway point",
        detail=lambda: cluster.runs_consumed(joiner, "j"),
    )
    assert sum(calls.values()) == computed, "catching up computed nothing"
    installed = [e.index for e in cluster.events_of("snapshot_installed", node=joiner)]  # type: ignore[attr-defined]
    if path == "snapshot":
        start_index = cluster.runtimes[1].get_workflow("j").started_index
        assert installed and max(installed) > start_index, "the run came in a snapshot"
    else:
        assert installed == [1], "only the bootstrap membership came as a snapshot"

    halfway.set()
    await finish_on(cluster, [1, 2, 3, joiner], "j")
    assert cluster.run(joiner, "j").computations == 0
    assert not [step for node, step in calls if node == joiner]
    assert per_step(calls) == Counter(range(STEPS))


async def test_a_cut_off_node_settles_from_a_snapshot_that_ended_its_run(
    make_cluster: ClusterFactory,
) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    halfway = asyncio.Event()
    cluster = await make_cluster(3, steps_app(calls, halfway), compact_every=8)
    owner = await start_and_reach_halfway(cluster, "cut")
    follower = next(n for n in (1, 2, 3) if n != owner)
    cluster.network.isolate(follower)
    halfway.set()
    await finish_on(cluster, [n for n in (1, 2, 3) if n != follower], "cut")
    assert cluster.run(follower, "cut").consumed == HALFWAY_OPS  # stuck behind the cut
    # more entries, so that the leader's latest snapshot lies after the end of "cut"
    leader = await cluster.wait_for_leader()
    more = await cluster.runtimes[leader].start_workflow("steps", 1, 6, workflow_id="more")
    assert await more.result(TIMEOUT) == sum(i * i for i in range(6))
    ended = cluster.runtimes[leader].get_workflow("cut").ended_index
    assert ended is not None
    cluster.network.heal()
    await finish_on(cluster, [follower], "cut")
    installed = [e.index for e in cluster.events_of("snapshot_installed", node=follower)]  # type: ignore[attr-defined]
    assert max(installed) > ended, "the snapshot ended the run the follower was in"
    assert cluster.run(follower, "cut").computations == 0
