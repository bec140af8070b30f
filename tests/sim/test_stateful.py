"""Hypothesis drives a 5-node simulated cluster through random faults and operations.

After every step the simulator's safety invariants hold (election safety, leader append-only,
log matching, leader completeness, state machine safety) and every node's applied commands are
a prefix of the longest history. At the end every fault is repaired and the cluster must elect
a leader and commit a new command on every live voter: liveness after faults.

A failure prints the Simulation seed (in the notes and in the assertion message) and the steps;
`Simulation(nodes=5, seed=SEED)` plus those steps replays the run exactly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from raftoral_lab.core import Role
from raftoral_lab.errors import InvariantViolation, RaftError
from raftoral_lab.sim import Simulation

NODES = 5
MAX_ADDED = 2  # add_node at most this often per run
MIN_VOTERS = 3  # remove_node never goes below this many voters
MEMBERSHIP_TICKS = 300  # how long add_node / remove_node may wait for the cluster
RECOVERY_TICKS = 3000  # after healing: ticks allowed for a leader, then for a commit


class RaftCluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.seed = -1
        self.removed: set[int] = set()
        self.added = 0
        self.proposals = 0

    # --- helpers -----------------------------------------------------------------------------

    @property
    def cluster(self) -> Simulation:
        assert self.sim is not None
        return self.sim

    def where(self) -> str:
        sim = self.cluster
        nodes = ", ".join(repr(node) for node in sim.nodes.values())
        return f"Simulation(nodes={NODES}, seed={self.seed}) at tick {sim.tick}: {nodes}"

    def ids(self) -> list[int]:
        return sorted(i for i in self.cluster.nodes if i not in self.removed)

    def live(self) -> list[int]:
        return [i for i in self.ids() if self.cluster.node(i).alive]

    def crashed(self) -> list[int]:
        return [i for i in self.ids() if not self.cluster.node(i).alive]

    def voters(self) -> frozenset[int]:
        """The membership as the most advanced live node sees it."""
        sim = self.cluster
        best = max(
            (sim.node(i).raft for i in self.live()),
            key=lambda raft: (raft.applied_index, raft.term) if raft else (-1, -1),
            default=None,
        )
        return best.conf.voters if best is not None else frozenset(self.ids())

    def next_command(self) -> bytes:
        self.proposals += 1
        return f"cmd-{self.proposals}".encode()

    # --- setup -------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.seed = seed
        note(f"Simulation(nodes={NODES}, seed={seed})")
        self.sim = Simulation(nodes=NODES, seed=seed)

    # --- time and proposals -----------------------------------------------------------------

    @rule(ticks=st.integers(1, 30))
    def run(self, ticks: int) -> None:
        self.cluster.run(ticks)

    @rule()
    def run_until_leader(self) -> None:
        self.cluster.run_until(lambda s: s.leader() is not None, max_ticks=200)

    @rule()
    def propose_on_leader(self) -> None:
        index = self.cluster.propose(self.next_command())
        assert index is None or index > 0, f"{self.where()}: propose returned {index}"

    @rule(count=st.integers(1, 30), ticks=st.integers(0, 5))
    def propose_burst(self, count: int, ticks: int) -> None:
        for _ in range(count):
            self.cluster.propose(self.next_command())
        self.cluster.run(ticks)

    @rule(data=st.data())
    def propose_on_any_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.cluster.nodes)), label="node")
        index = self.cluster.propose(self.next_command(), node=node)  # refusal: None
        leader = self.cluster.leader()
        if index is not None:
            raft = self.cluster.node(node).raft
            assert raft is not None, f"{self.where()}: crashed node {node} accepted a proposal"
            assert raft.role is Role.LEADER, (
                f"{self.where()}: node {node} accepted a proposal as {raft.role.value}"
            )
        elif node == leader:
            raft = self.cluster.node(node).raft
            assert raft is not None and raft.transferee is not None, (
                f"{self.where()}: the leader {node} refused a proposal outside a transfer"
            )

    # --- network faults -----------------------------------------------------------------------

    @rule(data=st.data())
    def partition(self, data: st.DataObject) -> None:
        ids = sorted(self.cluster.nodes)
        side = data.draw(st.sets(st.sampled_from(ids), max_size=len(ids)), label="one side")
        self.cluster.partition(side, set(ids) - side)

    @rule(data=st.data())
    def isolate(self, data: st.DataObject) -> None:
        self.cluster.isolate(data.draw(st.sampled_from(sorted(self.cluster.nodes)), label="node"))

    @rule()
    def heal(self) -> None:
        self.cluster.heal()

    @rule(rate=st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.3]))
    def set_drop_rate(self, rate: float) -> None:
        self.cluster.set_drop_rate(rate)

    @rule(low=st.integers(0, 2), spread=st.integers(0, 4))
    def set_delay(self, low: int, spread: int) -> None:
        self.cluster.set_delay(low, low + spread)

    @rule(rate=st.sampled_from([0.0, 0.05, 0.2]))
    def set_duplicate_rate(self, rate: float) -> None:
        self.cluster.set_duplicate_rate(rate)

    # --- node faults --------------------------------------------------------------------------

    @precondition(lambda self: self.sim is not None and len(self.live()) > 1)
    @rule(data=st.data(), keep_majority=st.integers(0, 9))
    def crash(self, data: st.DataObject, keep_majority: int) -> None:
        node = data.draw(st.sampled_from(self.live()), label="node")
        voters = self.voters()
        live_voters = [i for i in self.live() if i in voters and i != node]
        if keep_majority and len(live_voters) < len(voters) // 2 + 1:
            return  # nine times in ten, keep a quorum of voters alive
        self.cluster.crash(node)

    @precondition(lambda self: self.sim is not None and bool(self.crashed()))
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        self.cluster.restart(data.draw(st.sampled_from(self.crashed()), label="node"))

    @precondition(lambda self: self.sim is not None and bool(self.live()))
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        self.cluster.compact(data.draw(st.sampled_from(self.live()), label="node"))

    # --- leadership and membership ------------------------------------------------------------

    @precondition(lambda self: self.sim is not None and self.sim.leader() is not None)
    @rule(data=st.data())
    def transfer_leader(self, data: st.DataObject) -> None:
        leader = self.cluster.leader()
        assert leader is not None
        raft = self.cluster.node(leader).raft
        assert raft is not None
        to = data.draw(st.sampled_from(sorted(raft.conf.voters)), label="to")
        try:
            self.cluster.transfer_leader(to)
        except RaftError as exc:  # a typed refusal; anything else is a bug
            note(f"transfer_leader({to}) refused: {exc!r}")

    @precondition(lambda self: self.sim is not None and self.added < MAX_ADDED)
    @rule(voter=st.booleans())
    def add_node(self, voter: bool) -> None:
        self.added += 1
        try:
            node = self.cluster.add_node(voter=voter, max_ticks=MEMBERSHIP_TICKS)
            note(f"added node {node} as {'voter' if voter else 'learner'}")
        except RaftError as exc:
            note(f"add_node refused: {exc!r}")

    @precondition(lambda self: self.sim is not None and len(self.voters()) > MIN_VOTERS)
    @rule(data=st.data())
    def remove_node(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.voters())), label="node")
        try:
            self.cluster.remove_node(node, max_ticks=MEMBERSHIP_TICKS)
            self.removed.add(node)
            note(f"removed node {node}")
        except RaftError as exc:
            note(f"remove_node({node}) refused: {exc!r}")

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def safety(self) -> None:
        if self.sim is None:
            return
        try:
            self.sim.check_invariants()  # raises InvariantViolation naming rule and nodes
        except InvariantViolation as exc:
            exc.add_note(self.where())
            raise

    @invariant()
    def applied_histories_are_prefixes_of_one_history(self) -> None:
        if self.sim is None:
            return
        histories = {i: node.commands for i, node in self.sim.nodes.items()}
        longest = max(histories.values(), key=len)
        for node, commands in histories.items():
            assert commands == longest[: len(commands)], (
                f"{self.where()}: node {node} applied {commands[-5:]} (of {len(commands)}), "
                f"not a prefix of the longest history (...{longest[len(commands) - 5 :][:10]})"
            )
        assert len(set(longest)) == len(longest), (
            f"{self.where()}: a command was applied twice: {longest}"
        )

    # --- liveness after faults ----------------------------------------------------------------

    def stable_leader(self) -> int | None:
        """The leader of the highest live term, once it committed an entry of its own term and
        is not handing over: a proposal made now is expected to commit."""
        sim = self.cluster
        leader = sim.leader()
        raft = sim.node(leader).raft if leader is not None else None
        if raft is None:
            return None
        top = max(r.term for r in (sim.node(i).raft for i in self.live()) if r is not None)
        own_commit = raft.log.term(raft.commit_index) == raft.term
        return leader if raft.term == top and own_commit and raft.transferee is None else None

    def applied_on_live_voters(self, command: bytes) -> list[int]:
        """The live voters that have not applied `command` yet."""
        voters = self.voters()
        return [
            i for i in self.live() if i in voters and command not in self.cluster.node(i).commands
        ]

    def teardown(self) -> None:
        if self.sim is None:
            return
        sim = self.sim
        sim.heal()
        sim.set_drop_rate(0.0)
        sim.set_delay(0, 0)
        sim.set_duplicate_rate(0.0)
        for node in self.crashed():
            sim.restart(node)
        deadline = sim.tick + RECOVERY_TICKS
        attempts: list[str] = []  # a proposal to a leader that is then deposed may be lost
        done = False
        while not done and sim.tick < deadline:
            if not sim.run_until(
                lambda s: self.stable_leader() is not None, max_ticks=deadline - sim.tick
            ):
                break
            leader = self.stable_leader()
            assert leader is not None
            raft = sim.node(leader).raft
            assert raft is not None
            term, command = raft.term, self.next_command()
            index = sim.propose(command)
            attempts.append(f"{command!r} on node {leader} term {term} at tick {sim.tick}: {index}")
            if index is None:
                sim.step()
                continue

            def settled(
                s: Simulation, leader: int = leader, term: int = term, command: bytes = command
            ) -> bool:
                now = s.node(leader).raft
                deposed = now is None or now.term != term or now.role is not Role.LEADER
                return deposed or not self.applied_on_live_voters(command)

            sim.run_until(settled, max_ticks=deadline - sim.tick)
            done = not self.applied_on_live_voters(command)
        note(f"liveness after healing: {attempts}")
        assert done, (
            f"{self.where()}: no new command applied on every live voter within "
            f"{RECOVERY_TICKS} ticks of healing (leader now {sim.leader()}, stable leader "
            f"{self.stable_leader()}); proposals: {attempts}"
        )
        sim.check_invariants()
        self.applied_histories_are_prefixes_of_one_history()


TestRaftCluster = RaftCluster.TestCase
TestRaftCluster.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,  # shrink one failure, quickly, rather than every variant
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
