"""A deterministic Raft cluster in one thread: virtual ticks, a seeded network, faults on demand.

Everything random (election timeouts, drops, delays, duplicates) comes from generators seeded
by `seed`, and nodes are visited in id order, so a seed replays the same run exactly. After
every Ready the invariant checker looks at the node that changed; `check_invariants()`
re-derives every property from scratch.
"""

from __future__ import annotations

import heapq
import marshal
import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from raftoral_lab.core import (
    ConfChange,
    ConfChangeOp,
    Entry,
    EntryKind,
    Message,
    RaftConfig,
    RawNode,
    Ready,
    Role,
    Snapshot,
    Status,
)
from raftoral_lab.errors import ConfigError, RaftError
from raftoral_lab.events import EventBase, make_event
from raftoral_lab.sim.invariants import InvariantChecker
from raftoral_lab.storage import MemoryStorage

MAX_ROUNDS_PER_TICK = 10_000
"""Message rounds within one tick before the simulator declares a livelock."""
MAX_NODES = 1000
"""The most nodes a simulation starts with (far beyond any lesson; a typo like 10**7 would
otherwise allocate until the machine runs out of memory)."""


class StateMachine:
    """The simulated application: the list of commands applied, in order."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.commands: list[bytes] = []
        self.applied_index = 0
        if snapshot is not None:
            self.restore(snapshot)

    def apply(self, entry: Entry) -> None:
        if entry.kind is EntryKind.NORMAL and entry.data:
            self.commands.append(entry.data)
        self.applied_index = entry.index

    def snapshot_data(self) -> bytes:
        return marshal.dumps(self.commands)

    def restore(self, snapshot: Snapshot) -> None:
        self.commands = list(marshal.loads(snapshot.data)) if snapshot.data else []
        self.applied_index = snapshot.meta.index


class SimStateMachine(Protocol):
    """What a simulated node applies entries to (`StateMachine` by default; the workflow
    chaos of `raftoral_lab.sim.workflows` plugs in its own through `machine_factory`)."""

    @property
    def commands(self) -> list[bytes]: ...

    def apply(self, entry: Entry) -> None: ...

    def snapshot_data(self) -> bytes: ...

    def restore(self, snapshot: Snapshot) -> None: ...


MachineFactory = Callable[[int, Snapshot | None], SimStateMachine]
"""Builds node `node_id`'s state machine from its durable snapshot (at start and restart)."""


def _default_machine(_node_id: int, snapshot: Snapshot | None) -> SimStateMachine:
    return StateMachine(snapshot)


class SimNode:
    """One simulated server: its Raft node (None while crashed), disk and state machine."""

    def __init__(
        self,
        node_id: int,
        storage: MemoryStorage,
        raft: RawNode,
        machine_factory: MachineFactory = _default_machine,
    ) -> None:
        self.id = node_id
        self.storage = storage
        self.raft: RawNode | None = raft
        self.state_machine: SimStateMachine = machine_factory(node_id, storage.load().snapshot)

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def _raft(self) -> RawNode:
        if self.raft is None:
            raise RaftError(f"node {self.id} is crashed; restart it first")
        return self.raft

    @property
    def role(self) -> Role:
        return self._raft().role

    @property
    def term(self) -> int:
        return self._raft().term

    @property
    def commit_index(self) -> int:
        return self._raft().commit_index

    @property
    def applied_index(self) -> int:
        return self._raft().applied_index

    @property
    def log(self) -> list[Entry]:
        """The entries after the snapshot point (what the node can still send)."""
        return list(self._raft().log.entries)

    @property
    def commands(self) -> list[bytes]:
        """The commands this node's state machine applied, in order."""
        return self.state_machine.commands

    def status(self) -> Status:
        return self._raft().status()

    def __repr__(self) -> str:
        if self.raft is None:
            return f"<SimNode {self.id} crashed>"
        return (
            f"<SimNode {self.id} {self.raft.role.value} term={self.raft.term} "
            f"commit={self.raft.commit_index} last={self.raft.log.last_index}>"
        )


class Simulation:
    """A Raft cluster of `nodes` servers, numbered from 1, driven tick by tick."""

    def __init__(
        self,
        nodes: int = 3,
        seed: int = 0,
        config: RaftConfig | None = None,
        *,
        group: int = 0,
        check: bool = True,
        record_events: bool = True,
        compact_every: int | None = None,
        machine_factory: MachineFactory | None = None,
    ) -> None:
        if isinstance(nodes, bool) or not isinstance(nodes, int):
            raise ConfigError(f"nodes must be a whole number of nodes, got {nodes!r}")
        if nodes < 1:
            raise ConfigError(f"a simulation needs at least 1 node, got {nodes}")
        if nodes > MAX_NODES:
            raise ConfigError(f"a simulation takes at most {MAX_NODES} nodes, got {nodes}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(
                f"seed must be a whole number (the same seed replays the same run), got {seed!r}"
            )
        if config is not None and not isinstance(config, RaftConfig):
            raise ConfigError(f"config must be a RaftConfig, got {type(config).__name__}")
        if isinstance(group, bool) or not isinstance(group, int) or group < 0:
            raise ConfigError(f"group must be a non-negative whole number, got {group!r}")
        if compact_every is not None and (
            isinstance(compact_every, bool)
            or not isinstance(compact_every, int)
            or compact_every < 1
        ):
            raise ConfigError(
                f"compact_every must be a positive number of entries (or None), got "
                f"{compact_every!r}"
            )
        if machine_factory is not None and not callable(machine_factory):
            raise ConfigError(
                "machine_factory must be a function (node_id, snapshot) -> state machine, got "
                f"{type(machine_factory).__name__}"
            )
        self.seed = seed
        self.config = config or RaftConfig(trace=record_events)
        self.group = group
        self.tick = 0
        self.compact_every = compact_every
        self.checker: InvariantChecker | None = InvariantChecker() if check else None
        self.events: list[EventBase] = []
        self.listeners: list[Callable[[EventBase], None]] = []
        """Called with every event as it is emitted (a ClusterView, a Recorder, an EventBus)."""
        self._record = record_events
        self._event_seq: Counter[int] = Counter()
        self._rng = random.Random(seed)
        self._nodes: dict[int, SimNode] = {}
        self._incarnation: Counter[int] = Counter()
        self._network: list[tuple[int, int, Message, int]] = []  # (tick, order, message, id)
        self._msg_id = 0
        self._order = 0
        self._side: dict[int, int] = {}
        self._drop_rate = 0.0
        self._duplicate_rate = 0.0
        self._delay = (0, 0)
        self._machine_factory: MachineFactory = machine_factory or _default_machine
        self._sent: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        voters = range(1, nodes + 1)
        for node_id in voters:
            storage = MemoryStorage()
            storage.bootstrap(voters)
            self._nodes[node_id] = SimNode(
                node_id, storage, self._new_raft(node_id, storage), self._machine_factory
            )

    # --- running -------------------------------------------------------------------------------

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.step()

    def run_until(self, predicate: Callable[[Simulation], bool], max_ticks: int = 1000) -> bool:
        """Tick until `predicate(self)` holds; False if it still does not after `max_ticks`."""
        for _ in range(max_ticks):
            if predicate(self):
                return True
            self.step()
        return predicate(self)

    def step(self) -> None:
        """One tick: every live node ticks, then messages flow until the network is quiet."""
        self.tick += 1
        for node in self._live():
            node._raft().tick()
        self.settle()

    def settle(self) -> None:
        """Process Readies and deliver due messages until nothing is left for this tick."""
        for _ in range(MAX_ROUNDS_PER_TICK):
            busy = False
            for node in self._live():
                raft = node._raft()
                while raft.has_ready():
                    self._handle_ready(node, raft.ready())
                    busy = True
            if self._deliver_due():
                busy = True
            if not busy:
                return
        raise RaftError(
            f"tick {self.tick}: messages still flowing after {MAX_ROUNDS_PER_TICK} rounds"
        )

    def _handle_ready(self, node: SimNode, rd: Ready) -> None:
        raft = node._raft()
        node.storage.persist(rd)
        checker = self.checker
        if checker is not None and rd.entries:
            checker.on_entries(node.id, raft, rd.entries)
        for message in rd.messages:
            self._send(message)
        for message in rd.persisted_messages:
            self._send(message)
        if rd.snapshot is not None:
            node.state_machine.restore(rd.snapshot)
        machine = node.state_machine
        for entry in rd.committed_entries:
            machine.apply(entry)
            if checker is not None:
                checker.on_apply(node.id, entry)
        raft.advance(rd)
        if self._record:
            for trace in rd.trace:
                self._emit(node.id, trace.kind, trace.fields)
        if checker is not None:
            checker.on_state(node.id, raft)
        every = self.compact_every
        if every is not None and raft.applied_index - raft.log.offset >= every:
            node.storage.compact(raft.compact(machine.snapshot_data()))

    # --- the network ---------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        kind = message.kind
        self._sent[kind] += 1
        self._msg_id += 1
        msg_id = self._msg_id
        if self._record:
            self._emit(
                message.src,
                "message_sent",
                {"message": kind, "src": message.src, "dst": message.dst, "msg_id": msg_id},
            )
        rng = self._rng
        if self._drop_rate and rng.random() < self._drop_rate:
            self._drop(message, "drop_rate", msg_id)
            return
        copies = 2 if self._duplicate_rate and rng.random() < self._duplicate_rate else 1
        low, high = self._delay
        for _ in range(copies):
            delay = rng.randint(low, high) if high else 0
            self._order += 1
            heapq.heappush(self._network, (self.tick + delay, self._order, message, msg_id))

    def _deliver_due(self) -> bool:
        network = self._network
        if not network or network[0][0] > self.tick:
            return False
        due: list[tuple[Message, int]] = []
        while network and network[0][0] <= self.tick:
            _, _, message, msg_id = heapq.heappop(network)
            due.append((message, msg_id))
        for message, msg_id in due:
            node = self._nodes.get(message.dst)
            if node is None or node.raft is None:
                self._drop(message, "node_down", msg_id)
            elif self._side.get(message.src, 0) != self._side.get(message.dst, 0):
                self._drop(message, "partition", msg_id)
            else:
                if self._record:
                    fields = {
                        "message": message.kind,
                        "src": message.src,
                        "dst": message.dst,
                        "msg_id": msg_id,
                    }
                    self._emit(message.dst, "message_delivered", fields)
                node.raft.step(message)
        return True

    def _drop(self, message: Message, reason: str, msg_id: int) -> None:
        self._dropped[reason] += 1
        if self._record:
            fields = {
                "message": message.kind,
                "src": message.src,
                "dst": message.dst,
                "reason": reason,
                "msg_id": msg_id,
            }
            self._emit(message.dst, "message_dropped", fields)

    def messages_sent(self, kind: str | None = None) -> int:
        """Messages sent so far, of one kind (e.g. "append_entries") or of all kinds."""
        return sum(self._sent.values()) if kind is None else self._sent[kind]

    def messages_dropped(self, reason: str | None = None) -> int:
        return sum(self._dropped.values()) if reason is None else self._dropped[reason]

    # --- faults --------------------------------------------------------------------------------

    def partition(self, *sides: Iterable[int]) -> None:
        """Cut the network into `sides`; a node named in no side is alone."""
        groups = [set(side) for side in sides]
        seen: set[int] = set()
        for side in groups:
            self._check_known(side)
            if side & seen:
                raise ConfigError(f"node(s) {sorted(side & seen)} appear in two partition sides")
            seen |= side
        self._side = {}
        for number, side in enumerate(groups, start=1):
            for node_id in side:
                self._side[node_id] = number
        for alone, node_id in enumerate(sorted(set(self._nodes) - seen), start=len(groups) + 1):
            self._side[node_id] = alone
        self._emit(0, "partitioned", {"sides": [sorted(side) for side in groups]})

    def isolate(self, node_id: int) -> None:
        """Cut one node off from everyone else."""
        self._check_known({node_id})
        self.partition(set(self._nodes) - {node_id}, {node_id})

    def connected(self, a: int, b: int) -> bool:
        """Whether the partition lets messages between nodes `a` and `b` through."""
        return self._side.get(a, 0) == self._side.get(b, 0)

    def heal(self) -> None:
        self._side = {}
        self._emit(0, "healed", {})

    def set_drop_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"drop rate must be between 0 and 1, got {rate}")
        self._drop_rate = rate

    def set_duplicate_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"duplicate rate must be between 0 and 1, got {rate}")
        self._duplicate_rate = rate

    def set_delay(self, low: int, high: int | None = None) -> None:
        """Delay every message by a random number of ticks in [low, high]; this reorders them."""
        high = low if high is None else high
        if not 0 <= low <= high:
            raise ConfigError(f"delay must satisfy 0 <= low <= high ticks, got ({low}, {high})")
        self._delay = (low, high)

    def crash(self, node_id: int) -> None:
        """Stop a node at once; only what it persisted survives."""
        node = self.node(node_id)
        node._raft()
        node.raft = None
        self._emit(node_id, "node_crashed", {})

    def restart(self, node_id: int) -> None:
        """Bring a crashed node back from its storage (term, vote, snapshot and log)."""
        node = self.node(node_id)
        if node.raft is not None:
            raise RaftError(f"node {node_id} is running; crash it before restarting it")
        node.raft = self._new_raft(node_id, node.storage)
        node.state_machine = self._machine_factory(node_id, node.storage.load().snapshot)
        self._emit(node_id, "node_restarted", {})

    # --- membership and leadership ------------------------------------------------------------

    def add_node(self, *, voter: bool = True, max_ticks: int = 2000) -> int:
        """Start an empty server, add it as a learner, and once it caught up promote it."""
        node_id = max(self._nodes) + 1
        storage = MemoryStorage()
        self._nodes[node_id] = SimNode(
            node_id, storage, self._new_raft(node_id, storage), self._machine_factory
        )
        self._emit(node_id, "node_joined", {})
        self.change_membership(ConfChange(ConfChangeOp.ADD_LEARNER, node_id), max_ticks=max_ticks)
        if voter:
            caught_up = self.run_until(lambda sim: sim._caught_up(node_id), max_ticks=max_ticks)
            if not caught_up:
                raise RaftError(f"learner {node_id} did not catch up within {max_ticks} ticks")
            self.change_membership(ConfChange(ConfChangeOp.ADD_VOTER, node_id), max_ticks=max_ticks)
        return node_id

    def remove_node(self, node_id: int, *, max_ticks: int = 2000) -> None:
        """Remove a member (the leader too) through the log, then stop it."""
        self._check_known({node_id})
        self.change_membership(ConfChange(ConfChangeOp.REMOVE, node_id), max_ticks=max_ticks)
        node = self._nodes[node_id]
        if node.raft is not None:
            node.raft = None
        self._emit(node_id, "node_removed", {})

    def change_membership(self, change: ConfChange, *, max_ticks: int = 2000) -> None:
        """Propose `change` on the leader and run until the leader has applied it."""
        if not self.run_until(lambda sim: sim.leader() is not None, max_ticks=max_ticks):
            raise RaftError(f"no leader within {max_ticks} ticks to change membership")
        leader = self.node(self._leader_or_fail())._raft()
        index = leader.propose_conf_change(change)
        applied = self.run_until(
            lambda sim: any(
                n.raft is not None and n.raft.applied_index >= index and n.raft.term == leader.term
                for n in sim._nodes.values()
            ),
            max_ticks=max_ticks,
        )
        if not applied:
            raise RaftError(
                f"{change.op.value} of node {change.node} not applied in {max_ticks} ticks"
            )

    def transfer_leader(self, to: int) -> None:
        self.node(self._leader_or_fail())._raft().transfer_leader(to)

    def compact(self, node_id: int | None = None) -> None:
        """Snapshot the state machine and truncate the log, on one node or every live node."""
        targets = [self.node(node_id)] if node_id is not None else self._live()
        for node in targets:
            raft = node._raft()
            node.storage.compact(raft.compact(node.state_machine.snapshot_data()))

    def _caught_up(self, node_id: int) -> bool:
        leader_id = self.leader()
        if leader_id is None:
            return False
        leader = self.node(leader_id)._raft()
        progress = leader.progress.get(node_id)
        return progress is not None and progress.match_index >= leader.commit_index

    # --- proposals and queries -----------------------------------------------------------------

    def propose(self, data: bytes, node: int | None = None) -> int | None:
        """Propose on `node` (default: the leader). The index, or None when refused."""
        target = node if node is not None else self.leader()
        if target is None:
            return None
        raft = self.node(target).raft
        if raft is None:
            return None
        try:
            index = raft.propose(data)
        except RaftError:
            self._flush_trace(target)
            return None
        if self._record:
            self._emit(target, "proposal_made", {"index": index, "size": len(data)})
        return index

    def leader(self) -> int | None:
        """The leader of the highest term any live node has reached, if that term has one.

        A deposed leader cut off from the rest still believes it leads an older term; it is
        not the leader, and neither is anyone while a newer term's election is undecided.
        """
        live = [n._raft() for n in self._live()]
        if not live:
            return None
        top = max(raft.term for raft in live)
        leaders = [raft.id for raft in live if raft.term == top and raft.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None

    def node(self, node_id: int) -> SimNode:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ConfigError(f"no node {node_id}; nodes are {sorted(self._nodes)}") from None

    @property
    def nodes(self) -> dict[int, SimNode]:
        return dict(self._nodes)

    def check_invariants(self) -> None:
        """Re-check every safety property from scratch; raises InvariantViolation."""
        checker = self.checker or InvariantChecker()
        checker.check_all({n.id: n.raft for n in self._live() if n.raft is not None})

    def dashboard(self) -> Any:
        """The live dashboard of this simulation."""
        from importlib import import_module

        return import_module("raftoral_lab.dashboard").simulation_dashboard(self)

    # --- plumbing ------------------------------------------------------------------------------

    def _new_raft(self, node_id: int, storage: MemoryStorage) -> RawNode:
        self._incarnation[node_id] += 1
        rng = random.Random(f"{self.seed}/{node_id}/{self._incarnation[node_id]}")
        raft = RawNode(node_id, storage.load(), self.config, group=self.group, rng=rng)
        log = raft.log
        loaded = {
            "term": raft.term,
            "commit_index": log.commit_index,
            "applied_index": log.applied_index,
            "snapshot_index": log.offset,
            "snapshot_term": log.offset_term,
            "last_index": log.last_index,
            "last_term": log.last_term,
            "voters": sorted(raft.conf.voters),
            "learners": sorted(raft.conf.learners),
        }
        self._emit(node_id, "state_loaded", loaded)
        return raft

    def _live(self) -> list[SimNode]:
        return [node for _, node in sorted(self._nodes.items()) if node.raft is not None]

    def _leader_or_fail(self) -> int:
        leader = self.leader()
        if leader is None:
            raise RaftError("there is no leader right now; run the simulation until one is elected")
        return leader

    def _check_known(self, ids: Iterable[int]) -> None:
        unknown = set(ids) - set(self._nodes)
        if unknown:
            raise ConfigError(f"unknown node(s) {sorted(unknown)}; nodes are {sorted(self._nodes)}")

    def _flush_trace(self, node_id: int) -> None:
        """Keep a refused proposal's trace in order with the events that follow it."""
        raft = self.node(node_id).raft
        if raft is not None and raft.has_ready():
            self._handle_ready(self.node(node_id), raft.ready())

    def _emit(self, node_id: int, kind: str, fields: dict[str, Any]) -> None:
        if not self._record:
            return
        self._event_seq[node_id] += 1
        event = make_event(
            kind,
            fields,
            node=node_id,
            group=self.group,
            seq=self._event_seq[node_id],
            ts=float(self.tick),
            tick=self.tick,
        )
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
