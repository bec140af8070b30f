"""The key-value store on a real Lab (memory network): concurrent asyncio clients while nodes
are killed, restarted and partitioned; every history must check linearizable."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from raftoral_lab.errors import NodeError
from raftoral_lab.kv import (
    Command,
    History,
    KVClient,
    KVStateMachine,
    OutcomeUnknown,
    check,
)
from raftoral_lab.lab import Lab

from .conftest import KVLab

TICK = 0.01


def machine(lab: Lab, node_id: int) -> KVStateMachine:
    state_machine = lab.node(node_id).group().state_machine
    assert isinstance(state_machine, KVStateMachine)
    return state_machine


async def converged(lab: Lab, timeout: float = 10.0) -> dict[str, object]:
    """Wait until every running node holds the same data; return it."""
    deadline = time.monotonic() + timeout
    while True:
        states = {repr(sorted(machine(lab, n).data.items())) for n in lab.alive()}
        if len(states) == 1:
            return dict(machine(lab, lab.alive()[0]).data)
        assert time.monotonic() < deadline, f"replicas still differ: {states}"
        await asyncio.sleep(0.02)


async def test_a_client_reads_its_writes_and_cas_swaps_once(kv_lab: KVLab) -> None:
    async with kv_lab(nodes=3, broker="memory", tick_seconds=TICK) as lab:
        await lab.wait_for_leader()
        history = History()
        a, b = KVClient(lab, history), KVClient(lab, history)
        assert await a.get("x") is None
        await a.put("x", 1)
        assert await b.get("x") == 1
        results = await asyncio.gather(a.cas("x", 1, 2), b.cas("x", 1, 3))
        assert sorted(results) == [False, True]
        assert await a.get("x") in (2, 3)
        assert check(history).ok
        assert len(history.operations()) == 6
        assert (await converged(lab))["x"] in (2, 3)


async def test_a_repeated_request_is_applied_once(kv_lab: KVLab) -> None:
    async with kv_lab(nodes=3, broker="memory", tick_seconds=TICK) as lab:
        await lab.wait_for_leader()
        put = Command("put", "x", "c1", 1, value=5)
        first = await lab.propose(put.encode())
        cas = Command("cas", "x", "c1", 2, value=6, expected=5)
        assert await lab.propose(cas.encode()) == {"swapped": True, "value": 6}
        # the put again (a retry that reached the log late): stale, it changes nothing
        assert (await lab.propose(put.encode()))["error"] == "stale"  # type: ignore[index]
        # the cas again: the saved answer, and no second effect
        assert await lab.propose(cas.encode()) == {"swapped": True, "value": 6}
        assert first == {"value": 5}
        assert (await converged(lab)) == {"x": 6}


async def test_a_client_of_a_command_log_cluster_says_what_is_wrong() -> None:
    async with Lab(nodes=1, broker="memory", tick_seconds=TICK) as lab:
        await lab.wait_for_leader()
        client = KVClient(lab)
        with pytest.raises(NodeError, match="KVStateMachine"):
            await client.put("x", 1)
        assert [e.type for e in client.history.events] == ["invoke", "info"]


async def test_a_client_of_a_dead_node_reports_an_unknown_outcome(kv_lab: KVLab) -> None:
    async with kv_lab(nodes=1, broker="memory", tick_seconds=TICK) as lab:
        await lab.wait_for_leader()
        client = KVClient(lab.node(1), timeout=0.3)
        await client.put("x", 1)
        await lab.kill(1)
        before = client.process
        with pytest.raises(OutcomeUnknown):
            await client.get("x")
        assert client.process != before  # the next operation is a new process
        assert [e.type for e in client.history.events] == ["invoke", "ok", "invoke", "info"]
        assert check(client.history).ok


async def nemesis(lab: Lab, rng: random.Random, stop: asyncio.Event, log: list[str]) -> None:
    """Kill, restart, partition and heal at random, a minority down at most."""
    size = len(lab.nodes)
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.1, 0.4))
        alive = lab.alive()
        dead = sorted(set(lab.nodes) - set(alive))
        moves = ["partition", "heal", "isolate_leader"]
        if len(dead) < (size - 1) // 2:
            moves += ["kill", "kill_leader"]
        if dead:
            moves += ["restart", "restart"]
        move = rng.choice(moves)
        leader = lab.leader_id
        if move.startswith("kill"):
            victim = leader if move == "kill_leader" and leader in alive else rng.choice(alive)
            await lab.kill(victim)
            log.append(f"kill {victim}")
        elif move == "restart":
            back = rng.choice(dead)
            await lab.restart(back)
            log.append(f"restart {back}")
        elif move == "partition":
            ids = rng.sample(sorted(lab.nodes), size)
            cut = rng.randrange(1, size)
            await lab.partition(set(ids[:cut]), set(ids[cut:]))
            log.append(f"partition {sorted(ids[:cut])} | {sorted(ids[cut:])}")
        elif move == "isolate_leader" and leader is not None:
            await lab.isolate(leader)
            log.append(f"isolate {leader}")
        else:
            await lab.heal()
            log.append("heal")


async def client_loop(
    client: KVClient, rng: random.Random, keys: list[str], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        op = rng.choice(["get", "put", "cas"])
        key = rng.choice(keys)
        with contextlib.suppress(OutcomeUnknown):
            if op == "get":
                await client.get(key)
            elif op == "put":
                await client.put(key, rng.randrange(5))
            else:
                await client.cas(key, rng.randrange(5), rng.randrange(5))
        await asyncio.sleep(rng.uniform(0, 0.01))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_linearizable_while_nodes_die_restart_and_partition(kv_lab: KVLab, seed: int) -> None:
    rng = random.Random(seed)
    log: list[str] = []
    async with kv_lab(nodes=5, broker="memory", tick_seconds=TICK, compact_every=25) as lab:
        await lab.wait_for_leader()
        history = History()
        clients = [KVClient(lab, history, timeout=t) for t in (0.3, 0.6, 1.0, 2.0)]
        stop_faults, stop_clients = asyncio.Event(), asyncio.Event()
        chaos = asyncio.create_task(nemesis(lab, random.Random(rng.random()), stop_faults, log))
        workers = [
            asyncio.create_task(
                client_loop(c, random.Random(rng.random()), ["x", "y"], stop_clients)
            )
            for c in clients
        ]
        await asyncio.sleep(4.0)
        stop_faults.set()
        await chaos
        await lab.heal()
        for node_id in sorted(set(lab.nodes) - set(lab.alive())):
            await lab.restart(node_id)
        log.append("calm")
        await asyncio.sleep(0.5)
        stop_clients.set()
        await asyncio.gather(*workers)
        result = check(history)
        where = f"seed {seed}; faults: {log}"
        assert result.ok, f"{where}\n{result}"
        statuses = [op.status for op in history.operations()]
        assert statuses.count("ok") >= 50, f"{where}: only {statuses.count('ok')} ops completed"
        assert any(s.startswith("kill") for s in log), where
        await converged(lab)
