"""Node processes on a private Mosquitto, beyond test_processes.py: a `crash` control ends a
`raftoral-lab node` process at once (exit status 1, the broker's last will), and the others
go on; restarted from its data directory the node starts from at least the term and log it had
on disk; and `raftoral-lab status` prints what the nodes answer to `status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.node.client import ClusterClient
from raftoral_lab.storage import SQLiteStorage
from raftoral_lab.transport.mosquitto import MosquittoProcess

from .support import (
    NodeProcess,
    agreed_leader,
    caught_up,
    explained,
    founder,
    make_client,
    node_status,
    status_command,
    statuses,
    wait_until,
)

pytestmark = pytest.mark.mosquitto

FOUNDERS = (1, 2, 3)


def start_founders(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> dict[int, NodeProcess]:
    nodes = {i: founder(mosquitto.url, tmp_path, i, FOUNDERS) for i in FOUNDERS}
    processes.extend(nodes.values())
    for process in nodes.values():
        process.start()
    return nodes


async def propose_many(client: ClusterClient, prefix: str, count: int) -> int:
    """Propose `count` commands through the client; the last one's log index."""
    index = 0
    for i in range(count):
        result = await client.propose(f"{prefix} {i}".encode(), timeout=20)
        assert isinstance(result, int) and result > index, (result, index)
        index = result
    return index


def first_state_loaded(recording: Path) -> dict[str, Any] | None:
    """The first `state_loaded` event of group 0 in a recording being written, if any yet."""
    try:
        lines = recording.read_text().splitlines()
    except OSError:
        return None
    for line in lines[1:]:  # the first line is the header
        try:
            event = json.loads(line)
        except ValueError:  # a line being written
            continue
        if event.get("kind") == "state_loaded" and event.get("group") == 0:
            return dict(event)
    return None


async def test_a_crash_control_ends_the_process_and_a_restart_resumes_its_state(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    nodes = start_founders(mosquitto, tmp_path, processes)
    with explained(processes):
        async with make_client(mosquitto.url) as client:
            leader = await agreed_leader(client, FOUNDERS)
            last = await propose_many(client, "before the crash", 10)
            await caught_up(client, FOUNDERS, at_least=last)

            # `crash` on the leader's control topic: the process ends at once, with status 1
            crash = json.dumps({"v": 1, "op": "crash"})
            await client.transport.publish(f"node/{leader}/control", crash, qos=1)
            assert await nodes[leader].wait_exit(10) == 1
            assert f"node {leader}: stopped" not in nodes[leader].output()  # no clean stop
            await wait_until(  # it said no goodbye: the broker published its last will
                lambda: client.presence.get(leader, {}).get("reason") == "connection lost",
                timeout=10,
                what=f"the last will of node {leader}",
                detail=lambda: client.presence,
            )
            assert client.presence[leader]["alive"] is False
            assert leader not in client.alive()

            # the other two elect a leader of their own and go on committing
            survivors = [n for n in FOUNDERS if n != leader]
            await agreed_leader(client, survivors, not_=leader)
            last = await propose_many(client, "after the crash", 10)
            committed = await caught_up(client, survivors, at_least=last)

            # what the crashed node has on disk...
            storage = SQLiteStorage(nodes[leader].data_dir / "raft.db")
            try:
                durable = storage.load().hard_state
                stored_last = storage.last_index
            finally:
                storage.close()
            assert durable.term >= 1 and stored_last >= 10, (durable, stored_last)

            # ...is where it starts from after a restart (or later, if a message came first)
            recording = tmp_path / "restart.jsonl"
            nodes[leader].start("--record", str(recording))
            loaded = await wait_until(
                lambda: first_state_loaded(recording),
                timeout=20,
                what=f"node {leader} to report the state it loaded",
            )
            assert loaded["node"] == leader
            assert loaded["term"] >= durable.term, (loaded, durable)
            assert loaded["last_index"] >= stored_last, (loaded, stored_last)
            assert loaded["voters"] == list(FOUNDERS), loaded
            assert "restarted from its data directory" in nodes[leader].output()
            await caught_up(client, FOUNDERS, at_least=committed)
            back = await node_status(client, leader)
            assert back is not None and back["term"] >= durable.term, back


async def status_table(mosquitto: MosquittoProcess) -> dict[int, dict[str, str]]:
    """`raftoral-lab status` for the test's cluster, as {node: {column: cell}}."""
    text = await status_command(mosquitto.url)
    lines = text.splitlines()
    (header_at,) = (i for i, line in enumerate(lines) if line.split()[:2] == ["node", "role"])
    header = lines[header_at].split()
    rows = [line.split() for line in lines[header_at + 2 :] if line.strip()]
    table = {int(row[0]): dict(zip(header, row, strict=True)) for row in rows}
    assert sorted(table) == list(FOUNDERS), text
    return table


def numbers(cell: str) -> int:
    return int(cell.replace(",", ""))  # the table writes 1,234


async def test_the_status_table_shows_what_the_nodes_answer(
    mosquitto: MosquittoProcess, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    start_founders(mosquitto, tmp_path, processes)
    with explained(processes):
        async with make_client(mosquitto.url) as client:
            await agreed_leader(client, FOUNDERS)
            last = await propose_many(client, "shown", 12)
            await caught_up(client, FOUNDERS, at_least=last)

            keys = ("role", "term", "leader", "commit_index", "applied_index", "last_index")

            def picture(seen: dict[int, dict[str, Any] | None]) -> dict[int, tuple[Any, ...]]:
                assert all(s is not None for s in seen.values()), seen
                return {n: tuple(s[k] for k in keys) for n, s in seen.items() if s is not None}

            # a quiet cluster: the answers before and after the table must agree, else again
            for _ in range(5):
                before = picture(await statuses(client, FOUNDERS))
                table = await status_table(mosquitto)
                after = picture(await statuses(client, FOUNDERS))
                if before == after:
                    break
            else:
                pytest.fail(f"the cluster never stood still: {before} then {after}")

            for node, (role, term, named, commit, applied, last_index) in after.items():
                row = table[node]
                assert row["role"] == role, (node, row, after[node])
                assert numbers(row["term"]) == term, (node, row, after[node])
                assert numbers(row["commit"]) == commit >= last, (node, row, after[node])
                assert numbers(row["applied"]) == applied == commit, (node, row, after[node])
                assert numbers(row["last"]) == last_index, (node, row, after[node])
                assert row["leader"] == str(named), (node, row, after[node])
                assert row["voters"] == "1,2,3" and row["learners"] == "-", row
            assert len({row["leader"] for row in table.values()}) == 1, table
            assert [row["role"] for row in table.values()].count("leader") == 1, table
