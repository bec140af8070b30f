"""Message budgets: how many messages the protocol needs, counted by the simulator.

These pin the cost of elections, idle heartbeats and batching, so a change that makes the
protocol chattier shows up as a failing test rather than as a slow classroom demo.
"""

from __future__ import annotations

import math

import pytest

from raftoral_lab.core import RaftConfig
from raftoral_lab.sim import Simulation

ELECTION_BUDGET = 30
BURST_APPEND_BUDGET = 10


def elect(sim: Simulation) -> int:
    assert sim.run_until(lambda s: s.leader() is not None, max_ticks=1000), (
        f"seed {sim.seed}: no leader within 1000 ticks"
    )
    leader = sim.leader()
    assert leader is not None
    return leader


def all_committed(sim: Simulation) -> bool:
    last = max(n.raft.log.last_index for n in sim.nodes.values() if n.raft is not None)
    return all(
        n.raft.commit_index == last and n.raft.applied_index == last
        for n in sim.nodes.values()
        if n.raft is not None
    )


def idle_bound_per_election_timeout(config: RaftConfig, nodes: int) -> int:
    """The most an idle leader may send per election timeout, with the replies.

    Per follower and per heartbeat interval: one Heartbeat and one HeartbeatResponse. The
    leader has `nodes - 1` followers, and an election timeout holds
    ceil(election_timeout / heartbeat_interval) heartbeat intervals. Nothing else moves while
    the cluster is idle (no appends, no votes), whatever the length of the log.
    """
    intervals = math.ceil(config.election_timeout / config.heartbeat_interval)
    return 2 * (nodes - 1) * intervals


# --- elections --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_electing_a_leader_in_three_nodes_takes_at_most_30_messages(seed: int) -> None:
    sim = Simulation(nodes=3, seed=seed)
    elect(sim)
    sent = sim.messages_sent()
    by_kind = {k: sim.messages_sent(k) for k in ("pre_vote", "request_vote", "append_entries")}
    assert sent <= ELECTION_BUDGET, (
        f"seed {seed}: electing a leader took {sent} messages (> {ELECTION_BUDGET}), "
        f"leader {sim.leader()} at tick {sim.tick}; {by_kind}"
    )


# --- idle heartbeats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "seed"),
    [
        (RaftConfig(), 1),  # defaults: election_timeout 10, heartbeat_interval 1 -> bound 40
        (RaftConfig(election_timeout=20, heartbeat_interval=3), 2),  # bound 2*2*7 = 28
    ],
)
def test_an_idle_cluster_sends_a_bounded_number_of_messages_whatever_its_log(
    config: RaftConfig, seed: int
) -> None:
    nodes = 3
    sim = Simulation(nodes=nodes, seed=seed, config=config)
    elect(sim)
    assert sim.run_until(all_committed, max_ticks=100), f"seed {seed}"
    sim.run(config.election_timeout)  # past the election's own traffic
    bound = idle_bound_per_election_timeout(config, nodes)
    window = 5 * config.election_timeout

    def idle_messages() -> tuple[int, dict[str, int]]:
        before = {k: sim.messages_sent(k) for k in ("heartbeat", "heartbeat_response")}
        total_before = sim.messages_sent()
        sim.run(window)
        kinds = {k: sim.messages_sent(k) - v for k, v in before.items()}
        return sim.messages_sent() - total_before, kinds

    empty_log, kinds_empty = idle_messages()
    assert empty_log <= 5 * bound, (
        f"seed {seed}: an idle cluster sent {empty_log} messages in 5 election timeouts "
        f"(> {5 * bound} = 5 x {bound}, {kinds_empty})"
    )
    assert empty_log == sum(kinds_empty.values()), (
        f"seed {seed}: idle traffic other than heartbeats: {empty_log} vs {kinds_empty}"
    )

    leader = sim.leader()
    for i in range(2000):
        assert sim.propose(f"cmd-{i}".encode()) is not None, f"seed {seed}: proposal {i} refused"
    assert sim.run_until(all_committed, max_ticks=500), f"seed {seed}: 2000 entries not committed"
    assert sim.leader() == leader, f"seed {seed}: leadership moved during the test"
    sim.run(config.election_timeout)

    long_log, kinds_long = idle_messages()
    assert long_log <= 5 * bound, (
        f"seed {seed}: with 2000 entries an idle cluster sent {long_log} messages in 5 election "
        f"timeouts (> {5 * bound}, {kinds_long})"
    )
    assert long_log <= empty_log, (
        f"seed {seed}: idle traffic grew with the log: {empty_log} -> {long_log} messages "
        f"per 5 election timeouts ({kinds_empty} -> {kinds_long})"
    )


# --- batching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_burst_of_100_proposals_travels_in_at_most_10_append_entries(seed: int) -> None:
    sim = Simulation(nodes=3, seed=seed)
    elect(sim)
    assert sim.run_until(all_committed, max_ticks=100), f"seed {seed}"
    appends_before = sim.messages_sent("append_entries")
    indexes = [sim.propose(f"burst-{i}".encode()) for i in range(100)]
    assert None not in indexes, f"seed {seed}: a proposal of the burst was refused"
    assert sim.run_until(all_committed, max_ticks=100), f"seed {seed}: the burst did not commit"
    appends = sim.messages_sent("append_entries") - appends_before
    assert appends <= BURST_APPEND_BUDGET, (
        f"seed {seed}: 100 proposals took {appends} append_entries (> {BURST_APPEND_BUDGET})"
    )
    for node in sim.nodes.values():
        assert node.commands[-100:] == [f"burst-{i}".encode() for i in range(100)], (
            f"seed {seed}: node {node.id}"
        )
