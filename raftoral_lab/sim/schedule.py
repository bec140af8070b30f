"""Random fault schedules: many seeded runs of a cluster under faults, checked for safety.

Each seed drives one `Simulation` through `ticks` ticks while a seeded generator proposes
commands and injects the chosen faults. Most faults are one random action; `figure8` is a
scripted sequence over many ticks (`raftoral_lab.sim.adversary`) that random actions would
almost never line up, and the seed also picks the cluster's batch size. Safety is checked
after every step by the invariant checker; at the end the faults are cleared and the cluster
must elect a leader and commit a new command on every live voter (liveness). A seed replays
exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from raftoral_lab.core import ConfChange, ConfChangeOp, RaftConfig
from raftoral_lab.errors import ConfigError, InvariantViolation, RaftError
from raftoral_lab.sim.adversary import Figure8
from raftoral_lab.sim.simulation import SimNode, Simulation

if TYPE_CHECKING:
    from raftoral_lab.sim.workflows import WorkflowChaos

FAULTS: tuple[str, ...] = (
    "partition",
    "crash",
    "drop",
    "delay",
    "duplicate",
    "compact",
    "membership",
    "transfer",
    "figure8",
)
BATCH_SIZES: tuple[int, ...] = (RaftConfig().max_entries_per_message, 64, 8, 4)
"""`max_entries_per_message` of a seed's cluster, drawn per seed: small batches let a follower
acknowledge part of what a new leader copies, which the `figure8` sequence needs."""


def parse_faults(spec: str) -> frozenset[str]:
    """`all`, `none`, or a comma list of FAULTS."""
    spec = spec.strip().lower()
    if spec == "all":
        return frozenset(FAULTS)
    if spec in ("", "none"):
        return frozenset()
    chosen = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = chosen - set(FAULTS)
    if unknown:
        raise ConfigError(
            f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}, or 'all'"
        )
    return frozenset(chosen)


@dataclass(frozen=True, slots=True)
class Outcome:
    seed: int
    violation: str | None
    ticks: int
    committed: int
    stats: dict[str, int] = field(default_factory=dict)
    workflows: bool = False

    def replay_command(self, ticks: int, faults: Iterable[str], nodes: int) -> str:
        names = ",".join(sorted(faults)) or "none"
        if set(faults) == set(FAULTS):
            names = "all"
        return (
            f"raftoral-lab sim --seed {self.seed} --ticks {ticks} --nodes {nodes} "
            f"--faults {names}{' --workflows' if self.workflows else ''} --verbose"
        )


def run_schedule(
    seed: int,
    ticks: int = 3000,
    faults: frozenset[str] = frozenset(FAULTS),
    *,
    nodes: int = 5,
    log: Callable[[str], None] | None = None,
    workflows: bool = False,
    chaos: WorkflowChaos | None = None,
) -> Outcome:
    """One seeded run; never raises once the cluster is built: a broken invariant, a stuck
    cluster or any exception (reported as "crash: Type: message") is the Outcome's violation,
    so one failing seed never stops a run over many.

    With `workflows` (or a `chaos` driver of `raftoral_lab.sim.workflows`, e.g. a
    deliberately broken one), every node runs the workflow state machine, workflows start at
    random ticks, and after the recovery the workflow checks run too.
    """
    rng = random.Random(f"schedule/{seed}")
    say = log or (lambda _line: None)
    if workflows and chaos is None:
        from raftoral_lab.sim.workflows import WorkflowChaos  # only this mode needs workflow

        chaos = WorkflowChaos(seed, faults=faults, log=say)
    factory = chaos.machine_factory if chaos is not None else None
    batch = random.Random(f"batch/{seed}").choice(BATCH_SIZES)
    config = RaftConfig(trace=False, max_entries_per_message=batch)
    sim = Simulation(
        nodes=nodes, seed=seed, config=config, record_events=False, machine_factory=factory
    )
    say(f"tick 0: at most {batch} entries per message")
    if chaos is not None:
        chaos.attach(sim)
    with_workflows = chaos is not None
    stats: dict[str, int] = {}

    def act(name: str, line: str) -> None:
        stats[name] = stats.get(name, 0) + 1
        say(f"tick {sim.tick}: {line}")

    def outcome(violation: str | None) -> Outcome:
        if chaos is not None:
            stats.update(chaos.summary())
        return Outcome(seed, violation, sim.tick, _committed(sim), stats, with_workflows)

    sequence: Figure8 | None = None  # a scripted fault sequence under way
    try:
        for _ in range(ticks):
            if sequence is not None and not sequence.advance():
                sequence = None
            started = _inject(sim, rng, faults, act, busy=sequence is not None)
            sequence = sequence or started
            sim.step()
            if chaos is not None:
                chaos.tick()
        _recover(sim, say)
        sim.check_invariants()
        if chaos is not None:
            problems = chaos.finish()
            sim.check_invariants()
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                return outcome(f"workflow: {problems[0]}{more}")
    except InvariantViolation as violation:
        return outcome(str(violation))
    except _Stuck as stuck:
        return outcome(f"liveness: {stuck}")
    except Exception as exc:  # a livelock (RaftError) or a bug: one seed's failure, with its seed
        return outcome(f"crash: {type(exc).__name__}: {exc}")
    return outcome(None)


class _Stuck(Exception):
    pass


def _inject(
    sim: Simulation,
    rng: random.Random,
    faults: frozenset[str],
    act: Callable[[str, str], None],
    *,
    busy: bool = False,
) -> Figure8 | None:
    """Maybe propose, maybe inject one fault, at the rates a lively schedule needs; the
    scripted sequence it starts, if any (while one is `busy`, only proposals)."""
    if rng.random() < 0.3:
        count = rng.randint(1, 5)
        for _ in range(count):
            sim.propose(f"{sim.tick}:{rng.getrandbits(32)}".encode())
    if rng.random() > 0.02 or busy:  # about one fault every 50 ticks
        return None
    members = sorted(sim.nodes)
    live = [n for n in members if sim.node(n).alive]
    choice = rng.choice(sorted(faults)) if faults else None
    if choice == "partition":
        if rng.random() < 0.4:
            sim.heal()
            act("heal", "heal")
        else:
            side = set(rng.sample(members, rng.randint(1, len(members) - 1)))
            sim.partition(side, set(members) - side)
            act("partition", f"partition {sorted(side)} | {sorted(set(members) - side)}")
    elif choice == "crash":
        crashed = [n for n in members if not sim.node(n).alive]
        if crashed and (rng.random() < 0.6 or len(crashed) * 2 >= len(members)):
            target = rng.choice(crashed)
            sim.restart(target)
            act("restart", f"restart {target}")
        elif live:
            target = rng.choice(live)
            sim.crash(target)
            act("crash", f"crash {target}")
    elif choice == "drop":
        rate = rng.choice((0.0, 0.0, 0.05, 0.1, 0.3))
        sim.set_drop_rate(rate)
        act("drop", f"drop rate {rate}")
    elif choice == "delay":
        high = rng.choice((0, 0, 1, 3, 8))
        sim.set_delay(0 if high == 0 else 1, high)
        act("delay", f"delay up to {high} ticks")
    elif choice == "duplicate":
        rate = rng.choice((0.0, 0.05, 0.2))
        sim.set_duplicate_rate(rate)
        act("duplicate", f"duplicate rate {rate}")
    elif choice == "compact" and live:
        target = rng.choice(live)
        sim.compact(target)
        act("compact", f"compact {target}")
    elif choice == "transfer":
        leader, voters = sim.leader(), _voters(sim)
        if leader is not None and voters:
            target = rng.choice(voters)
            try:
                sim.transfer_leader(target)
                act("transfer", f"transfer leadership {leader} -> {target}")
            except RaftError:
                pass
    elif choice == "membership":
        _change_membership(sim, rng, act)
    elif choice == "figure8":
        leader = sim.leader()
        sequence = Figure8.start(sim, rng, lambda line: act("figure8 step", f"figure 8: {line}"))
        if sequence is not None:
            act("figure8", f"figure 8: leader {leader} cut off with {sorted(sequence.minority)}")
            return sequence
    return None


def _voters(sim: Simulation) -> list[int]:
    leader = sim.leader()
    if leader is None:
        return []
    return sorted(sim.node(leader).status().voters)


def _change_membership(
    sim: Simulation, rng: random.Random, act: Callable[[str, str], None]
) -> None:
    """Propose one single-server change on the leader without waiting for it."""
    leader = sim.leader()
    if leader is None:
        return
    raft = sim.node(leader).raft
    assert raft is not None
    conf = raft.conf
    outsiders = sorted(set(sim.nodes) - conf.members)
    options: list[ConfChange] = [ConfChange(ConfChangeOp.ADD_LEARNER, n) for n in outsiders]
    options += [ConfChange(ConfChangeOp.ADD_VOTER, n) for n in sorted(conf.learners)]
    if len(conf.voters) > 3:
        options += [ConfChange(ConfChangeOp.REMOVE, n) for n in sorted(conf.voters)]
    if not options:
        return
    change = rng.choice(options)
    try:
        raft.propose_conf_change(change)
        act("membership", f"{change.op.value} {change.node}")
    except RaftError:
        pass


def _recover(sim: Simulation, say: Callable[[str], None], max_ticks: int = 2000) -> None:
    """Clear every fault and demand progress: a leader, and a command on every live voter."""
    sim.heal()
    sim.set_drop_rate(0.0)
    sim.set_delay(0)
    sim.set_duplicate_rate(0.0)
    for node_id, node in sorted(sim.nodes.items()):
        if not node.alive:
            sim.restart(node_id)
    say(f"tick {sim.tick}: faults cleared, every node restarted")
    if not sim.run_until(lambda s: s.leader() is not None, max_ticks=max_ticks):
        raise _Stuck(f"no leader {max_ticks} ticks after the faults were cleared")
    marker = f"final/{sim.tick}".encode()
    for _ in range(max_ticks):
        if sim.propose(marker) is not None:
            break
        sim.step()
    else:
        raise _Stuck("the leader refused every proposal after the faults were cleared")

    def everywhere(s: Simulation) -> bool:
        leader = s.leader()
        if leader is None:
            return False
        if not _holds(s.node(leader), marker):
            s.propose(marker)  # it was lost with a leader that stepped down at once
        voters = s.node(leader).status().voters
        return all(marker in s.node(v).commands for v in voters if v in s.nodes and s.node(v).alive)

    if not sim.run_until(everywhere, max_ticks=max_ticks):
        raise _Stuck("a command proposed after recovery did not reach every voter")


def _holds(node: SimNode, data: bytes) -> bool:
    """Whether the node applied `data` or has it in its log."""
    raft = node.raft
    return data in node.commands or (
        raft is not None and any(entry.data == data for entry in reversed(raft.log.entries))
    )


def _committed(sim: Simulation) -> int:
    return max((n.raft.commit_index for n in sim.nodes.values() if n.raft), default=0)


__all__ = ["FAULTS", "Outcome", "parse_faults", "run_schedule"]
