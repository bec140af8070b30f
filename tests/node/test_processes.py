"""Node processes on a private Mosquitto (issue 4, part 2): `raftoral-lab node` as children of
the test, a client that proposes, `kill -9` of the leader, a restart from the data directory,
a fourth node that joins (by snapshot) while proposals flow, and Ctrl-C that leaves cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from raftoral_lab.node.client import ClusterClient
from raftoral_lab.transport.mosquitto import MosquittoProcess

from . import support
from .support import (
    NodeProcess,
    agreed_leader,
    caught_up,
    explained,
    make_client,
    node_status,
    status_command,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.mosquitto

FOUNDERS = (1, 2, 3)
COMPACT = ("--compact-every", "50")


def founder(mosquitto: MosquittoProcess, tmp_path: Path, node_id: int) -> NodeProcess:
    return support.founder(mosquitto.url, tmp_path, node_id, FOUNDERS, *COMPACT)


@contextlib.asynccontextmanager
async def client_of(mosquitto: MosquittoProcess) -> AsyncIterator[ClusterClient]:
    async with make_client(mosquitto.url) as client:
        yield client


async def propose_many(client: ClusterClient, prefix: str, count: int) -> int:
    """Propose `count` commands through the client; the last one's log index."""
    index = 0
    for i in range(count):
        result = await client.propose(f"{prefix} {i}".encode(), timeout=20)
        assert isinstance(result, int), result
        assert result > index, (result, index)
        index = result
    return index


async def test_kill_restart_and_join_of_node_processes(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    nodes = {i: founder(mosquitto, tmp_path, i) for i in FOUNDERS}
    processes.extend(nodes.values())
    for process in nodes.values():
        process.start()

    with explained(processes):
        async with client_of(mosquitto) as client:
            await wait_until(
                lambda: set(client.alive()) >= set(FOUNDERS),
                timeout=20,
                what="the three founders to announce themselves",
                detail=lambda: client.presence,
            )
            leader = await agreed_leader(client, FOUNDERS)
            last = await propose_many(client, "before the crash", 30)
            await caught_up(client, FOUNDERS, at_least=last)

            # kill -9 the leader: the two others elect a new one and go on committing
            nodes[leader].kill9()
            await wait_until(  # the broker publishes the dead node's last will
                lambda: client.presence.get(leader, {}).get("reason") == "connection lost",
                timeout=20,
                what=f"the last will of node {leader}",
                detail=lambda: client.presence,
            )
            assert leader not in client.alive()
            survivors = [n for n in FOUNDERS if n != leader]
            new_leader = await agreed_leader(client, survivors, not_=leader)
            assert new_leader != leader
            last = await propose_many(client, "after the crash", 30)
            committed = await caught_up(client, survivors, at_least=last)

            # the killed node restarts from its data directory and catches up
            nodes[leader].start()
            await wait_until(
                lambda: "restarted from its data directory" in nodes[leader].output(),
                timeout=20,
                what=f"node {leader} to restart from its data directory",
            )
            await caught_up(client, FOUNDERS, at_least=committed)
            restarted = await node_status(client, leader)
            assert restarted is not None and restarted["voters"] == list(FOUNDERS), restarted

            # a fourth node joins while proposals flow; it must catch up by snapshot
            flowing = asyncio.Event()
            stop_flow = asyncio.Event()
            proposed: list[int] = []

            async def flow() -> None:
                i = 0
                while not stop_flow.is_set():
                    result = await client.propose(f"during the join {i}".encode(), timeout=20)
                    assert isinstance(result, int)
                    proposed.append(result)
                    i += 1
                    if i >= 5:
                        flowing.set()

            flow_task = asyncio.create_task(flow())
            try:
                await asyncio.wait_for(flowing.wait(), 30)
                joiner = NodeProcess(
                    "joiner", mosquitto.url, tmp_path / "joiner", "--join", *COMPACT
                )
                processes.append(joiner)
                joiner.start()
                joiner_id = await wait_until(
                    lambda: joiner.node_id, timeout=30, what="the joiner to get its node id"
                )
                assert joiner_id not in FOUNDERS

                async def promoted() -> bool:
                    status = await node_status(client, joiner_id)
                    return status is not None and joiner_id in status["voters"]

                await wait_until(promoted, timeout=30, what=f"node {joiner_id} to become a voter")
                # proposals kept committing all along
                count = len(proposed)
                await wait_until(
                    lambda: len(proposed) >= count + 5,
                    timeout=30,
                    what="proposals to commit after the join",
                )
            finally:
                stop_flow.set()
                await asyncio.wait_for(flow_task, 30)

            everyone = [*FOUNDERS, joiner_id]
            committed = await caught_up(client, everyone, at_least=proposed[-1])
            joined = await node_status(client, joiner_id)
            assert joined is not None and joined["voters"] == sorted(everyone), joined
            installs = [
                int(m.group(1))
                for m in re.finditer(r"snapshot_installed index=(\d+)", joiner.output())
            ]
            assert installs and max(installs) > 1, f"no snapshot beyond the bootstrap: {installs}"
            assert joined["first_index"] > 2, joined  # its log starts after a snapshot

            # the joiner, restarted from its data directory, keeps its id
            joiner.kill9()
            joiner.start()
            await caught_up(client, everyone, at_least=committed)
            assert joiner.node_id == joiner_id


async def test_ctrl_c_removes_a_node_from_the_voters(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    nodes = {i: founder(mosquitto, tmp_path, i) for i in FOUNDERS}
    processes.extend(nodes.values())
    for process in nodes.values():
        process.start()

    with explained(processes):
        async with client_of(mosquitto) as client:
            leader = await agreed_leader(client, FOUNDERS)
            last = await propose_many(client, "before ctrl-c", 10)
            await caught_up(client, FOUNDERS, at_least=last)

            # `raftoral-lab status` shows the same picture
            table = await status_command(mosquitto.url)
            rows = [line.split() for line in table.splitlines()]
            roles = {int(r[0]): r[1] for r in rows if r and r[0].isdigit()}
            assert roles == {n: "leader" if n == leader else "follower" for n in FOUNDERS}, table

            # Ctrl-C on a follower: it removes itself through the log, then exits
            follower = next(n for n in FOUNDERS if n != leader)
            nodes[follower].signal(signal.SIGINT)
            assert await nodes[follower].wait_exit(30) == 0
            assert "leaving the cluster" in nodes[follower].output()
            assert "could not leave" not in nodes[follower].output()
            rest = [n for n in FOUNDERS if n != follower]
            seen = await statuses(client, rest)
            assert all(s is not None and s["voters"] == rest for s in seen.values()), seen

            # Ctrl-C on the leader: it removes itself too and hands leadership over
            nodes[leader].signal(signal.SIGINT)
            assert await nodes[leader].wait_exit(30) == 0
            assert "could not leave" not in nodes[leader].output()
            (last_one,) = (n for n in rest if n != leader)
            status = await wait_until(
                lambda: node_status(client, last_one),
                timeout=10,
                what=f"node {last_one} to answer",
            )
            assert status["voters"] == [last_one], status
            # alone now, it leads and commits by itself
            await agreed_leader(client, [last_one])
            last = await propose_many(client, "after ctrl-c", 5)
            await caught_up(client, [last_one], at_least=last)
