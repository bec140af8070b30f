"""The Ready loop keeps the persistence contract (core/ready.py; DESIGN section 3).

Each node's storage, transport and state machine (as its Group uses them) and its core's
`ready`/`advance` are wrapped by recorders that write to one shared call log. A cluster elects,
commits, loses its leader to a partition, elects again, compacts and heals (the old leader then
installs a snapshot). Then, for every Ready of every node: persist, then send, then restore and
apply, then the core's advance, with nothing of another Ready in between. And every message
that leaves a node is covered by what its storage already holds: its term (and for a vote, the
vote) is durable, and an acknowledged entry is stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from raftoral_lab.core import Entry, RaftConfig, Ready, Snapshot
from raftoral_lab.core.messages import AppendResponse, Message, RequestVote, VoteResponse
from raftoral_lab.node import Node
from raftoral_lab.node.state_machine import CommandLog
from raftoral_lab.storage import MemoryStorage
from raftoral_lab.transport.base import Transport
from raftoral_lab.transport.memory import MemoryNetwork

from .support import CLUSTER, TICK, LocalCluster, events_of

Call = tuple[int, str, Any]
"""(node, what, detail) in the shared call log."""


@dataclass
class Checks:
    """Violations of the durability rule, and how many messages of each kind were checked
    (so the test knows the rule met votes and acknowledgements, not only heartbeats)."""

    violations: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)


class RecordingStorage:
    def __init__(self, inner: MemoryStorage, node: int, log: list[Call]) -> None:
        self.inner, self.node, self.log = inner, node, log

    def load(self) -> Any:
        return self.inner.load()

    def persist(self, ready: Ready) -> None:
        self.log.append((self.node, "persist", ready))
        self.inner.persist(ready)

    def compact(self, snapshot: Snapshot) -> None:
        self.log.append((self.node, "compact", snapshot.meta.index))
        self.inner.compact(snapshot)


class RecordingTransport:
    """What the Group sends through; checks each message against the durable state first."""

    def __init__(
        self, inner: Transport, node: int, storage: MemoryStorage, log: list[Call], checks: Checks
    ) -> None:
        self.inner, self.node, self.storage, self.log, self.checks = (
            inner, node, storage, log, checks,
        )  # fmt: skip

    def send(self, messages: list[Message]) -> None:
        messages = list(messages)
        durable = self.storage.load().hard_state
        stored = self.storage.last_index
        for m in messages:
            self._check(m, durable.term, durable.vote, stored)
        self.log.append((self.node, "send", tuple(messages)))
        self.inner.send(messages)

    def _check(self, m: Message, term: int, vote: int | None, stored: int) -> None:
        checked = self.checks.checked
        if isinstance(m, RequestVote | VoteResponse) and m.pre_vote:
            return  # a pre-vote asks about a term nobody has taken yet: nothing to persist
        where = f"node {self.node} sent {m} with durable term {term}, vote {vote}, log {stored}"
        checked[m.kind] = checked.get(m.kind, 0) + 1
        if m.term > term:
            self.checks.violations.append(f"term not durable: {where}")
        if isinstance(m, RequestVote) and m.term == term and vote != m.src:
            self.checks.violations.append(f"own vote not durable: {where}")
        if isinstance(m, VoteResponse) and m.granted:
            checked["vote granted"] = checked.get("vote granted", 0) + 1
            if m.term == term and vote != m.dst:
                self.checks.violations.append(f"granted vote not durable: {where}")
        if isinstance(m, AppendResponse) and m.success:
            checked["append acknowledged"] = checked.get("append acknowledged", 0) + 1
            if m.match_index > stored:
                self.checks.violations.append(f"acknowledged entries not stored: {where}")


class RecordingMachine:
    def __init__(self, inner: CommandLog, node: int, log: list[Call]) -> None:
        self.inner, self.node, self.log = inner, node, log

    @property
    def commands(self) -> list[bytes]:
        return self.inner.commands

    def apply(self, entry: Entry) -> object:
        self.log.append((self.node, "apply", entry.index))
        return self.inner.apply(entry)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, data: bytes) -> None:
        self.log.append((self.node, "restore", None))
        self.inner.restore(data)


def recorded_node(network: MemoryNetwork, node_id: int, log: list[Call], checks: Checks) -> Node:
    storage = MemoryStorage()
    node = Node(
        node_id,
        network.transport(node_id),
        voters=[1, 2, 3],
        storage=storage,
        tick_seconds=TICK,
        config=RaftConfig(election_timeout=10),
        compact_every=8,
    )
    group = node.group()
    assert isinstance(group.state_machine, CommandLog)
    group.storage = RecordingStorage(storage, node_id, log)
    group.transport = RecordingTransport(node.transport, node_id, storage, log, checks)  # type: ignore[assignment]
    group.state_machine = RecordingMachine(group.state_machine, node_id, log)
    raft = group.raft
    ready, advance = raft.ready, raft.advance

    def recorded_ready() -> Ready:
        rd = ready()
        log.append((node_id, "ready", rd))
        return rd

    def recorded_advance(rd: Ready) -> None:
        log.append((node_id, "advance", rd))
        advance(rd)

    raft.ready = recorded_ready  # type: ignore[method-assign]
    raft.advance = recorded_advance  # type: ignore[method-assign]
    return node


def check_ready_order(node: int, calls: list[Call]) -> dict[str, int]:
    """Fail at the first call out of order; count what was seen."""
    seen = {"readies": 0, "sends in a Ready": 0, "sends between Readies": 0, "applies": 0,
            "restores": 0, "compactions": 0}  # fmt: skip
    current: Ready | None = None
    phase = ""
    last_applied = 0
    for i, (_, what, detail) in enumerate(calls):
        here = f"node {node}, call {i} ({what}) after {phase or 'no Ready'}"
        if what == "ready":
            assert current is None, f"{here}: a Ready before the advance of the last one"
            current, phase = detail, "ready"
            seen["readies"] += 1
        elif what == "persist":
            assert current is not None and detail is current, f"{here}: persist of another Ready"
            assert phase == "ready", f"{here}: persist twice or late"
            phase = "persisted"
        elif what == "send":
            if current is None:  # held back by the Group and released after the advance
                seen["sends between Readies"] += 1
                continue
            assert phase in ("persisted", "sent"), f"{here}: send before persist or after apply"
            phase = "sent"
            seen["sends in a Ready"] += 1
        elif what in ("restore", "apply"):
            assert current is not None, f"{here}: {what} outside a Ready"
            assert phase in ("persisted", "sent", "applied"), f"{here}: {what} before persist"
            phase = "applied"
            if what == "restore":
                seen["restores"] += 1
                last_applied = 0  # the snapshot decides; entries after it follow
            else:
                assert detail > last_applied, f"{here}: index {detail} applied out of order"
                last_applied = detail
                seen["applies"] += 1
        elif what == "advance":
            assert current is not None and detail is current, f"{here}: advance of another Ready"
            assert phase != "ready", f"{here}: advance before persist"
            current, phase = None, ""
        elif what == "compact":
            assert current is None, f"{here}: compaction inside a Ready"
            seen["compactions"] += 1
    assert current is None or phase != "", f"node {node}: unfinished Ready at the end"
    return seen


async def test_every_ready_persists_then_sends_then_applies_then_advances() -> None:
    network = MemoryNetwork(codec=True, cluster=CLUSTER)
    log: list[Call] = []
    checks = Checks()
    cluster = LocalCluster(network.transport)  # for its waits; the nodes are made here
    for node_id in (1, 2, 3):
        cluster.nodes[node_id] = recorded_node(network, node_id, log, checks)
    await asyncio.gather(*(n.start() for n in cluster.nodes.values()))
    try:
        old = await cluster.leader()
        expected = [f"first {i}".encode() for i in range(10)]
        for i, command in enumerate(expected):
            await cluster.nodes[1 + i % 3].propose(command, timeout=10)
        assert await cluster.converged() == expected

        network.isolate(old.id)
        majority = [n for n in cluster.nodes if n != old.id]
        new = await cluster.leader(majority, timeout=10)
        second = [f"second {i}".encode() for i in range(20)]
        for command in second:
            await new.propose(command, timeout=10)
        expected += second
        network.heal()
        assert await cluster.converged(timeout=20) == expected
        await cluster.leader()
        await old.propose(b"last", timeout=10)
        expected.append(b"last")
        assert await cluster.converged(timeout=20) == expected
        assert events_of(old, "snapshot_installed"), "the old leader caught up without one"
    finally:
        await cluster.stop()

    assert not checks.violations, "\n".join(checks.violations[:10])
    for kind in ("request_vote", "vote granted", "append_entries", "append acknowledged"):
        assert checks.checked.get(kind, 0) > 0, (kind, checks.checked)
    totals: dict[str, int] = {}
    for node_id in cluster.nodes:
        seen = check_ready_order(node_id, [c for c in log if c[0] == node_id])
        for key, count in seen.items():
            totals[key] = totals.get(key, 0) + count
    # the run met every step of the loop, so the order above was checked on each of them
    for key in ("readies", "sends in a Ready", "applies", "restores", "compactions"):
        assert totals[key] > 0, totals
