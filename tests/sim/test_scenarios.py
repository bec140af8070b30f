"""Scenario tests on the deterministic simulator (issue 3), written against the Simulation API
of DESIGN.md section 3. Every test uses an explicit seed, names it in its failure messages, and
ends with `sim.check_invariants()` (the incremental checker also runs after every Ready).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from raftoral_lab.core import ConfChange, ConfChangeOp, Entry, HardState, RaftConfig, Ready, Role
from raftoral_lab.sim import Simulation

T = 10  # the election timeout of the default RaftConfig, in ticks


# --- helpers -----------------------------------------------------------------------------------


def elect(sim: Simulation, max_ticks: int = 30 * T) -> int:
    """Run until there is a leader; its id."""
    ok = sim.run_until(lambda s: s.leader() is not None, max_ticks=max_ticks)
    leader = sim.leader()
    assert ok and leader is not None, f"seed={sim.seed}: no leader within {max_ticks} ticks"
    return leader


def elect_other_than(sim: Simulation, old: int, max_ticks: int = 30 * T) -> int:
    ok = sim.run_until(lambda s: s.leader() not in (None, old), max_ticks=max_ticks)
    leader = sim.leader()
    assert ok and leader is not None, f"seed={sim.seed}: no new leader within {max_ticks} ticks"
    return leader


def applied_everywhere(sim: Simulation, commands: list[bytes], nodes: Iterable[int]) -> bool:
    return all(set(commands) <= set(sim.node(i).commands) for i in nodes)


def propose_and_commit(
    sim: Simulation,
    n: int,
    prefix: bytes = b"cmd",
    *,
    nodes: Iterable[int] | None = None,
    max_ticks: int = 30 * T,
) -> list[bytes]:
    """Propose n commands on the leader; run until `nodes` (default: the live ones) applied them."""
    leader = elect(sim)
    commands = [b"%s-%d" % (prefix, i) for i in range(n)]
    for command in commands:
        assert sim.propose(command) is not None, f"seed={sim.seed}: leader {leader} refused"
    targets = list(nodes) if nodes is not None else live(sim)
    ok = sim.run_until(lambda s: applied_everywhere(s, commands, targets), max_ticks=max_ticks)
    assert ok, f"seed={sim.seed}: {prefix!r} x{n} not applied on {targets} in {max_ticks} ticks"
    return commands


def live(sim: Simulation) -> list[int]:
    return [i for i, node in sim.nodes.items() if node.alive]


def others(sim: Simulation, node: int) -> list[int]:
    return [i for i in live(sim) if i != node]


def same_logs(sim: Simulation, nodes: Iterable[int]) -> bool:
    logs = [sim.node(i).log for i in nodes]
    return all(log == logs[0] for log in logs)


def same_commands(sim: Simulation, nodes: Iterable[int]) -> bool:
    commands = [sim.node(i).commands for i in nodes]
    return all(c == commands[0] for c in commands)


def converge(sim: Simulation, max_ticks: int = 30 * T) -> None:
    """Run until every live node holds the same log and applied the same commands."""
    nodes = live(sim)
    ok = sim.run_until(
        lambda s: (
            same_logs(s, nodes)
            and same_commands(s, nodes)
            and len({s.node(i).applied_index for i in nodes}) == 1
        ),
        max_ticks=max_ticks,
    )
    assert ok, f"seed={sim.seed}: nodes {nodes} did not converge: {list(sim.nodes.values())}"


# --- elections -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("nodes", "seed"), [(3, 1), (5, 2)])
def test_initial_election(nodes: int, seed: int) -> None:
    sim = Simulation(nodes=nodes, seed=seed)
    leader = elect(sim, max_ticks=4 * T)
    term = sim.node(leader).term
    sim.run(5 * T)
    assert sim.leader() == leader, f"seed={seed}: leadership moved without a fault"
    for i in sim.nodes:
        status = sim.node(i).status()
        assert status.term == term, f"seed={seed}: node {i} at term {status.term} != {term}"
        assert status.leader == leader, f"seed={seed}: node {i} follows {status.leader}"
        if i != leader:
            assert status.role is Role.FOLLOWER, f"seed={seed}: node {i} is {status.role}"
    sim.check_invariants()


def test_reelection_after_leader_isolation_and_old_leader_rejoins_as_follower() -> None:
    sim = Simulation(nodes=5, seed=3)
    old = elect(sim)
    term = sim.node(old).term
    sim.isolate(old)
    new = elect_other_than(sim, old)
    new_term = sim.node(new).term
    assert new_term > term, f"seed={sim.seed}"
    sim.heal()
    sim.run(5 * T)
    assert sim.leader() == new, f"seed={sim.seed}: the rejoining node {old} disrupted {new}"
    assert sim.node(new).term == new_term, f"seed={sim.seed}: the term moved on a rejoin"
    assert sim.node(old).role is Role.FOLLOWER, f"seed={sim.seed}"
    assert sim.node(old).status().leader == new, f"seed={sim.seed}"
    propose_and_commit(sim, 3)
    sim.check_invariants()


def test_many_elections_with_seven_nodes_and_random_isolations() -> None:
    seed = 4
    sim = Simulation(nodes=7, seed=seed)
    rng = random.Random(seed)
    leaders, terms = [], []
    for round_ in range(20):
        leader = elect(sim)
        victim = leader if rng.random() < 0.8 else rng.choice(others(sim, leader))
        sim.isolate(victim)
        now = elect_other_than(sim, victim) if victim == leader else elect(sim)
        assert now != victim, f"seed={seed} round {round_}: the isolated node leads"
        leaders.append(now)
        terms.append(sim.node(now).term)
        propose_and_commit(sim, 2, b"r%d" % round_, nodes=others(sim, victim))
        sim.heal()
        sim.run(rng.randint(T, 3 * T))
    assert terms == sorted(terms), f"seed={seed}: terms went backwards {terms}"
    assert len(set(leaders)) >= 3, f"seed={seed}: leaders {leaders}"
    converge(sim)
    sim.check_invariants()


def test_split_vote_is_resolved() -> None:
    """Three of five alive is a quorum, so a leader must emerge. Two candidates that drew the
    same timeout split the vote; paper 5.2 makes them redraw it at each election."""
    stuck = []
    for seed in range(30):
        sim = Simulation(nodes=5, seed=seed, record_events=False)
        leader = elect(sim)
        sim.crash(leader)
        sim.crash(leader % 5 + 1)
        if not sim.run_until(lambda s: s.leader() is not None, max_ticks=50 * T):
            stuck.append(seed)
        sim.check_invariants()
    assert not stuck, f"seeds {stuck}: no leader within {50 * T} ticks with 3 of 5 nodes up"


# --- replication and partitions ------------------------------------------------------------------


def test_no_agreement_without_a_majority() -> None:
    sim = Simulation(nodes=5, seed=5)
    old = elect(sim)
    buddy = others(sim, old)[0]
    majority = [i for i in sim.nodes if i not in (old, buddy)]
    sim.partition({old, buddy}, majority)
    doomed = [b"minority-%d" % i for i in range(5)]
    indexes = [sim.propose(c, node=old) for c in doomed]
    assert None not in indexes, f"seed={sim.seed}: the old leader refused at once"
    sim.run(5 * T)
    for i in (old, buddy):
        assert sim.node(i).commit_index < min(indexes), f"seed={sim.seed}: node {i} committed"
    new = elect(sim)
    assert new in majority, f"seed={sim.seed}"
    propose_and_commit(sim, 3, b"majority", nodes=majority)
    sim.heal()
    propose_and_commit(sim, 1, b"after-heal")
    converge(sim)
    for i in sim.nodes:
        assert not set(doomed) & set(sim.node(i).commands), f"seed={sim.seed}: node {i}"
    sim.check_invariants()


def test_agreement_after_a_follower_rejoins() -> None:
    sim = Simulation(nodes=3, seed=6)
    leader = elect(sim)
    follower = others(sim, leader)[0]
    sim.isolate(follower)
    commands = propose_and_commit(sim, 20, nodes=others(sim, follower))
    assert not set(commands) & set(sim.node(follower).commands)
    sim.heal()
    ok = sim.run_until(
        lambda s: (
            s.node(follower).log == s.node(s.leader() or leader).log
            and s.node(follower).commands == s.node(leader).commands
        ),
        max_ticks=10 * T,
    )
    assert ok, f"seed={sim.seed}: follower {follower} did not catch up"
    assert sim.node(follower).commands[-20:] == commands
    sim.check_invariants()


def test_fast_backtracking_over_divergent_suffixes() -> None:
    sim = Simulation(nodes=5, seed=7)
    old = elect(sim)
    propose_and_commit(sim, 5, b"base")
    buddy = others(sim, old)[0]
    majority = [i for i in sim.nodes if i not in (old, buddy)]
    sim.partition({old, buddy}, majority)
    for i in range(60):
        assert sim.propose(b"lost-%d" % i, node=old) is not None, f"seed={sim.seed}"
    sim.run(2)  # the buddy takes all 60 uncommitted entries
    new = elect_other_than(sim, old)
    assert new in majority, f"seed={sim.seed}"
    propose_and_commit(sim, 60, b"kept", nodes=majority)
    minority_log, majority_log = sim.node(buddy).log, sim.node(new).log
    divergent = sum(1 for a, b in zip(minority_log, majority_log, strict=False) if a != b)
    assert divergent >= 50, f"seed={sim.seed}: only {divergent} divergent entries"
    before = sim.messages_sent("append_entries")
    sim.heal()
    ok = sim.run_until(lambda s: same_logs(s, sim.nodes), max_ticks=10 * T)
    assert ok, f"seed={sim.seed}: the minority logs were not repaired"
    spent = sim.messages_sent("append_entries") - before
    assert spent < 15, f"seed={sim.seed}: {spent} appends to repair {divergent} divergent entries"
    converge(sim)
    assert sim.node(old).commands == sim.node(new).commands
    sim.check_invariants()


def test_crash_and_restart_of_all_nodes_keeps_committed_entries() -> None:
    sim = Simulation(nodes=5, seed=8)
    before = propose_and_commit(sim, 10, b"before")
    converge(sim)
    for i in sim.nodes:
        sim.crash(i)
    sim.run(3 * T)
    for i in sim.nodes:
        sim.restart(i)
    elect(sim)
    after = propose_and_commit(sim, 5, b"after")
    converge(sim)
    for i in sim.nodes:
        assert sim.node(i).commands == before + after, f"seed={sim.seed}: node {i}"
    sim.check_invariants()


FIGURE_7 = {
    1: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],  # the paper's leader for term 8
    2: [1, 1, 1, 4, 4, 5, 5, 6, 6],  # (a) missing an entry
    3: [1, 1, 1, 4],  # (b) missing many
    4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],  # (c) an extra entry
    5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d) extra entries of a later term
    6: [1, 1, 1, 4, 4, 4, 4],  # (e) missing and extra
    7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # (f) extra entries of terms no one else has
}


def figure_7_log(terms: list[int], base: int) -> tuple[Entry, ...]:
    """A Figure 7 log placed after the bootstrap point `base`; data names index and term."""
    return tuple(Entry(base + k, t, b"%d/%d" % (base + k, t)) for k, t in enumerate(terms, 1))


def test_figure_7_followers_with_missing_and_extra_entries_are_brought_in_line() -> None:
    """The logs of paper Figure 7 are written to each node's MemoryStorage before it starts
    (crash, persist, restart); whoever wins term 8 must bring every other log in line."""
    sim = Simulation(nodes=7, seed=9)
    base = sim.node(1).status().first_index - 1  # the bootstrap snapshot's index
    for i, terms in FIGURE_7.items():
        sim.crash(i)
        hard = HardState(7, None, base + 3)  # the three term-1 entries are committed
        sim.node(i).storage.persist(Ready(hard, figure_7_log(terms, base), None, (), (), (), ()))
        sim.restart(i)
    sim.check_invariants()
    leader = elect(sim)
    start = list(figure_7_log(FIGURE_7[leader], base))
    assert sim.node(leader).term >= 8, f"seed={sim.seed}"
    converge(sim)
    final = sim.node(leader).log
    assert final[: len(start)] == start, f"seed={sim.seed}: leader {leader} lost its own entries"
    committed = [e.data for e in figure_7_log([1, 1, 1], base)]
    for i in sim.nodes:
        assert sim.node(i).log == final, f"seed={sim.seed}: node {i}"
        assert sim.node(i).commands[:3] == committed, f"seed={sim.seed}: node {i}"
    propose_and_commit(sim, 3)
    sim.check_invariants()


def test_figure_8_an_old_term_entry_is_never_committed_by_counting_replicas() -> None:
    """Paper Figure 8 on three nodes. Leader `a` writes `old` at index i alone; `b` wins the
    next term and writes its own entry at i, alone too. `a` wins again and copies `old` to `c`:
    it now sits on a majority, but `a` must not commit it, since `b` can still win with `c`'s
    vote and overwrite it. One entry per message and a one-tick delay let `c` acknowledge
    `old` while `a`'s entry of its own term is still on its way (cut by the partition)."""
    sim = Simulation(nodes=3, seed=8, config=RaftConfig(max_entries_per_message=1))
    a = elect(sim)
    sim.run(3)
    sim.set_delay(1)
    sim.isolate(a)
    index = sim.propose(b"old", node=a)  # (a) on `a` only
    assert index is not None, f"seed={sim.seed}"
    old_term = sim.node(a).term
    sim.run(2)
    b_or_c = [i for i in sim.nodes if i != a]
    assert sim.run_until(
        lambda s: any(s.node(i).role is Role.LEADER for i in b_or_c), max_ticks=30 * T
    ), f"seed={sim.seed}: no leader among {b_or_c}"
    b = next(i for i in b_or_c if sim.node(i).role is Role.LEADER)
    c = next(i for i in b_or_c if i != b)
    sim.isolate(b)  # (b) `b` wrote its first entry at index i; it never leaves `b`
    assert sim.node(b).log[-1].index == index and sim.node(b).log[-1].term > old_term

    def a_leads_and_c_holds_old(s: Simulation) -> bool:
        raft = s.node(a).raft
        return (
            raft is not None and raft.role is Role.LEADER and raft.progress[c].match_index >= index
        )

    assert sim.run_until(a_leads_and_c_holds_old, max_ticks=30 * T), f"seed={sim.seed}"
    sim.isolate(a)  # (c) `a`'s own-term entry to `c` is dropped on the way
    held = {i: sim.node(i).raft.log.term(index) for i in (a, c)}  # type: ignore[union-attr]
    assert held == {a: old_term, c: old_term}, f"seed={sim.seed}: {held}"
    assert sim.node(c).log[-1].index == index, f"seed={sim.seed}: c got a's new entry"
    assert sim.node(a).commit_index < index, (
        f"seed={sim.seed}: leader {a} of term {sim.node(a).term} committed index {index} of "
        f"term {old_term} on a count of replicas"
    )
    assert sim.node(c).commit_index < index, f"seed={sim.seed}"
    # (d) `b`, whose last term is newer than `old`'s, wins with `c`'s vote and overwrites it
    assert sim.run_until(lambda s: s.leader() == b, max_ticks=30 * T), f"seed={sim.seed}"
    assert sim.run_until(lambda s: s.node(c).commit_index >= index, max_ticks=30 * T)
    replaced = sim.node(c).log[index - sim.node(c).status().first_index]
    assert replaced.index == index and replaced.data != b"old", f"seed={sim.seed}: {replaced}"
    sim.heal()
    sim.set_delay(0)
    converge(sim)
    assert all(b"old" not in sim.node(i).commands for i in sim.nodes), f"seed={sim.seed}"
    sim.check_invariants()


# --- PreVote and CheckQuorum ----------------------------------------------------------------------


def test_check_quorum_partitioned_leader_steps_down() -> None:
    sim = Simulation(nodes=5, seed=10)
    old = elect(sim)
    term = sim.node(old).term
    sim.isolate(old)
    ok = sim.run_until(lambda s: s.node(old).role is not Role.LEADER, max_ticks=2 * T)
    assert ok, f"seed={sim.seed}: isolated leader {old} still leads after {2 * T} ticks"
    assert sim.node(old).term == term, f"seed={sim.seed}"
    sim.check_invariants()


def test_pre_vote_keeps_a_rejoining_node_from_disrupting_a_stable_leader() -> None:
    sim = Simulation(nodes=5, seed=11)
    leader = elect(sim)
    term = sim.node(leader).term
    follower = others(sim, leader)[-1]
    sim.isolate(follower)
    sim.run(20 * T)
    assert sim.node(follower).term == term, f"seed={sim.seed}: the isolated node raised its term"
    sim.heal()
    sim.run(5 * T)
    assert sim.leader() == leader, f"seed={sim.seed}"
    assert sim.node(leader).term == term, f"seed={sim.seed}: the leader's term changed"
    assert sim.node(follower).status().leader == leader, f"seed={sim.seed}"
    sim.check_invariants()


# --- membership and leadership --------------------------------------------------------------------


def test_add_a_learner_then_promote_it() -> None:
    sim = Simulation(nodes=3, seed=12)
    propose_and_commit(sim, 5, b"early")
    new = sim.add_node(voter=False)
    leader = elect(sim)
    assert sim.node(leader).status().learners == {new}, f"seed={sim.seed}"
    assert new not in sim.node(leader).status().voters
    sim.change_membership(ConfChange(ConfChangeOp.ADD_VOTER, new))
    leader = elect(sim)
    assert sim.node(leader).status().voters == {1, 2, 3, new}, f"seed={sim.seed}"
    assert not sim.node(leader).status().learners
    propose_and_commit(sim, 3, b"late")
    converge(sim)
    sim.check_invariants()


def test_add_node_promotes_a_voter_that_catches_up() -> None:
    sim = Simulation(nodes=3, seed=13)
    propose_and_commit(sim, 5)
    new = sim.add_node()
    converge(sim)
    leader = elect(sim)
    assert new in sim.node(leader).status().voters, f"seed={sim.seed}"
    assert sim.node(new).commands == sim.node(leader).commands
    sim.check_invariants()


def test_an_added_node_knows_the_whole_membership() -> None:
    """The bootstrap voters live in the index-0 snapshot; a joining node must learn them too,
    else it believes it is the only voter and can elect itself alone."""
    sim = Simulation(nodes=3, seed=0)
    elect(sim)
    new = sim.add_node()
    leader = elect(sim)
    expected = sim.node(leader).status().voters
    assert expected == {1, 2, 3, new}
    for i in sim.nodes:
        voters = sim.node(i).status().voters
        assert voters == expected, f"seed={sim.seed}: node {i} thinks the voters are {voters}"
    sim.check_invariants()


def test_the_leader_can_crash_right_after_a_node_was_added() -> None:
    sim = Simulation(nodes=3, seed=0)
    elect(sim)
    new = sim.add_node()
    old = elect(sim)
    sim.crash(old)
    now = elect_other_than(sim, old)  # the checker raises if two nodes lead one term
    sim.run(5 * T)
    propose_and_commit(sim, 3, nodes=others(sim, old))
    sim.restart(old)
    propose_and_commit(sim, 3, b"rejoined")
    converge(sim)
    assert new in sim.node(elect(sim)).status().voters and now != old
    sim.check_invariants()


def test_remove_a_voter() -> None:
    sim = Simulation(nodes=5, seed=14)
    leader = elect(sim)
    victim = others(sim, leader)[0]
    sim.remove_node(victim)
    assert not sim.node(victim).alive, f"seed={sim.seed}"
    leader = elect(sim)
    assert victim not in sim.node(leader).status().voters, f"seed={sim.seed}"
    propose_and_commit(sim, 5)
    converge(sim)
    sim.check_invariants()


def test_remove_the_leader() -> None:
    sim = Simulation(nodes=5, seed=15)
    old = elect(sim)
    sim.remove_node(old)
    new = elect_other_than(sim, old)
    assert new != old and not sim.node(old).alive, f"seed={sim.seed}"
    status = sim.node(new).status()
    assert old not in status.voters and len(status.voters) == 4, f"seed={sim.seed}"
    propose_and_commit(sim, 5)
    converge(sim)
    sim.check_invariants()


def test_leadership_transfer() -> None:
    sim = Simulation(nodes=5, seed=16)
    leader = elect(sim)
    propose_and_commit(sim, 3)
    target = 2 if leader != 2 else 3
    term = sim.node(leader).term
    sim.transfer_leader(target)
    ok = sim.run_until(lambda s: s.leader() == target, max_ticks=T)
    assert ok, f"seed={sim.seed}: node {target} does not lead {T} ticks after the transfer"
    assert sim.node(target).term == term + 1, f"seed={sim.seed}"
    propose_and_commit(sim, 3, b"after")
    sim.check_invariants()


# --- snapshots ------------------------------------------------------------------------------------


def test_snapshot_install_on_a_node_that_was_down_during_compaction() -> None:
    sim = Simulation(nodes=3, seed=17)
    leader = elect(sim)
    down = 3 if leader != 3 else 2
    sim.crash(down)
    propose_and_commit(sim, 20)
    sim.compact()
    assert sim.node(leader).status().first_index > 2, f"seed={sim.seed}: nothing compacted"
    installs = sim.messages_sent("install_snapshot")
    sim.restart(down)
    converge(sim)
    assert sim.messages_sent("install_snapshot") > installs, f"seed={sim.seed}: no snapshot"
    assert sim.node(down).commands == sim.node(leader).commands, f"seed={sim.seed}"
    propose_and_commit(sim, 2, b"after")
    converge(sim)
    sim.check_invariants()


# --- faults ---------------------------------------------------------------------------------------


def test_unreliable_network_keeps_making_progress() -> None:
    sim = Simulation(nodes=5, seed=18)
    elect(sim)
    sim.set_drop_rate(0.1)
    sim.set_delay(1, 5)
    sim.set_duplicate_rate(0.05)
    proposed: list[bytes] = []
    for i in range(100):
        if sim.propose(b"u-%d" % i) is not None:
            proposed.append(b"u-%d" % i)
        sim.run(3)
    committed_under_faults = max(len(sim.node(i).commands) for i in sim.nodes)
    assert committed_under_faults >= 50, (
        f"seed={sim.seed}: only {committed_under_faults} of {len(proposed)} proposals committed"
    )
    sim.set_drop_rate(0.0)
    sim.set_delay(0, 0)
    sim.set_duplicate_rate(0.0)
    propose_and_commit(sim, 1, b"final")
    converge(sim)
    commands = sim.node(1).commands
    assert len(commands) == len(set(commands)), f"seed={sim.seed}: a command applied twice"
    assert set(commands) <= {*proposed, b"final-0"}, f"seed={sim.seed}"
    sim.check_invariants()


def test_a_one_node_cluster_commits_on_its_own() -> None:
    sim = Simulation(nodes=1, seed=19)
    leader = elect(sim, max_ticks=3 * T)
    assert leader == 1
    commands = propose_and_commit(sim, 5, max_ticks=2)
    assert sim.node(1).commands == commands
    sim.check_invariants()
