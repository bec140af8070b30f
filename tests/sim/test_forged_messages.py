"""Fuzzed and forged messages stepped into the nodes of a running simulation: no livelock, no
broken invariant, and the cluster still commits once they stop.

Hypothesis draws a Simulation seed and a run of actions on a 3-node cluster: step a message
into one node (then let the network settle), tick, propose, compact, isolate a follower (and
let it miss a few commands), heal. The messages are the ones a node must survive from a
confused or lying peer without help:

- AppendResponses in the leader's term with any success flag and indexes from 0 to past the
  leader's last index: forged acknowledgements of entries the follower lacks or the leader
  never had, refusals of acknowledged indexes, any hints;
- HeartbeatResponses, TimeoutNows, pre-vote RequestVotes and VoteResponses (refused votes,
  or granted pre-votes) in the receiver's term or one term off either way.

Forged leader traffic (appends, heartbeats, snapshots), granted real votes and real vote
requests are left out: Raft assumes no peer lies about those, and a lie there breaks safety
by design. Proposals settle before the next forged message, so a forged acknowledgement can
only lie about a follower cut off by `isolate` (which then only lags, never diverges).

Checked: every step and tick finishes (the simulator raises after MAX_ROUNDS message rounds
in one tick: a livelock), the simulator's per-step invariants hold (with the leader's
match_index <= last_index and next_index <= last_index + 1), and after healing a new command
is applied on every node. A failure prints the seed: `Simulation(nodes=3, seed=SEED)` and
the noted actions replay it.
"""

from __future__ import annotations

import os
from unittest import mock

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from raftoral_lab.core import (
    AppendResponse,
    HeartbeatResponse,
    Message,
    RawNode,
    RequestVote,
    Role,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.sim import Simulation
from raftoral_lab.sim import simulation as simulation_module

NODES = (1, 2, 3)
MAX_ROUNDS = 300  # message rounds per tick before a livelock is declared (a calm tick takes < 20)
RECOVERY_TICKS = 2000

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


def forged_message(data: st.DataObject, sim: Simulation, step: int) -> Message:
    """A message for a live node, mostly an AppendResponse to the leader."""
    leader = sim.leader()
    live = [i for i in NODES if sim.node(i).alive]
    to_leader = leader is not None and data.draw(st.integers(0, 3), label=f"{step}: to leader")
    dst = leader if to_leader and leader is not None else data.draw(st.sampled_from(live))
    raft = sim.node(dst).raft
    assert raft is not None
    peers = [i for i in NODES if i != dst]
    cut_off = [i for i in peers if not sim.connected(i, dst)]  # lags: the lies that matter
    src = data.draw(st.sampled_from(cut_off * 2 + peers), label=f"{step}: src")
    index = indexes(sim, raft, src)
    term = data.draw(
        st.sampled_from((raft.term,) * 4 + (raft.term + 1, max(0, raft.term - 1))),
        label=f"{step}: term",
    )
    kind = data.draw(
        st.sampled_from(("ack",) * 4 + ("heartbeat_response", "timeout_now", "pre_vote", "vote")),
        label=f"{step}: kind",
    )
    if kind == "ack":
        if data.draw(st.booleans(), label=f"{step}: same term"):
            term = raft.term  # the forged acknowledgement the leader must not trust blindly
        return AppendResponse(
            raft.group,
            src,
            dst,
            term,
            data.draw(st.booleans(), label=f"{step}: success"),
            data.draw(index, label=f"{step}: match_index"),
            data.draw(index, label=f"{step}: hint_index"),
            data.draw(st.integers(0, term), label=f"{step}: hint_term"),
        )
    if kind == "heartbeat_response":
        return HeartbeatResponse(raft.group, src, dst, term)
    if kind == "timeout_now":
        return TimeoutNow(raft.group, src, dst, term)
    if kind == "pre_vote":
        last_index = data.draw(index, label=f"{step}: last_log_index")
        last_term = data.draw(st.integers(0, term), label=f"{step}: last_log_term")
        return RequestVote(raft.group, src, dst, term, last_index, last_term, pre_vote=True)
    pre_vote = data.draw(st.booleans(), label=f"{step}: pre_vote")
    granted = pre_vote and data.draw(st.booleans(), label=f"{step}: granted")
    return VoteResponse(raft.group, src, dst, term, granted, pre_vote)


def indexes(sim: Simulation, raft: RawNode, src: int) -> st.SearchStrategy[int]:
    """Mostly an edge: the ends of the receiver's and the sender's logs, what the receiver
    believes of the sender; else anything up to just past the receiver's last index."""
    last = raft.log.last_index
    edges = {0, last, last + 1, raft.commit_index}
    sender = sim.node(src).raft
    if sender is not None:
        edges |= {sender.log.last_index, sender.log.last_index + 1}
    pr = raft.progress.get(src) if raft.role is Role.LEADER else None
    if pr is not None:
        edges |= {pr.match_index, pr.next_index - 1}
    return st.one_of(st.sampled_from(sorted(edges)), st.integers(0, last + 3))


def leader_raft(sim: Simulation) -> RawNode | None:
    leader = sim.leader()
    return sim.node(leader).raft if leader is not None else None


def check_leader_progress(sim: Simulation, after: str) -> None:
    for node in NODES:
        raft = sim.node(node).raft
        if raft is None or raft.role is not Role.LEADER:
            continue
        last = raft.log.last_index
        for peer, pr in raft.progress.items():
            assert pr.match_index <= last and pr.next_index <= last + 1, (
                f"seed {sim.seed}, after {after}: leader {node} (last {last}) has "
                f"match {pr.match_index}, next {pr.next_index} for node {peer}"
            )


def run_with_forgeries(data: st.DataObject, seed: int) -> None:
    sim = Simulation(nodes=len(NODES), seed=seed, record_events=False)
    assert sim.run_until(lambda s: s.leader() is not None), f"seed {seed}: no first leader"
    proposals = 0
    for step in range(data.draw(st.integers(5, 40), label="actions")):
        action = data.draw(
            st.sampled_from(
                ("message",) * 4 + ("propose", "isolate", "lag", "ticks", "compact", "heal")
            ),
            label=f"{step}: action",
        )
        if action == "message":
            message = forged_message(data, sim, step)
            note(f"step {step}: tick {sim.tick}: {message}")
            raft = sim.node(message.dst).raft
            assert raft is not None
            raft.step(message)
            sim.settle()
        elif action == "ticks":
            sim.run(data.draw(st.integers(1, 30), label=f"{step}: ticks"))
        elif action == "propose":
            proposals += 1
            sim.propose(f"p{proposals}".encode())
            sim.settle()
        elif action == "compact":
            live = [i for i in NODES if sim.node(i).alive]
            sim.compact(data.draw(st.sampled_from(live), label=f"{step}: compact"))
        elif action in ("isolate", "lag"):
            leader = sim.leader()
            followers = [i for i in NODES if i != leader]
            sim.isolate(data.draw(st.sampled_from(followers), label=f"{step}: isolate"))
            if action == "lag":  # the isolated follower misses entries the others commit
                for _ in range(data.draw(st.integers(1, 3), label=f"{step}: proposals")):
                    proposals += 1
                    sim.propose(f"p{proposals}".encode())
                sim.settle()
        else:
            sim.heal()
        note(f"step {step}: {action}: {list(sim.nodes.values())}")
        check_leader_progress(sim, f"step {step} ({action})")
    sim.heal()
    marker = b"after the forgeries"
    deadline = sim.tick + RECOVERY_TICKS

    def everywhere(s: Simulation) -> bool:
        raft = leader_raft(s)
        if raft is None:
            return False
        if not any(entry.data == marker for entry in raft.log.entries):
            s.propose(marker)
        return all(marker in s.node(i).commands for i in NODES)

    assert sim.run_until(everywhere, max_ticks=deadline - sim.tick), (
        f"seed {seed}: no command applied on every node within {RECOVERY_TICKS} ticks of the "
        f"last forged message: {list(sim.nodes.values())}"
    )
    check_leader_progress(sim, "recovery")
    sim.check_invariants()


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_forged_messages_never_livelock_or_break_an_invariant(
    seed: int, data: st.DataObject
) -> None:
    note(f"Simulation(nodes={len(NODES)}, seed={seed})")
    with mock.patch.object(simulation_module, "MAX_ROUNDS_PER_TICK", MAX_ROUNDS):
        try:
            run_with_forgeries(data, seed)
        except Exception as exc:
            exc.add_note(f"Simulation(nodes={len(NODES)}, seed={seed})")
            raise
