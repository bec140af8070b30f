"""Using the API wrongly gives a clear, typed error that says what to do (or is ignored with a
trace, for a peer's message that does not concern us)."""

from __future__ import annotations

import pytest

from raftoral_lab.core import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeOp,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    RaftConfig,
    RawNode,
    Ready,
    RequestVote,
    Role,
    VoteResponse,
    bootstrap_state,
)
from raftoral_lab.core.progress import Progress, ReplicationState
from raftoral_lab.errors import (
    ConfChangeError,
    ConfChangePending,
    ConfigError,
    NotLeader,
    ProposalDropped,
    RaftError,
    RaftoralError,
    ReadyError,
)
from raftoral_lab.sim import Simulation

SEED = 11


def elected(nodes: int = 3, seed: int = SEED) -> tuple[Simulation, int]:
    sim = Simulation(nodes=nodes, seed=seed)
    assert sim.run_until(lambda s: s.leader() is not None, max_ticks=1000), f"seed {seed}"
    sim.run(3)  # the leader's first entry commits and is applied everywhere
    leader = sim.leader()
    assert leader is not None, f"seed {seed}"
    return sim, leader


def bootstrapped(node_id: int = 1, voters: frozenset[int] = frozenset({1, 2, 3})) -> RawNode:
    """A founding member of a new group, before any election."""
    return RawNode(node_id, bootstrap_state(voters))


def drain(raft: RawNode) -> Ready:
    """Take and advance one Ready, as a driver would; returns it."""
    rd = raft.ready()
    raft.advance(rd)
    return rd


def ignored(rd: Ready) -> list[dict[str, object]]:
    return [t.fields for t in rd.trace if t.kind == "message_ignored"]


# --- proposals and leadership ---------------------------------------------------------------


def test_propose_on_a_follower_raises_not_leader_with_the_leader_hint() -> None:
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    raft = sim.node(follower).raft
    assert raft is not None
    with pytest.raises(NotLeader) as info:
        raft.propose(b"x")
    err = info.value
    assert isinstance(err, RaftError) and isinstance(err, RaftoralError)
    assert err.leader == leader, f"seed {SEED}"
    assert err.node == follower
    assert f"node {leader} is the leader" in str(err), str(err)
    assert f"node {follower} is not the leader" in str(err), str(err)
    # nothing was appended by the refused proposal
    assert all(e.data != b"x" for e in raft.log.entries)


def test_propose_before_any_leader_is_known_says_so() -> None:
    raft = bootstrapped()
    with pytest.raises(NotLeader) as info:
        raft.propose(b"x")
    assert info.value.leader is None
    assert "no leader is known yet" in str(info.value)
    trace = drain(raft).trace
    assert [t.kind for t in trace] == ["proposal_refused"]


def test_membership_change_and_transfer_on_a_follower_name_what_was_refused() -> None:
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    raft = sim.node(follower).raft
    assert raft is not None
    with pytest.raises(NotLeader, match="membership change") as info:
        raft.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 9))
    assert info.value.leader == leader
    with pytest.raises(NotLeader, match="leadership transfer") as info:
        raft.transfer_leader(leader)
    assert f"node {leader} is the leader" in str(info.value)


def test_simulation_propose_on_a_follower_returns_none_and_never_raises() -> None:
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    assert sim.propose(b"x", node=follower) is None
    assert sim.propose(b"y") is not None  # on the leader
    sim.crash(follower)
    assert sim.propose(b"z", node=follower) is None


def test_a_second_membership_change_while_one_is_pending_raises_conf_change_pending() -> None:
    sim, leader = elected()
    raft = sim.node(leader).raft
    assert raft is not None
    first = raft.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 4))
    with pytest.raises(ConfChangePending) as info:
        raft.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 5))
    err = info.value
    assert isinstance(err, ConfChangeError)
    assert str(first) in str(err) and "wait" in str(err), str(err)
    assert raft.log.last_index == first  # the refused change was not appended


def test_a_membership_change_that_cannot_apply_raises_conf_change_error() -> None:
    sim, leader = elected()
    raft = sim.node(leader).raft
    assert raft is not None
    with pytest.raises(ConfChangeError, match="not a member"):
        raft.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, 9))
    with pytest.raises(ConfChangeError, match="remove it first"):
        raft.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, leader))


def test_transfer_to_a_non_member_raises_conf_change_error() -> None:
    sim, leader = elected()
    raft = sim.node(leader).raft
    assert raft is not None
    with pytest.raises(ConfChangeError) as info:
        raft.transfer_leader(9)
    assert "node 9" in str(info.value) and "voter" in str(info.value), str(info.value)
    assert raft.transferee is None and raft.role is Role.LEADER
    with pytest.raises(ConfChangeError, match="node 9"):
        sim.transfer_leader(9)


def test_propose_during_a_leadership_transfer_is_dropped_with_a_retry_hint() -> None:
    sim, leader = elected()
    raft = sim.node(leader).raft
    assert raft is not None
    target = next(i for i in sim.nodes if i != leader)
    raft.transfer_leader(target)
    with pytest.raises(ProposalDropped) as info:
        raft.propose(b"x")
    assert isinstance(info.value, RaftError)
    assert f"node {target}" in str(info.value) and "retry" in str(info.value)


def test_simulation_transfer_without_a_leader_says_to_run_until_one_is_elected() -> None:
    sim = Simulation(nodes=3, seed=SEED)
    with pytest.raises(RaftError, match="no leader") as info:
        sim.transfer_leader(2)
    assert "run the simulation" in str(info.value)


# --- ready / advance --------------------------------------------------------------------------


def test_ready_twice_without_advance_raises_ready_error() -> None:
    raft = bootstrapped()
    rd = raft.ready()
    with pytest.raises(ReadyError) as info:
        raft.ready()
    assert "advance()" in str(info.value), str(info.value)
    assert not raft.has_ready()  # a Ready is outstanding: nothing new until it is advanced
    raft.advance(rd)  # the misuse did not break the outstanding Ready
    raft.ready()


def test_advance_twice_with_the_same_ready_raises_ready_error() -> None:
    raft = bootstrapped()
    rd = raft.ready()
    raft.advance(rd)
    with pytest.raises(ReadyError) as info:
        raft.advance(rd)
    assert "ready()" in str(info.value) and "once" in str(info.value), str(info.value)


def test_advance_with_a_foreign_ready_raises_ready_error() -> None:
    a, b = bootstrapped(1), bootstrapped(2)
    rd_a, rd_b = a.ready(), b.ready()
    with pytest.raises(ReadyError, match=r"last ready\(\)"):
        a.advance(rd_b)
    a.advance(rd_a)  # its own Ready is still the one to advance
    b.advance(rd_b)
    with pytest.raises(ReadyError):
        a.advance(b.ready())


def test_compact_with_an_outstanding_ready_raises_ready_error() -> None:
    raft = bootstrapped()
    raft.ready()
    with pytest.raises(ReadyError, match="advance"):
        raft.compact(b"")


# --- configuration --------------------------------------------------------------------------


def test_config_with_election_timeout_not_above_heartbeat_names_both() -> None:
    with pytest.raises(ConfigError) as info:
        RaftConfig(election_timeout=1, heartbeat_interval=1)
    message = str(info.value)
    assert "election_timeout" in message and "heartbeat_interval" in message, message
    assert "larger" in message, message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"heartbeat_interval": 0}, ["heartbeat_interval", "at least 1", "0"]),
        ({"election_timeout": 5, "heartbeat_interval": 7}, ["election_timeout", "(5)", "(7)"]),
        ({"max_inflight": 0}, ["max_inflight", "at least 1"]),
        ({"max_entries_per_message": 0}, ["max_entries_per_message", "at least 1"]),
    ],
)
def test_bad_config_values_are_named(kwargs: dict[str, int], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        RaftConfig(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (lambda s: s.partition({1, 2}, {2, 3}), ["[2]", "two partition sides"]),
        (lambda s: s.partition({1, 9}, {2, 3}), ["[9]", "unknown", "nodes are [1, 2, 3]"]),
        (lambda s: s.isolate(7), ["[7]", "unknown", "nodes are [1, 2, 3]"]),
        (lambda s: s.crash(8), ["no node 8", "nodes are [1, 2, 3]"]),
        (lambda s: s.restart(8), ["no node 8", "nodes are [1, 2, 3]"]),
        (lambda s: s.remove_node(8), ["[8]", "unknown"]),
        (lambda s: s.compact(8), ["no node 8"]),
        (lambda s: s.propose(b"x", node=8), ["no node 8"]),
        (lambda s: s.node(0), ["no node 0"]),
        (lambda s: s.set_drop_rate(1.5), ["drop rate", "1.5", "between 0 and 1"]),
        (lambda s: s.set_drop_rate(-0.1), ["drop rate", "-0.1"]),
        (lambda s: s.set_duplicate_rate(2), ["duplicate rate", "2", "between 0 and 1"]),
        (lambda s: s.set_delay(5, 1), ["(5, 1)", "low <= high"]),
        (lambda s: s.set_delay(-1), ["(-1, -1)", "0 <= low"]),
    ],
)
def test_simulation_bad_arguments_raise_config_error_naming_the_value(action, words) -> None:
    sim = Simulation(nodes=3, seed=SEED)
    with pytest.raises(ConfigError) as info:
        action(sim)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    sim.run(50)  # a refused call changed nothing: the cluster still elects
    assert sim.leader() is not None, f"seed {SEED}"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"nodes": 0}, ["at least 1 node", "got 0"]),
        ({"nodes": -2}, ["at least 1 node", "got -2"]),
        ({"nodes": 3, "compact_every": 0}, ["compact_every", "got 0"]),
    ],
)
def test_simulation_bad_construction_raises_config_error(kwargs, words) -> None:
    with pytest.raises(ConfigError) as info:
        Simulation(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_simulation_crash_and_restart_out_of_order_say_what_to_do() -> None:
    sim = Simulation(nodes=3, seed=SEED)
    with pytest.raises(RaftError, match="crash it before restarting"):
        sim.restart(2)
    sim.crash(2)
    with pytest.raises(RaftError, match="restart it first"):
        sim.crash(2)
    with pytest.raises(RaftError, match="restart it first"):
        _ = sim.node(2).term
    sim.restart(2)
    assert sim.node(2).term >= 0


# --- messages that do not concern us ----------------------------------------------------------


def test_a_message_from_an_unknown_group_is_ignored_with_a_trace() -> None:
    raft = bootstrapped()
    before = raft.status()
    raft.step(Heartbeat(group=7, src=2, dst=1, term=9, commit=0))
    raft.step(AppendEntries(7, 2, 1, 9, 0, 0, (Entry(1, 9, b"evil"),), leader_commit=1))
    rd = drain(raft)
    assert ignored(rd) == [
        {"message": "heartbeat", "src": 2, "reason": "unknown group 7"},
        {"message": "append_entries", "src": 2, "reason": "unknown group 7"},
    ]
    assert rd.messages == () and rd.persisted_messages == () and rd.entries == ()
    assert raft.status() == before


def test_a_message_for_another_node_is_ignored_with_a_trace() -> None:
    raft = bootstrapped()
    before = raft.status()
    raft.step(Heartbeat(group=0, src=2, dst=3, term=9, commit=0))
    rd = drain(raft)
    assert ignored(rd) == [{"message": "heartbeat", "src": 2, "reason": "addressed to node 3"}]
    assert raft.status() == before


def test_stale_term_messages_are_ignored_with_a_trace_or_answered_with_our_term() -> None:
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    raft = sim.node(follower).raft
    assert raft is not None
    term, vote, log, commit = raft.term, raft.vote, list(raft.log.entries), raft.commit_index
    assert term >= 1, f"seed {SEED}: need a stale term below {term}"
    stale = term - 1
    drain(raft)
    # replies that carry nothing for us: dropped with a trace
    raft.step(VoteResponse(0, leader, follower, stale, granted=True))
    raft.step(AppendResponse(0, leader, follower, stale, True, 99))
    raft.step(HeartbeatResponse(0, leader, follower, stale))
    raft.step(RequestVote(0, leader, follower, stale, 99, stale))
    rd = drain(raft)
    reasons = [fields["reason"] for fields in ignored(rd)]
    assert reasons == [f"stale term {stale} < {term}"] * 4, rd.trace
    assert rd.messages == () and rd.persisted_messages == ()
    # a deposed leader is told the newer term, and nothing changes here
    raft.step(AppendEntries(0, leader, follower, stale, commit, 1, (Entry(commit + 1, 1),), 99))
    raft.step(Heartbeat(0, leader, follower, stale, commit))
    rd = drain(raft)
    answered = f"stale term {stale} < {term}; answered with term {term}"
    assert ignored(rd) == [
        {"message": "append_entries", "src": leader, "reason": answered},
        {"message": "heartbeat", "src": leader, "reason": answered},
    ], rd.trace
    assert rd.messages == (HeartbeatResponse(0, follower, leader, term),) * 2
    assert (raft.term, list(raft.log.entries), raft.commit_index) == (term, log, commit)
    # a stale pre-candidate is refused with our term, so it catches up
    raft.step(RequestVote(0, leader, follower, stale, 99, stale, pre_vote=True))
    rd = drain(raft)
    assert ignored(rd) == [{"message": "pre_vote", "src": leader, "reason": answered}]
    assert rd.messages == (VoteResponse(0, follower, leader, term, False, True),)
    assert (raft.term, raft.vote, raft.leader) == (term, vote, leader)


def test_an_acknowledgement_beyond_the_leaders_log_is_ignored_with_a_trace() -> None:
    """A forged or corrupted success naming an index the leader never had would send it
    snapshots and answers back and forth for ever; it is dropped instead."""
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    raft = sim.node(leader).raft
    assert raft is not None
    drain(raft)
    before, last = raft.status().progress, raft.log.last_index
    raft.step(AppendResponse(0, follower, leader, raft.term, True, last + 3))
    rd = drain(raft)
    assert ignored(rd) == [
        {
            "message": "append_response",
            "src": follower,
            "reason": f"names index {last + 3} beyond our last index {last}",
        }
    ]
    assert rd.messages == () and raft.status().progress == before
    for k in range(5):
        assert sim.propose(b"after %d" % k) is not None, f"seed {SEED}"
        sim.run(2)  # raises RaftError on a livelock
    assert sim.node(follower).log == sim.node(leader).log, f"seed {SEED}"
    sim.check_invariants()


def test_a_refusal_of_an_acknowledged_index_sends_the_probe_back_to_the_hint() -> None:
    """A follower acknowledged entries it lacks (a lying acknowledgement), then refuses them:
    the leader trusts the refusal and probes from the hint instead of re-sending the same
    probe, which would be refused again at once, for ever."""
    sim, leader = elected()
    follower = next(i for i in sim.nodes if i != leader)
    raft = sim.node(leader).raft
    assert raft is not None
    sim.isolate(follower)
    sim.propose(b"missed")
    sim.run(2)
    held = sim.node(follower).raft
    assert held is not None and held.log.last_index < raft.log.last_index, f"seed {SEED}"
    raft.step(AppendResponse(0, follower, leader, raft.term, True, raft.log.last_index))
    assert raft.progress[follower].match_index == raft.log.last_index
    sim.heal()
    sim.propose(b"next")
    sim.run(20)  # raises RaftError on a livelock
    assert sim.node(follower).log == sim.node(leader).log, f"seed {SEED}"
    assert raft.progress[follower].match_index == raft.log.last_index, f"seed {SEED}"
    sim.check_invariants()


def test_a_probe_refused_at_or_below_the_match_lowers_the_match() -> None:
    pr = Progress(match_index=7, next_index=8, state=ReplicationState.PROBE, probe_sent=True)
    assert pr.reject(7, next_hint=4)
    assert (pr.match_index, pr.next_index, pr.probe_sent) == (3, 4, False)
    # a refusal in the replicate state at or below the match answers an older append: stale
    pr = Progress(match_index=7, next_index=10, state=ReplicationState.REPLICATE)
    assert not pr.reject(7, next_hint=4)
    assert (pr.match_index, pr.next_index) == (7, 10)
