"""`Lab`: an in-process cluster with the teaching controls (issue 5 item 4, DESIGN section 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftoral_lab.errors import ConfigError, NodeError
from raftoral_lab.lab import Lab

BROKERS = ["memory", None]  # None: the embedded broker


def commands(lab: Lab, node: int) -> list[bytes]:
    return list(lab.node(node).group().state_machine.commands)  # type: ignore[attr-defined]


async def converged(lab: Lab, timeout: float = 10.0) -> list[bytes]:
    """Wait until every running node applied the same commands; return them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        logs = {tuple(commands(lab, n)) for n in lab.alive()}
        if len(logs) == 1:
            return list(logs.pop())
        assert asyncio.get_running_loop().time() < deadline, f"logs still differ: {logs}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("broker", BROKERS, ids=["memory", "embedded"])
async def test_kill_restart_join_and_partition(broker: str | None) -> None:
    async with Lab(nodes=3, broker=broker, tick_seconds=0.02, compact_every=20) as lab:
        leader = await lab.wait_for_leader()
        for i in range(40):
            await lab.propose(b"a%d" % i)
        await lab.kill(leader)
        successor = await lab.wait_for_leader(exclude={leader})
        await lab.propose(b"after kill")
        await lab.restart(leader)
        joined = await lab.join()
        assert joined == 4
        await lab.propose(b"after join")
        history = await converged(lab)
        assert history[:40] == [b"a%d" % i for i in range(40)]
        assert history[40:] == [b"after kill", b"after join"]
        kinds = {e.kind for e in lab.events}
        assert {"node_crashed", "node_restarted", "node_joined", "snapshot_installed"} <= kinds

        others = set(lab.alive()) - {successor}
        await lab.partition({successor}, others)
        minority_commit = lab.node(successor).status().commit_index
        majority = await lab.wait_for_leader(exclude={successor})
        await lab.propose(b"majority side", node=majority)
        assert lab.node(successor).status().commit_index == minority_commit
        await lab.heal()
        history = await converged(lab)
        assert history[-1] == b"majority side"


async def test_remove_the_leader_then_the_rest_carries_on() -> None:
    async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
        leader = await lab.wait_for_leader()
        await lab.remove(leader)
        assert not lab.node(leader).running
        new = await lab.wait_for_leader(exclude={leader})
        assert leader not in lab.node(new).status().voters
        await lab.propose(b"two voters left")
        assert (await converged(lab))[-1] == b"two voters left"
        with pytest.raises(NodeError, match="was removed"):
            await lab.restart(leader)


async def test_misuse_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="nodes must be a whole number from 1"):
        Lab(nodes=0)
    lab = Lab(nodes=1, broker="memory", tick_seconds=0.02)
    with pytest.raises(NodeError, match="not started"):
        await lab.join()
    async with lab:
        await lab.wait_for_leader()
        with pytest.raises(ConfigError, match="no node 9"):
            await lab.kill(9)
        with pytest.raises(NodeError, match="kill it first"):
            await lab.restart(1)
        with pytest.raises(ConfigError, match="two partition sides"):
            await lab.partition({1}, {1})
        await lab.kill(1)
        with pytest.raises(NodeError, match="not running"):
            await lab.kill(1)


async def test_a_lab_with_a_secret_signs_everything_and_refuses_a_weak_one() -> None:
    with pytest.raises(ConfigError, match="token_hex"):
        Lab(nodes=3, broker="memory", secret="short")
    secret = "an example cluster secret of enough length"
    async with Lab(nodes=3, broker="memory", tick_seconds=0.02, secret=secret) as lab:
        await lab.wait_for_leader()
        await lab.propose(b"signed")
        assert (await converged(lab))[-1] == b"signed"
        assert all(
            lab.node(n).transport.stats.dropped.get("bad_signature", 0) == 0 for n in lab.alive()
        )


async def test_events_are_published_recorded_and_replayable(tmp_path: Path) -> None:
    from raftoral_lab.events import ClusterView, load

    path = tmp_path / "run.jsonl"
    async with Lab(nodes=3, broker="memory", tick_seconds=0.02, record=path) as lab:
        leader = await lab.wait_for_leader()
        await lab.propose(b"x")
        await converged(lab)
        published = sum(p.published for p in lab._publishers.values())
        assert published > 0
        frame = lab.events.to_dataframe()
        assert {"kind", "node", "term"} <= set(frame.columns)
    recording = load(path)
    assert recording.header.cluster == "lab"
    assert len(recording.events) == len(lab.events)
    assert ClusterView(recording.events).leader() == leader


async def test_a_lab_reports_its_messages_so_the_dashboard_has_rates() -> None:
    from raftoral_lab.events import ClusterView

    async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
        leader = await lab.wait_for_leader()
        await lab.propose(b"x")
        await asyncio.sleep(0.2)
        view = ClusterView(list(lab.events))
        followers = [n for n in (1, 2, 3) if n != leader]
        for follower in followers:
            assert view.links[(leader, follower)] > 0, view.links
        assert view.messages["append_entries"].delivered > 0
    quiet = Lab(nodes=3, broker="memory", tick_seconds=0.02, message_events=False)
    async with quiet:
        await quiet.wait_for_leader()
        await asyncio.sleep(0.2)
        assert not [e for e in quiet.events if e.kind in ("message_sent", "message_delivered")]


async def test_a_lab_that_fails_to_start_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`async with` runs no __aexit__ when start raises: start itself must stop what it began."""
    real = Lab._start_node

    async def second_node_fails(self: Lab, node_id: int, voters: list[int] | None) -> object:
        if node_id == 2:
            raise NodeError("node 2 could not start")
        return await real(self, node_id, voters)

    monkeypatch.setattr(Lab, "_start_node", second_node_fails)
    lab = Lab(nodes=3, broker="memory", tick_seconds=0.02)
    with pytest.raises(NodeError, match="node 2 could not start"):
        async with lab:
            pass
    assert lab.nodes and not lab.alive()
