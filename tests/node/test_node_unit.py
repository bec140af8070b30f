"""Unit-level behaviour of the node layer (issue 4, part 6): presence-less transports, misuse of
`Node`, proposals that cannot be served, and durable state machines across a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from raftoral_lab.core import Entry, EntryKind, RaftConfig
from raftoral_lab.errors import NodeError, ProposalTimeout
from raftoral_lab.node import Node
from raftoral_lab.node.client import ClusterClient
from raftoral_lab.storage import SQLiteStorage
from raftoral_lab.transport.memory import MemoryNetwork
from raftoral_lab.transport.mosquitto import MosquittoProcess
from raftoral_lab.transport.mqtt import MqttTransport

from .support import CLUSTER, TICK, LocalCluster, commands, wait_until

# --- transports without presence -------------------------------------------------------------


async def test_memory_transport_without_presence_leaves_no_retained_presence_or_will() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    seen: list[tuple[str, bytes]] = []
    observer = network.transport(90)
    await observer.subscribe("presence/+", lambda topic, payload: seen.append((topic, payload)))
    await observer.start()

    quiet = network.transport(7, presence=False)
    await quiet.start()
    assert network.retained("presence/7") is None
    await quiet.abort()  # a crash: a transport with presence would leave its last will
    assert network.retained("presence/7") is None

    quiet_again = network.transport(7, presence=False)
    await quiet_again.start()
    await quiet_again.close()  # and a clean close says no goodbye either
    assert network.retained("presence/7") is None

    # a transport with presence, for contrast: its retained document and last will are there
    loud = network.transport(8)
    await loud.start()
    await loud.abort()
    will = network.retained("presence/8")
    assert will is not None and json.loads(will)["alive"] is False
    await wait_until(
        lambda: any(t == "presence/8" for t, _ in seen), timeout=5, what="the will of node 8"
    )
    assert not [t for t, _ in seen if t == "presence/7"], seen
    await observer.close()


@pytest.mark.mosquitto
async def test_mqtt_transport_without_presence_leaves_no_retained_presence_or_will(
    mosquitto: MosquittoProcess,
) -> None:
    seen: list[tuple[str, bytes]] = []

    def record(topic: str, payload: bytes) -> None:
        seen.append((topic, payload))

    observer = MqttTransport(90, CLUSTER, mosquitto.url, presence=False)
    await observer.subscribe("presence/+", record)
    await observer.start()

    quiet = MqttTransport(7, CLUSTER, mosquitto.url, presence=False)
    await quiet.start()
    await quiet.abort()  # drops the socket without DISCONNECT: the broker would send a will

    # a transport with presence dies the same way after it: its will arrives...
    loud = MqttTransport(8, CLUSTER, mosquitto.url)
    await loud.start()
    await loud.abort()
    await wait_until(
        lambda: any(t == "presence/8" and not json.loads(p)["alive"] for t, p in seen),
        timeout=10,
        what="the last will of node 8",
        detail=lambda: seen,
    )
    # ...and a new subscriber gets every retained presence document: node 8's, none of node 7's
    retained: list[tuple[str, bytes]] = []
    late = MqttTransport(91, CLUSTER, mosquitto.url, presence=False)
    await late.subscribe("presence/+", lambda t, p: retained.append((t, p)))
    await late.start()
    await wait_until(
        lambda: any(t == "presence/8" for t, _ in retained),
        timeout=10,
        what="the retained presence of node 8",
    )
    assert not [t for t, _ in seen + retained if t == "presence/7"], (seen, retained)
    assert [t for t, _ in seen if t == "presence/90"] == []  # the observer announced nothing
    await late.close()
    await observer.close()


async def test_cluster_client_refuses_a_transport_with_presence() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    with pytest.raises(NodeError, match="presence=False"):
        ClusterClient(network.transport(1_000_000_001))
    client = ClusterClient(network.transport(1_000_000_001, presence=False))
    async with client:
        assert network.retained("presence/1000000001") is None


# --- misuse of Node ----------------------------------------------------------------------------


def test_node_rejects_the_transport_of_another_node() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    with pytest.raises(NodeError, match="transport of node 2"):
        Node(1, network.transport(2), voters=[1])


async def test_propose_on_a_node_that_is_not_running_raises_node_error() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    node = Node(1, network.transport(1), voters=[1], tick_seconds=TICK)
    with pytest.raises(NodeError, match="not running"):
        await node.propose(b"never started")

    await node.start()
    await node.wait_for_leader(timeout=10)
    assert isinstance(await node.propose(b"while running", timeout=10), int)
    await node.stop()
    with pytest.raises(NodeError, match="not running"):
        await node.propose(b"after stop")


async def test_a_waiting_proposal_fails_with_node_error_when_the_node_stops() -> None:
    """No leader known: the proposal waits for one; a stop ends the wait with NodeError."""
    network = MemoryNetwork(cluster=CLUSTER)
    node = Node(1, network.transport(1), voters=[1, 2, 3], tick_seconds=TICK)  # alone: no leader
    await node.start()
    pending = asyncio.ensure_future(node.propose(b"x", timeout=60))
    await asyncio.sleep(TICK * 3)
    assert not pending.done()
    await node.stop()
    with pytest.raises(NodeError, match="not running") as info:
        await asyncio.wait_for(pending, 10)  # a guard: the stop must end it, not the timeout
    assert not isinstance(info.value, ProposalTimeout)


async def test_an_uncommitted_proposal_fails_with_node_error_when_the_leader_stops() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        leader = await cluster.leader()
        for other in cluster.nodes.values():
            if other is not leader:
                await other.stop()
        pending = asyncio.ensure_future(leader.propose(b"cannot commit", timeout=60))
        await wait_until(
            lambda: leader.status().last_index > leader.status().commit_index,
            timeout=5,
            what="the proposal to be appended",
        )
        await leader.stop()
        with pytest.raises(NodeError, match="stopped") as info:
            await asyncio.wait_for(pending, 10)
        assert not isinstance(info.value, ProposalTimeout)


# --- proposals nobody can serve ------------------------------------------------------------------


async def test_a_proposal_without_any_leader_times_out() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    # one voter of three, alone: it can never win an election
    node = Node(1, network.transport(1), voters=[1, 2, 3], tick_seconds=TICK)
    async with node:
        with pytest.raises(ProposalTimeout, match=r"not done within 0\.5 s"):
            # the outer wait_for is only a guard against a hang; the proposal must end itself
            await asyncio.wait_for(node.propose(b"lost", timeout=0.5), 30)
        assert node.leader() is None
        assert node.group().state_machine.commands == []  # type: ignore[attr-defined]


async def test_a_proposal_on_a_follower_whose_leader_died_times_out() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with LocalCluster(network.transport) as cluster:
        leader = await cluster.leader()
        await leader.propose(b"before", timeout=10)
        await cluster.converged()
        follower, other = (n for n in cluster.nodes.values() if n is not leader)
        await other.stop()
        await leader.stop(crash=True)
        # the follower still names the dead leader at first and forwards to it: no answer
        assert follower.leader() == leader.id
        with pytest.raises(ProposalTimeout):
            await asyncio.wait_for(follower.propose(b"after", timeout=1.0), 30)
        assert follower.group().state_machine.commands == [b"before"]  # type: ignore[attr-defined]


async def test_a_client_proposal_without_any_leader_times_out() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with (
        Node(1, network.transport(1), voters=[1, 2, 3], tick_seconds=TICK),
        ClusterClient(network.transport(1_000_000_001, presence=False)) as client,
    ):
        await client.discover(timeout=10)
        with pytest.raises(ProposalTimeout):
            await asyncio.wait_for(client.propose(b"lost", timeout=1.0), 30)


async def test_wait_for_leader_times_out_when_none_can_be_elected() -> None:
    network = MemoryNetwork(cluster=CLUSTER)
    async with Node(1, network.transport(1), voters=[1, 2], tick_seconds=TICK) as node:
        with pytest.raises(ProposalTimeout):
            await asyncio.wait_for(node.wait_for_leader(timeout=0.3), 30)


# --- a durable state machine ---------------------------------------------------------------------


class DurableDict:
    """A key-value state machine whose state (a dict standing in for a database) outlives the
    process; it says how far it got with `applied_index`, so a restart must not re-apply."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.store = store
        store.setdefault("data", {})
        store.setdefault("applied_index", 0)
        store.setdefault("applies", [])  # every index ever applied, to spot a second apply

    @property
    def applied_index(self) -> int:
        return int(self.store["applied_index"])

    def apply(self, entry: Entry) -> object:
        self.store["applies"].append(entry.index)
        if entry.kind is EntryKind.NORMAL and entry.data:
            key, _, value = entry.data.decode().partition("=")
            self.store["data"][key] = value
        self.store["applied_index"] = entry.index
        return entry.index

    def snapshot(self) -> bytes:
        return json.dumps({"data": self.store["data"], "index": self.applied_index}).encode()

    def restore(self, data: bytes) -> None:
        doc: dict[str, Any] = json.loads(data) if data else {"data": {}, "index": 0}
        self.store["data"] = dict(doc["data"])
        self.store["applied_index"] = int(doc["index"])


async def _run_single_node(
    path: Path, store: dict[str, Any], commands: list[bytes], *, compact_every: int | None = None
) -> int:
    storage = SQLiteStorage(path)
    try:
        node = Node(
            1,
            MemoryNetwork(cluster=CLUSTER).transport(1),
            voters=[1],
            storage=storage,
            state_machine=DurableDict(store),
            tick_seconds=TICK,
            config=RaftConfig(election_timeout=5),
            compact_every=compact_every,
        )
        async with node:
            await node.wait_for_leader(timeout=10)
            for command in commands:
                await node.propose(command, timeout=10)
            await wait_until(
                lambda: node.status().applied_index == node.status().commit_index,
                timeout=10,
                what="everything committed to be applied",
            )
            return node.status().applied_index
    finally:
        storage.close()


async def test_a_durable_state_machine_is_not_re_applied_after_a_restart(tmp_path: Path) -> None:
    store: dict[str, Any] = {}
    path = tmp_path / "raft.db"
    first = await _run_single_node(path, store, [f"k{i}=v{i}".encode() for i in range(10)])
    assert store["data"] == {f"k{i}": f"v{i}" for i in range(10)}
    applied_before = list(store["applies"])
    assert applied_before == sorted(set(applied_before)), applied_before
    assert store["applied_index"] == first

    # the restarted node finds the log and the state machine where they were: nothing again
    await _run_single_node(path, store, [b"k0=changed", b"k10=v10"])
    applies = store["applies"]
    assert len(applies) == len(set(applies)), f"entries applied twice: {applies}"
    assert applies[: len(applied_before)] == applied_before
    assert all(index > first for index in applies[len(applied_before) :]), applies
    assert store["data"] == {f"k{i}": f"v{i}" for i in range(11)} | {"k0": "changed"}


async def test_a_durable_state_machine_behind_the_snapshot_is_restored_from_it(
    tmp_path: Path,
) -> None:
    """A durable state machine that lost its data starts from the snapshot, then the log."""
    path = tmp_path / "raft.db"
    written = [f"k{i}=v{i}".encode() for i in range(12)]
    await _run_single_node(path, {}, written, compact_every=5)
    with SQLiteStorage(path) as storage:
        snapshot = storage.load().snapshot
    assert snapshot is not None and snapshot.meta.index > 1

    fresh: dict[str, Any] = {}
    await _run_single_node(path, fresh, [b"k12=v12"], compact_every=5)
    assert fresh["data"] == {f"k{i}": f"v{i}" for i in range(13)}
    assert min(fresh["applies"]) == snapshot.meta.index + 1, fresh["applies"]
    assert len(fresh["applies"]) == len(set(fresh["applies"]))


async def test_a_state_machine_without_applied_index_is_rebuilt_after_a_restart(
    tmp_path: Path,
) -> None:
    """The default CommandLog keeps nothing: a restart replays every committed entry."""
    path = tmp_path / "raft.db"
    for round_ in range(2):
        storage = SQLiteStorage(path)
        try:
            async with Node(
                1,
                MemoryNetwork(cluster=CLUSTER).transport(1),
                voters=[1],
                storage=storage,
                tick_seconds=TICK,
            ) as node:
                await node.wait_for_leader(timeout=10)
                await node.propose(f"round {round_}".encode(), timeout=10)
                expected = [f"round {r}".encode() for r in range(round_ + 1)]
                await wait_until(
                    lambda: commands(node) == expected,  # noqa: B023 (awaited right here)
                    timeout=10,
                    what=f"commands {expected}",
                    detail=lambda: commands(node),
                )
        finally:
            storage.close()


# --- the crash control -------------------------------------------------------------------------


async def test_a_crash_control_stops_the_node_like_a_crash() -> None:
    """The stop runs in one of the node's own tasks; it must finish (transport aborted, last
    will published, pending proposals failed) instead of cancelling itself half way."""
    network = MemoryNetwork(cluster=CLUSTER)
    async with (
        LocalCluster(network.transport) as cluster,
        network.transport(500, presence=False) as controller,
    ):
        leader = await cluster.leader()
        victim = next(n for n in cluster.nodes.values() if n is not leader)
        await controller.publish(f"node/{victim.id}/control", json.dumps({"v": 1, "op": "crash"}))
        await wait_until(lambda: not victim.running, timeout=10, what="the node to stop")
        await wait_until(
            lambda: not victim.transport.running, timeout=10, what="its transport to be aborted"
        )
        presence = network.retained(f"presence/{victim.id}")
        assert presence is not None
        assert json.loads(presence).items() >= {"alive": False, "reason": "connection lost"}.items()
        assert [e.kind for e in victim.events].count("node_crashed") == 1
        with pytest.raises(NodeError, match="not running"):
            await victim.propose(b"x")
        # the two others go on
        await leader.propose(b"after the crash", timeout=10)
