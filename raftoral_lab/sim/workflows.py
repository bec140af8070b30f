"""Workflows under chaos: a synchronous, deterministic workflow driver for the simulator.

`raftoral-lab sim --workflows` gives every simulated node a `WorkflowStateMachine` (instead of
the plain command list) and lets `WorkflowChaos` play the engine's roles of
`raftoral_lab.workflow.runtime`, tick by tick and without asyncio:

- workflows are plain generator functions that yield checkpoint requests (`Put`: a value,
  `Compute`: a function run on the owner only, whose every run is a counted side effect) and
  receive the committed value back; they start from `Start` proposals at random ticks;
- every node runs every started workflow and takes the value of operation k from the
  committed sequence; the acting owner (the leader that applied an entry of its term, as in
  `WorkflowRuntime.acting_owner`) computes the operations nobody committed yet, proposes them
  under its epoch, and proposes `End`;
- the leader moves ownership to itself with an `OwnerChange` of a new epoch
  (`WorkflowRuntime._ensure_owners`), and the new owner continues from where its own run
  stands; a crashed node loses its runs and replays from the log (or snapshot) on restart.

After the schedule's recovery, `finish` drives until every workflow ended everywhere and
returns the violations (none in a correct run):
- every requested workflow completed exactly once, on every member, with the output of a
  fault-free run (the generator run directly, `reference_output`);
- every node's run consumed exactly the committed values (a retired run: a prefix of them);
- per (epoch), only the owner the log names for it proposed checkpoints or the end;
- a side effect of operation k ran at most once per owner stint (a failover is a new stint:
  another node, or the same node after a restart) observed while k was open.

`BROKEN_MODES` are deliberately wrong drivers, for the test that the checks catch them.
"""

from __future__ import annotations

import json
import marshal
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from raftoral_lab.core import Entry, EntryKind, Role, Snapshot
from raftoral_lab.errors import RaftError
from raftoral_lab.sim.simulation import SimStateMachine, Simulation
from raftoral_lab.workflow.commands import (
    Checkpoint,
    Command,
    End,
    OwnerChange,
    Register,
    Start,
    encode,
)
from raftoral_lab.workflow.state_machine import (
    CommittedCheckpoint,
    WorkflowRecord,
    WorkflowStateMachine,
    WorkflowStatus,
)

# --- workflows as generators ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Put:
    """`ctx.checkpoint(key, value)`: the committed value comes back."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class Compute:
    """`ctx.checkpoint_compute(key, fn)`: `fn(attempt)` runs on the owner only; `attempt` counts
    the runs of this side effect (1 for the first), so a non-deterministic one can use it."""

    key: str
    fn: Callable[[int], Any]


Request = Put | Compute
WorkflowGen = Generator[Request, Any, Any]
WorkflowFn = Callable[[Any], WorkflowGen]


def counter(data: Any) -> WorkflowGen:
    """A counter loop: n checkpoints, each the running total."""
    total = 0
    for i in range(int(data["n"])):
        total = yield Put(f"count/{i}", total + i)
    return {"total": total}


def order(data: Any) -> WorkflowGen:
    """A status variable, a deterministic compute, a non-deterministic one (a reservation
    ticket that differs on every run of the side effect) and a loop over the lines."""
    item, qty = str(data["item"]), int(data["qty"])
    yield Put("status", "processing")
    price = yield Compute("price", lambda _attempt: 7 * len(item))
    ticket = yield Compute("reserve", lambda attempt: f"{item}#{attempt}")
    yield Put("ticket", ticket)  # the committed ticket, whichever run of the side effect won
    total = 0
    for line in range(qty):
        total = yield Put(f"line/{line}", total + price)
    status = yield Put("status", "confirmed" if str(ticket).startswith(item) else "lost")
    return {"item": item, "total": total, "status": status}


def squares(data: Any) -> WorkflowGen:
    """A loop of computes, each folded into an accumulator."""
    acc = 0
    for i in range(int(data["n"])):
        square = yield Compute(f"square/{i}", _square(i))
        acc = yield Put(f"acc/{i}", acc + int(square))
    return acc


def _square(i: int) -> Callable[[int], int]:
    return lambda _attempt: i * i


WORKFLOWS: dict[tuple[str, int], WorkflowFn] = {
    ("counter", 1): counter,
    ("order", 1): order,
    ("squares", 2): squares,
}
PAIRS: tuple[tuple[str, int], ...] = tuple(sorted(WORKFLOWS))


def _json(value: Any) -> Any:
    """The value as the log carries it (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


def reference_output(name: str, version: int, data: Any) -> Any:
    """The output of a fault-free run: the generator fed its own values, each side effect once."""
    gen = WORKFLOWS[(name, version)](data)
    value: Any = None
    try:
        while True:
            request = gen.send(value)
            raw = request.value if isinstance(request, Put) else request.fn(1)
            value = _json(raw)
    except StopIteration as stop:
        return _json(stop.value)


def random_input(name: str, rng: random.Random) -> Any:
    if name == "counter":
        return {"n": rng.randint(1, 12)}
    if name == "order":
        return {"item": rng.choice(("apple", "book", "chair", "desk")), "qty": rng.randint(1, 6)}
    return {"n": rng.randint(1, 8)}


# --- the state machine of a simulated node ---------------------------------------------------


class WorkflowSimMachine:
    """A `WorkflowStateMachine` in the simulator's `SimStateMachine` shape.

    `commands` keeps the entries that are no workflow commands (the schedule's random
    commands and its recovery marker), so the schedule's liveness check works unchanged.
    """

    def __init__(self, chaos: WorkflowChaos, node_id: int, snapshot: Snapshot | None) -> None:
        self.chaos = chaos
        self.node_id = node_id
        self.machine = WorkflowStateMachine()
        self.commands: list[bytes] = []
        self.applied_index = 0
        self.restores = 0
        self.completions: dict[str, int] = {}
        self.starts: dict[str, int] = {}
        self.machine.emit = self._on_emit
        if snapshot is not None:
            self.restore(snapshot)

    def apply(self, entry: Entry) -> None:
        answer = self.machine.apply(entry)
        self.applied_index = entry.index
        if (
            entry.kind is EntryKind.NORMAL
            and entry.data
            and isinstance(answer, dict)
            and answer.get("error") == "malformed"
        ):
            self.commands.append(entry.data)

    def snapshot_data(self) -> bytes:
        return marshal.dumps((self.machine.snapshot(), self.commands))

    def restore(self, snapshot: Snapshot) -> None:
        workflows, commands = marshal.loads(snapshot.data) if snapshot.data else (b"", [])
        self.machine.restore(workflows)
        self.commands = list(commands)
        self.applied_index = snapshot.meta.index
        self.restores += 1
        for record in self.machine.workflows.values():
            self.chaos._observe_record(self.node_id, record)

    def _on_emit(self, kind: str, fields: dict[str, Any]) -> None:
        workflow_id = str(fields.get("workflow_id"))
        record = self.machine.get(workflow_id)
        if record is None:
            return
        if kind == "workflow_completed":
            self.completions[workflow_id] = self.completions.get(workflow_id, 0) + 1
        elif kind == "workflow_started":
            self.starts[workflow_id] = self.starts.get(workflow_id, 0) + 1
        if kind in ("workflow_started", "owner_changed", "checkpoint_committed"):
            self.chaos._observe_record(self.node_id, record)
        elif kind in ("workflow_completed", "workflow_failed", "workflow_cancelled"):
            self.chaos._observe_end(self.node_id, record)


# --- one node's engine -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pending:
    """A proposal that may still commit: under `epoch`, at `index`, while the proposer was
    in `term`. The engine proposes again once the proposer applied `index` without the
    result it wanted, or its term moved on (the runtime's answer or timeout)."""

    epoch: int
    index: int
    term: int


@dataclass(slots=True)
class _Run:
    """One node incarnation's run of one workflow."""

    workflow_id: str
    gen: WorkflowGen
    seq: list[CommittedCheckpoint]
    """The committed sequence: the state machine's own list, held after the end as well."""
    request: Request | None = None
    ordinal: int = 0
    produced: Any = None
    has_produced: bool = False
    proposed: _Pending | None = None
    consumed: list[tuple[str, Any]] = field(default_factory=list)
    output: Any = None
    done: bool = False
    closed: bool = False
    """Done and ended in this node's state: nothing left to do."""
    superseded: bool = False
    diverged: str | None = None


@dataclass(slots=True)
class _Engine:
    """The workflow engine of one node incarnation (a crash loses it)."""

    node_id: int
    incarnation: int
    machine: WorkflowSimMachine
    restores: int = 0
    runs: dict[str, _Run] = field(default_factory=dict)
    owner_inflight: dict[str, _Pending] = field(default_factory=dict)
    end_inflight: dict[str, _Pending] = field(default_factory=dict)
    register_inflight: _Pending | None = None
    last_seen: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Requested:
    workflow_id: str
    name: str
    version: int
    input: Any
    expected: Any
    proposed_at: tuple[int, _Pending] | None = None  # (node, proposal)


BROKEN_MODES: tuple[str, ...] = ("two_owners", "own_values", "compute_everywhere")
"""Deliberately wrong drivers: `two_owners` lets a new leader act under the old owner's epoch
without an OwnerChange; `own_values` lets a node consume the value it computed instead of the
committed one; `compute_everywhere` runs side effects on followers too."""


class WorkflowChaos:
    """Drives workflows on every node of a `Simulation`; call `tick()` after every step."""

    def __init__(
        self,
        seed: int,
        *,
        start_rate: float = 0.012,
        failover_rate: float = 0.25,
        faults: frozenset[str] | None = None,
        broken: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if broken is not None and broken not in BROKEN_MODES:
            raise ValueError(f"unknown broken mode {broken!r}; choose from {BROKEN_MODES}")
        self.rng = random.Random(f"workflows/{seed}")
        self.start_rate = start_rate
        self.failover_rate = failover_rate
        self.faults = frozenset(("partition", "crash", "transfer")) if faults is None else faults
        self._computed_now = False
        self._heal_at: int | None = None
        self._restart_at: dict[int, int] = {}
        self.broken = broken
        self.say = log or (lambda _line: None)
        self.sim: Simulation | None = None
        self.requested: dict[str, _Requested] = {}
        self.truth: dict[str, list[CommittedCheckpoint]] = {}
        self.ended: dict[str, tuple[int | None, str, Any]] = {}  # index, status, result
        self.epoch_owner: dict[tuple[str, int], int | None] = {}
        self.proposers: dict[tuple[str, int], set[int]] = {}
        self.effects: dict[tuple[str, int], int] = {}
        self.stints: dict[tuple[str, int], set[tuple[int, int]]] = {}
        self.violations: list[str] = []
        self._engines: dict[int, _Engine] = {}
        self._incarnation: dict[int, int] = {}
        self._machines: dict[int, WorkflowSimMachine] = {}

    # --- wiring --------------------------------------------------------------------------------

    def machine_factory(self, node_id: int, snapshot: Snapshot | None) -> SimStateMachine:
        machine = WorkflowSimMachine(self, node_id, snapshot)
        self._machines[node_id] = machine
        return machine

    def attach(self, sim: Simulation) -> None:
        self.sim = sim

    def _sim(self) -> Simulation:
        if self.sim is None:
            raise RuntimeError("attach(sim) first")
        return self.sim

    # --- the tick ------------------------------------------------------------------------------

    def tick(self, *, start: bool = True) -> None:
        """After `sim.step()`: maybe start a workflow, then every live node's engine acts."""
        sim = self._sim()
        if start and self.rng.random() < self.start_rate:
            self._request()
        self._retry_starts()
        for node_id, node in sorted(sim.nodes.items()):
            engine = self._engines.get(node_id)
            if not node.alive:
                if engine is not None:
                    self._retire(engine, "crashed")
                    del self._engines[node_id]
                continue
            machine = node.state_machine
            assert isinstance(machine, WorkflowSimMachine)
            if engine is None or engine.machine is not machine:
                if engine is not None:
                    self._retire(engine, "restarted")
                self._incarnation[node_id] = self._incarnation.get(node_id, 0) + 1
                engine = _Engine(node_id, self._incarnation[node_id], machine, machine.restores)
                self._engines[node_id] = engine
            self._act(engine)
        self._failover()

    def _failover(self) -> None:
        """Faults aimed at workflows: right after an owner ran a side effect and proposed its
        value, sometimes isolate, crash or depose it, so that failovers fall inside
        operations (the random schedule alone rarely hits one)."""
        sim = self._sim()
        if self._heal_at is not None and sim.tick >= self._heal_at:
            self._heal_at = None
            sim.heal()
            self.say(f"tick {sim.tick}: heal (workflow failover)")
        for node_id, when in sorted(self._restart_at.items()):
            if sim.tick >= when:
                del self._restart_at[node_id]
                if not sim.node(node_id).alive:
                    sim.restart(node_id)
                    self.say(f"tick {sim.tick}: restart {node_id} (workflow failover)")
        computed, self._computed_now = self._computed_now, False
        if not computed or self.rng.random() >= self.failover_rate:
            return
        leader = sim.leader()
        options = sorted(self.faults & {"partition", "crash", "transfer"})
        if leader is None or not options:
            return
        choice = self.rng.choice(options)
        if choice == "partition" and self._heal_at is None:
            sim.isolate(leader)
            self._heal_at = sim.tick + self.rng.randint(5, 60)
            self.say(f"tick {sim.tick}: isolate owner {leader} (workflow failover)")
        elif choice == "crash":
            down = sum(1 for n in sim.nodes.values() if not n.alive)
            if (down + 1) * 2 < len(sim.nodes):
                sim.crash(leader)
                self._restart_at[leader] = sim.tick + self.rng.randint(5, 60)
                self.say(f"tick {sim.tick}: crash owner {leader} (workflow failover)")
        elif choice == "transfer":
            raft = sim.node(leader).raft
            assert raft is not None
            voters = sorted(raft.conf.voters - {leader})
            if voters:
                target = self.rng.choice(voters)
                try:
                    sim.transfer_leader(target)
                except RaftError:
                    return
                self.say(
                    f"tick {sim.tick}: transfer owner {leader} -> {target} (workflow failover)"
                )

    def _request(self) -> None:
        name, version = self.rng.choice(PAIRS)
        data = random_input(name, self.rng)
        workflow_id = f"w{len(self.requested) + 1}"
        expected = reference_output(name, version, data)
        self.requested[workflow_id] = _Requested(workflow_id, name, version, data, expected)
        self.say(f"tick {self._sim().tick}: start {workflow_id} {name} v{version} {data}")
        self._propose_start(self.requested[workflow_id])
        if self.rng.random() < 0.1:  # a client that retries at once: the id dedups it
            self._propose_start(self.requested[workflow_id])

    def _propose_start(self, req: _Requested) -> None:
        sim = self._sim()
        leader = sim.leader()
        if leader is None:
            return
        machine = self._machine_of(leader)
        capable = machine.machine.capable_nodes(req.name, req.version) if machine else set()
        owner = leader if leader in capable else None
        command = Start(req.workflow_id, req.name, req.version, req.input, owner, leader)
        index = sim.propose(encode(command), node=leader)
        raft = sim.node(leader).raft
        if index is not None and raft is not None:
            req.proposed_at = (leader, _Pending(0, index, raft.term))

    def _retry_starts(self) -> None:
        """A start proposal can be lost with its leader: propose again until it is applied."""
        sim = self._sim()
        leader = sim.leader()
        if leader is None:
            return
        machine = self._machine_of(leader)
        if machine is None:
            return
        for req in self.requested.values():
            if req.workflow_id in machine.machine.workflows or req.workflow_id in self.ended:
                continue
            if req.proposed_at is not None:
                node_id, pending = req.proposed_at
                if self._waiting(node_id, pending, 0):
                    continue
            self._propose_start(req)

    def _machine_of(self, node_id: int) -> WorkflowSimMachine | None:
        node = self._sim().node(node_id)
        machine = node.state_machine if node.alive else None
        return machine if isinstance(machine, WorkflowSimMachine) else None

    # --- one node's engine ---------------------------------------------------------------------

    def _act(self, engine: _Engine) -> None:
        machine = engine.machine
        if machine.restores != engine.restores:
            engine.restores = machine.restores
            self._reconcile(engine)
        self._register(engine)
        if self._leads(engine.node_id):
            self._ensure_owners(engine)
        for record in machine.machine.running():
            if record.workflow_id not in engine.runs:
                self._begin(engine, record)
        for run in list(engine.runs.values()):
            if run.closed:
                continue
            if not run.done and not run.superseded and run.diverged is None:
                self._advance(engine, run)
            if run.done:
                self._maybe_end(engine, run)

    def _register(self, engine: _Engine) -> None:
        machine = engine.machine.machine
        raft = self._sim().node(engine.node_id).raft
        assert raft is not None
        if machine.capabilities.get(engine.node_id) == frozenset(PAIRS):
            return
        if engine.node_id not in raft.conf.members:
            return
        if self._waiting(engine.node_id, engine.register_inflight, 0):
            return
        engine.register_inflight = self._propose(engine.node_id, Register(engine.node_id, PAIRS), 0)

    def _leads(self, node_id: int) -> bool:
        """The node leads and applied an entry of its term: its state holds every earlier
        owner change (`WorkflowRuntime.acting_owner`, `_ensure_owners`)."""
        raft = self._sim().node(node_id).raft
        return (
            raft is not None
            and raft.role is Role.LEADER
            and raft.log.term(raft.applied_index) == raft.term
        )

    def acting_owner(self, engine: _Engine, record: WorkflowRecord) -> bool:
        """The mirror of `WorkflowRuntime.acting_owner`."""
        if not record.running:
            return False
        if self.broken == "two_owners" and self._leads(engine.node_id):
            return True  # WRONG: acts under whatever epoch is current, owner or not
        if record.owner != engine.node_id:
            return False
        raft = self._sim().node(engine.node_id).raft
        assert raft is not None
        if raft.role is Role.LEADER:
            return raft.log.term(raft.applied_index) == raft.term
        leader = raft.leader
        return leader is not None and not engine.machine.machine.can_own(record, leader)

    def _ensure_owners(self, engine: _Engine) -> None:
        """The leader's job: every running workflow gets a live owner that can run it."""
        sim = self._sim()
        raft = sim.node(engine.node_id).raft
        assert raft is not None
        for peer, progress in raft.progress.items():
            if progress.recent_active:
                engine.last_seen[peer] = sim.tick
        grace = 2 * sim.config.election_timeout
        machine = engine.machine.machine
        members = raft.conf.members
        for record in machine.running():
            inflight = engine.owner_inflight.get(record.workflow_id)
            if self._waiting(engine.node_id, inflight, record.epoch):
                continue  # a change is on its way
            candidates = {
                n
                for n in machine.capable_nodes(record.name, record.version)
                if n in members and n not in record.excluded
            }
            if not candidates:
                continue

            def alive(node: int) -> bool:
                seen = engine.last_seen.get(node)
                return node == engine.node_id or (seen is not None and sim.tick - seen <= grace)

            if engine.node_id in candidates:
                desired = engine.node_id
            elif record.owner in candidates and alive(record.owner):
                continue
            else:
                living = sorted(n for n in candidates if alive(n))
                if not living:
                    continue
                desired = living[0]
            if desired == record.owner:
                continue
            if self.broken == "two_owners" and record.owner is not None:
                continue  # WRONG: no new epoch, the new leader just acts under the old one
            pending = self._propose(
                engine.node_id,
                OwnerChange(record.workflow_id, desired, record.epoch + 1),
                record.epoch,
            )
            if pending is not None:
                engine.owner_inflight[record.workflow_id] = pending
                self.say(
                    f"tick {sim.tick}: node {engine.node_id} moves {record.workflow_id} to "
                    f"node {desired} (epoch {record.epoch + 1})"
                )

    def _begin(self, engine: _Engine, record: WorkflowRecord) -> None:
        fn = WORKFLOWS.get((record.name, record.version))
        if fn is None or engine.node_id in record.excluded:
            return
        engine.runs[record.workflow_id] = _Run(
            record.workflow_id, fn(record.input), record.checkpoints
        )

    def _reconcile(self, engine: _Engine) -> None:
        """After a snapshot install (`WorkflowRuntime._reconcile`): relink or supersede."""
        machine = engine.machine.machine
        for workflow_id, run in engine.runs.items():
            record = machine.get(workflow_id)
            if record is not None and record.running:
                run.seq = record.checkpoints  # the same history, maybe longer
            elif not run.done:
                run.superseded = True  # the snapshot ended the run and dropped its sequence
                self._check_prefix(engine, run, "superseded by a snapshot")

    def _advance(self, engine: _Engine, run: _Run) -> None:
        machine = engine.machine.machine
        identity = (engine.node_id, engine.incarnation)
        while True:
            if run.request is None and not self._resume(run, None):
                return
            request = run.request
            assert request is not None
            k = run.ordinal
            if k < len(run.seq):
                committed = run.seq[k]
                if committed.key != request.key:
                    run.diverged = (
                        f"ordinal {k}: committed key {committed.key!r}, run {request.key!r}"
                    )
                    self._violate(
                        f"node {engine.node_id}: workflow {run.workflow_id} diverged at "
                        f"{run.diverged}"
                    )
                    return
                value = committed.value
                if self.broken == "own_values" and run.has_produced:
                    value = run.produced  # WRONG: its own computation, not the committed value
                run.consumed.append((committed.key, value))
                run.ordinal = k + 1
                run.produced, run.has_produced, run.proposed = None, False, None
                if not self._resume(run, value):
                    return
                continue
            record = machine.get(run.workflow_id)
            if record is None or not record.running:
                return  # the run ended at a point this run has not reached: checked at the end
            acting = self.acting_owner(engine, record)
            if acting:
                self.stints.setdefault((run.workflow_id, k), set()).add(identity)
            if not run.has_produced and (acting or self.broken == "compute_everywhere"):
                run.produced = self._produce(run.workflow_id, k, request)
                run.has_produced = True
                if acting and isinstance(request, Compute):
                    self._computed_now = True
            if not acting:
                return
            if not self._waiting(engine.node_id, run.proposed, record.epoch):
                command = Checkpoint(run.workflow_id, k, request.key, run.produced, record.epoch)
                run.proposed = self._propose(engine.node_id, command, record.epoch)
            return

    def _produce(self, workflow_id: str, ordinal: int, request: Request) -> Any:
        if isinstance(request, Put):
            return _json(request.value)
        slot = (workflow_id, ordinal)
        self.effects[slot] = self.effects.get(slot, 0) + 1
        return _json(request.fn(self.effects[slot]))

    @staticmethod
    def _resume(run: _Run, value: Any) -> bool:
        """Feed the generator; False once it returned (its output is kept)."""
        try:
            run.request = run.gen.send(value) if run.request is not None else next(run.gen)
        except StopIteration as stop:
            run.output = _json(stop.value)
            run.done = True
            run.request = None
            return False
        return True

    def _maybe_end(self, engine: _Engine, run: _Run) -> None:
        record = engine.machine.machine.get(run.workflow_id)
        if record is None or not record.running:
            run.closed = True
            return
        if not self.acting_owner(engine, record):
            return
        if self._waiting(engine.node_id, engine.end_inflight.get(run.workflow_id), record.epoch):
            return
        command = End(run.workflow_id, record.epoch, run.ordinal, run.output)
        pending = self._propose(engine.node_id, command, record.epoch)
        if pending is not None:
            engine.end_inflight[run.workflow_id] = pending

    def _waiting(self, node_id: int, pending: _Pending | None, epoch: int) -> bool:
        """Whether `pending` may still commit, so the proposer should not propose again."""
        if pending is None or pending.epoch != epoch:
            return False
        raft = self._sim().node(node_id).raft
        return raft is not None and raft.term == pending.term and raft.applied_index < pending.index

    def _propose(self, node_id: int, command: Command, epoch: int) -> _Pending | None:
        """Propose on the node if it leads, else forward to the leader it knows (when the
        network lets it); the pending proposal, or None when refused."""
        sim = self._sim()
        raft = sim.node(node_id).raft
        if raft is None:
            return None
        target = node_id if raft.role is Role.LEADER else raft.leader
        if target is None or not sim.connected(node_id, target):
            return None
        if isinstance(command, Checkpoint | End):
            self.proposers.setdefault((command.workflow_id, command.epoch), set()).add(node_id)
        index = sim.propose(encode(command), node=target)
        return None if index is None else _Pending(epoch, index, raft.term)

    # --- observing the committed state ---------------------------------------------------------

    def _observe_record(self, node_id: int, record: WorkflowRecord) -> None:
        """Every node's state machine must show the same history (the truth is the first)."""
        workflow_id = record.workflow_id
        owner = self.epoch_owner.setdefault((workflow_id, record.epoch), record.owner)
        if record.running and owner != record.owner:
            self._violate(
                f"node {node_id}: workflow {workflow_id} epoch {record.epoch} is owned by "
                f"{record.owner}, another node saw {owner}"
            )
        truth = self.truth.setdefault(workflow_id, [])
        for checkpoint in record.checkpoints:
            k = checkpoint.ordinal
            if k == len(truth):
                truth.append(checkpoint)
            elif k < len(truth) and truth[k] != checkpoint:
                self._violate(
                    f"node {node_id}: workflow {workflow_id} ordinal {k} committed as "
                    f"{checkpoint}, another node has {truth[k]}"
                )

    def _observe_end(self, node_id: int, record: WorkflowRecord) -> None:
        ended = (record.ended_index, record.status.value, record.result)
        first = self.ended.setdefault(record.workflow_id, ended)
        if first != ended:
            self._violate(
                f"node {node_id}: workflow {record.workflow_id} ended as {ended}, another node "
                f"has {first}"
            )

    def _violate(self, message: str) -> None:
        if message not in self.violations:
            self.violations.append(message)

    def _check_prefix(self, engine: _Engine, run: _Run, why: str) -> None:
        truth = [(c.key, c.value) for c in self.truth.get(run.workflow_id, [])]
        if run.consumed != truth[: len(run.consumed)]:
            self._violate(
                f"node {engine.node_id} ({why}): workflow {run.workflow_id} "
                f"{_difference(run.consumed, truth)}"
            )

    def _retire(self, engine: _Engine, why: str) -> None:
        for run in engine.runs.values():
            self._check_prefix(engine, run, why)

    # --- the end -------------------------------------------------------------------------------

    def finish(self, max_ticks: int = 3000) -> list[str]:
        """Drive (no new workflows) until every workflow ended on every member and every run
        there is done; then check everything. The violations, empty when all is well."""
        sim = self._sim()
        for _ in range(max_ticks):
            if self._settled():
                break
            sim.step()
            self.tick(start=False)
        else:
            self._violate(f"liveness: workflows still unfinished {max_ticks} ticks after recovery")
        self._check_end()
        return list(self.violations)

    def _members(self) -> list[int]:
        sim = self._sim()
        leader = sim.leader()
        if leader is None:
            return []
        raft = sim.node(leader).raft
        assert raft is not None
        return sorted(n for n in raft.conf.members if n in sim.nodes and sim.node(n).alive)

    def _settled(self) -> bool:
        members = self._members()
        if not members:
            return False
        for node_id in members:
            machine = self._machine_of(node_id)
            engine = self._engines.get(node_id)
            if machine is None or engine is None:
                return False
            for workflow_id in self.requested:
                record = machine.machine.get(workflow_id)
                if record is None or record.running:
                    return False
            if any(
                not (run.done or run.superseded or run.diverged) for run in engine.runs.values()
            ):
                return False
        return True

    def _check_end(self) -> None:
        for workflow_id, req in self.requested.items():
            truth = [(c.key, c.value) for c in self.truth.get(workflow_id, [])]
            for node_id in self._members():
                machine = self._machine_of(node_id)
                engine = self._engines.get(node_id)
                if machine is None or engine is None:
                    continue
                record = machine.machine.get(workflow_id)
                if record is None or record.status is not WorkflowStatus.COMPLETED:
                    status = "missing" if record is None else record.status.value
                    self._violate(f"node {node_id}: workflow {workflow_id} is {status}")
                    continue
                if record.result != req.expected:
                    self._violate(
                        f"node {node_id}: workflow {workflow_id} completed with {record.result}, "
                        f"a fault-free run gives {req.expected}"
                    )
                if machine.completions.get(workflow_id, 0) > 1:
                    self._violate(f"node {node_id}: workflow {workflow_id} completed twice")
                if machine.starts.get(workflow_id, 0) > 1:
                    self._violate(f"node {node_id}: workflow {workflow_id} started twice")
                run = engine.runs.get(workflow_id)
                if run is None or run.superseded:
                    if run is not None:
                        self._check_prefix(engine, run, "superseded")
                    continue
                if run.consumed != truth:
                    self._violate(
                        f"node {node_id}: workflow {workflow_id} {_difference(run.consumed, truth)}"
                    )
                elif not run.done or run.output != req.expected:
                    self._violate(
                        f"node {node_id}: workflow {workflow_id}: its run ended with "
                        f"{run.output} (done={run.done}), a fault-free run gives {req.expected}"
                    )
        for (workflow_id, epoch), nodes in sorted(self.proposers.items()):
            owner = self.epoch_owner.get((workflow_id, epoch))
            if nodes - {owner}:
                self._violate(
                    f"workflow {workflow_id} epoch {epoch}: node(s) {sorted(nodes)} proposed, "
                    f"the owner of that epoch is {owner}"
                )
        for slot, count in sorted(self.effects.items()):
            stints = len(self.stints.get(slot, ()))
            if count > stints:
                self._violate(
                    f"workflow {slot[0]} operation {slot[1]}: the side effect ran {count} times "
                    f"in {stints} owner stint(s) ({max(stints - 1, 0)} failover(s))"
                )

    def summary(self) -> dict[str, int]:
        return {
            "workflows": len(self.requested),
            "checkpoints": sum(len(t) for t in self.truth.values()),
            "side_effects": sum(self.effects.values()),
            "epochs": len(self.epoch_owner),
        }


def _difference(consumed: list[tuple[str, Any]], committed: list[tuple[str, Any]]) -> str:
    """Where a run's consumed values leave the committed sequence, in words."""
    for k, (mine, theirs) in enumerate(zip(consumed, committed, strict=False)):
        if mine != theirs:
            return (
                f"consumed {mine[0]!r}={mine[1]!r} at ordinal {k}, the committed value is "
                f"{theirs[0]!r}={theirs[1]!r}"
            )
    return f"consumed {len(consumed)} values, {len(committed)} are committed"


__all__ = [
    "BROKEN_MODES",
    "PAIRS",
    "WORKFLOWS",
    "Compute",
    "Put",
    "WorkflowChaos",
    "WorkflowSimMachine",
    "reference_output",
]
