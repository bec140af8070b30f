"""The invariant checker catches what it is there to catch.

First one test per rule: a state that breaks it, built by hand from RawNodes, must raise
InvariantViolation naming that rule. Then mutation self-checks: the core is broken on purpose
(a monkeypatched rule of the paper) and the random fault schedules of `raftoral-lab sim` must
report a safety violation on one of the first seeds. A schedule generator that cannot tell a
broken Raft from a correct one would pass every run and prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from raftoral_lab.core import (
    Entry,
    HardState,
    PersistentState,
    RawNode,
    RequestVote,
    Role,
    bootstrap_state,
)
from raftoral_lab.core.log import RaftLog
from raftoral_lab.core.progress import Progress
from raftoral_lab.errors import InvariantViolation
from raftoral_lab.sim import InvariantChecker
from raftoral_lab.sim.schedule import run_schedule

VOTERS = (1, 2, 3)
BASE = 1  # bootstrap_state's membership snapshot sits at index 1, term 1
SAFETY_RULES = (
    "election safety",
    "leader append-only",
    "log matching",
    "leader completeness",
    "state machine safety",
)
MUTANT_SEEDS = 30  # the mutants below are caught within the first few (about 0.2 s a seed)


def entry(index: int, term: int, data: bytes | None = None) -> Entry:
    return Entry(index, term, data if data is not None else b"%d/%d" % (index, term))


def node(
    node_id: int,
    terms: Sequence[int] = (),
    *,
    term: int | None = None,
    commit: int = 0,
    leader: bool = False,
    data: dict[int, bytes] | None = None,
) -> RawNode:
    """A node whose log holds entries of `terms` after the bootstrap point (entry k at index
    BASE + k, data naming index and term unless `data` says otherwise), `commit` of them
    committed; made leader of `term` by hand when asked."""
    entries = tuple(
        entry(BASE + k, t, (data or {}).get(BASE + k)) for k, t in enumerate(terms, start=1)
    )
    term = term if term is not None else max([*terms, 1])
    hard = HardState(term, None, BASE + commit)
    raft = RawNode(node_id, PersistentState(hard, bootstrap_state(VOTERS).snapshot, entries))
    if leader:
        raft.role = Role.LEADER
        raft.leader = node_id
    return raft


def rule_of(check: Callable[[], object]) -> str:
    with pytest.raises(InvariantViolation) as info:
        check()
    return info.value.rule


# --- one violating state per rule -----------------------------------------------------------


def test_two_leaders_of_one_term_break_election_safety() -> None:
    nodes = {1: node(1, [1, 2], leader=True), 2: node(2, [1, 2], leader=True), 3: node(3, [1])}
    assert rule_of(lambda: InvariantChecker().check_all(nodes)) == "election safety"
    checker = InvariantChecker()
    checker.on_state(1, nodes[1])
    assert rule_of(lambda: checker.on_state(2, nodes[2])) == "election safety"


def test_two_nodes_applying_different_data_at_one_index_break_state_machine_safety() -> None:
    checker = InvariantChecker()
    checker.on_apply(1, entry(BASE + 1, 1, b"a"))
    assert rule_of(lambda: checker.on_apply(2, entry(BASE + 1, 1, b"b"))) == (
        "state machine safety"
    )
    # from scratch: both committed index BASE + 2, with different terms
    nodes = {1: node(1, [1, 1], commit=2), 2: node(2, [1, 2], commit=2)}
    assert rule_of(lambda: InvariantChecker().check_all(nodes)) == "state machine safety"


def test_one_index_and_term_with_two_entries_breaks_log_matching() -> None:
    one = node(1, [1, 2])
    other = node(2, [1, 2], data={BASE + 2: b"something else"})
    checker = InvariantChecker()
    checker.on_entries(1, one, tuple(one.log.entries))
    assert rule_of(lambda: checker.on_entries(2, other, tuple(other.log.entries))) == (
        "log matching"
    )
    # the same entry after different histories
    shifted = node(3, [2, 2])
    assert rule_of(lambda: checker.on_entries(3, shifted, (shifted.log.entries[1],))) == (
        "log matching"
    )
    # from scratch: equal at the last index, different below it
    nodes = {1: node(1, [1, 2]), 2: node(2, [1, 2], data={BASE + 1: b"x"})}
    assert rule_of(lambda: InvariantChecker().check_all(nodes)) == "log matching"


def test_a_leader_without_a_committed_entry_breaks_leader_completeness() -> None:
    checker = InvariantChecker()
    checker.on_state(1, node(1, [1, 2], commit=2))  # entry BASE + 2 of term 2 is committed
    lacking = node(2, [1, 3], term=3, leader=True)
    assert rule_of(lambda: checker.on_state(2, lacking)) == "leader completeness"
    short = node(3, [1], term=4, leader=True)
    assert rule_of(lambda: checker.on_state(3, short)) == "leader completeness"


def test_a_leader_changing_its_own_log_breaks_leader_append_only() -> None:
    checker = InvariantChecker()
    leader = node(1, [1, 2, 2], leader=True)
    checker.on_state(1, leader)
    leader.log.append(entry(BASE + 4, 2))
    checker.on_state(1, leader)  # appending is fine
    del leader.log.entries[-2:]
    assert rule_of(lambda: checker.on_state(1, leader)) == "leader append-only"


def test_a_leader_believing_more_than_its_log_breaks_leader_progress() -> None:
    leader = node(1, [1, 2], leader=True)
    last = leader.log.last_index
    leader.progress = {2: Progress(match_index=last, next_index=last + 1), 3: Progress()}
    InvariantChecker().on_state(1, leader)
    leader.progress[3] = Progress(match_index=last + 2, next_index=last + 3)
    assert rule_of(lambda: InvariantChecker().on_state(1, leader)) == "leader progress"
    leader.progress[3] = Progress(match_index=0, next_index=last + 2)
    assert rule_of(lambda: InvariantChecker().on_state(1, leader)) == "leader progress"


def test_a_commit_past_the_log_breaks_the_commit_bound() -> None:
    raft = node(1, [1, 1])
    raft.log.commit_index = raft.log.last_index + 1
    assert rule_of(lambda: InvariantChecker().on_state(1, raft)) == "commit bound"


# --- mutation self-checks ---------------------------------------------------------------------


def first_violation(seeds: int = MUTANT_SEEDS) -> tuple[int, str]:
    """The first seed whose schedule (3000 ticks, 5 nodes, every fault) reports a violation."""
    for seed in range(seeds):
        outcome = run_schedule(seed)
        if outcome.violation is not None:
            return seed, outcome.violation
    raise AssertionError(f"no violation in seeds 0..{seeds - 1}: the schedules miss the mutant")


def assert_safety_violation(found: tuple[int, str], *rules: str) -> None:
    seed, violation = found
    assert violation.startswith(rules), f"seed {seed}: {violation}"


def test_mutant_voting_without_the_up_to_date_check_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, index, term: True)
    assert_safety_violation(first_violation(), *SAFETY_RULES)


def test_mutant_voting_twice_in_a_term_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    vote = RawNode._handlers[RequestVote]

    def forgetful(self: RawNode, m: RequestVote) -> None:
        if not m.pre_vote:
            self.vote, self.leader = None, None  # forgets whom it voted for in this term
        vote(self, m)

    monkeypatch.setitem(RawNode._handlers, RequestVote, forgetful)
    assert_safety_violation(first_violation(), "election safety")


def test_mutant_committing_old_term_entries_by_counting_replicas_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Figure 8 of the paper: the `figure8` fault sequence (with small batches) catches it."""

    def count_replicas(self: RawNode) -> None:
        log = self.log
        matches = sorted(
            log.stable_index if voter == self.id else self.progress[voter].match_index
            for voter in self.conf.voters
            if voter == self.id or voter in self.progress
        )
        matches = [0] * (len(self.conf.voters) - len(matches)) + matches
        quorum_index = matches[len(matches) - (len(matches) // 2 + 1)]
        if quorum_index > log.commit_index:  # no "of the current term" test
            self._commit_to(quorum_index)

    mutant: Any = count_replicas
    monkeypatch.setattr(RawNode, "_maybe_commit", mutant)
    assert_safety_violation(
        first_violation(), "leader completeness", "state machine safety", "log matching"
    )
