"""ClusterView: the same picture live, from a recording and in any cross-node order; right
about the cluster it describes; and able to say what the cluster looked like at time t."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftoral_lab.errors import ConfigError
from raftoral_lab.events import ClusterView, EventBase, Recorder, load, make_event
from raftoral_lab.sim import Simulation

from .support import Feed, chaos, interleave, loaded_events, run_with_faults


def truth(sim: Simulation, node_id: int) -> tuple[object, ...]:
    node = sim.nodes[node_id]
    raft = node.raft
    assert raft is not None
    return (
        raft.role.value,
        raft.term,
        raft.commit_index,
        raft.applied_index,
        raft.log.offset,
        raft.log.last_index,
        raft.log.last_term,
    )


def seen(view: ClusterView, node_id: int) -> tuple[object, ...]:
    r = view.replica(node_id)
    return (
        r.role,
        r.term,
        r.commit_index,
        r.applied_index,
        r.log.snapshot_index,
        r.log.last_index,
        r.log.last_term,
    )


@pytest.mark.parametrize("seed", range(6))
def test_live_view_equals_the_view_of_the_recording(seed: int, tmp_path: Path) -> None:
    live = ClusterView()
    path = tmp_path / "run.jsonl"
    with Recorder(path, cluster="sim", config={"seed": seed, "nodes": 5}) as recorder:

        def listener(event: EventBase) -> None:
            live.apply(event)
            recorder.record(event)

        sim = run_with_faults(seed, listener=listener)
    recording = load(path)
    assert recording.header.cluster == "sim" and recording.header.config["seed"] == seed
    assert len(recording.events) == len(sim.events) > 1000
    replayed = recording.view()
    assert replayed == live
    assert replayed.snapshot() == live.snapshot()
    assert ClusterView(sim.events) == live
    assert live.leader() == sim.leader()


@pytest.mark.parametrize("seed", range(20))
def test_the_view_matches_the_simulated_nodes_after_every_tick(seed: int) -> None:
    rng = random.Random(seed)
    sim = Simulation(5, seed=seed, compact_every=rng.choice([None, 15]))
    view = ClusterView(loaded_events(sim))
    feed = Feed(sim)
    for tick in range(300):
        chaos(sim, rng)
        view.extend(feed.take())
        for node_id, node in sim.nodes.items():
            if node.alive:
                assert seen(view, node_id) == truth(sim, node_id), (seed, tick, node_id)
            else:
                assert view.nodes[node_id].status == "crashed"
        assert view.leader() == sim.leader(), (seed, tick)


def test_log_runs_match_the_logs_entry_by_entry() -> None:
    for seed in range(20):
        sim = run_with_faults(seed, 300)
        view = ClusterView([*loaded_events(Simulation(5, seed=seed)), *sim.events])
        for node_id, node in sim.nodes.items():
            if node.alive:
                assert view.replica(node_id).log.terms() == [(e.index, e.term) for e in node.log]


@pytest.mark.parametrize("seed", range(4))
def test_events_of_different_nodes_may_arrive_in_any_interleaving(seed: int) -> None:
    # what makes a remote observer agree with the in-process view: over MQTT only each node's
    # own order is kept
    sim = run_with_faults(seed, 300)
    events = sim.events
    expected = ClusterView(events)
    rng = random.Random(seed)
    for _ in range(3):
        assert ClusterView(interleave(events, rng)) == expected


def test_overwritten_entries_stay_visible_with_their_term() -> None:
    # Figure 8 in miniature: a cut-off leader's uncommitted entries are replaced
    sim = Simulation(5, seed=11)
    assert sim.run_until(lambda s: s.leader() is not None)
    old = sim.leader()
    assert old is not None
    old_term = sim.node(old).term
    sim.isolate(old)
    stranded = [sim.propose(b"lost %d" % i, node=old) or 0 for i in range(3)]
    assert all(stranded)
    assert sim.run_until(lambda s: s.leader() not in (None, old), max_ticks=500)
    sim.propose(b"new")
    sim.heal()
    sim.run(80)
    view = ClusterView(sim.events)
    log = view.replica(old).log
    assert [(o.first, o.term) for o in log.overwritten] == [(stranded[0], old_term)]
    assert log.overwritten[0].last >= stranded[-1]
    assert log.term_at(stranded[0]) == sim.node(old).log[stranded[0] - 2].term != old_term
    assert view.replica(old).commit_index == sim.node(old).commit_index


def test_at_t_shows_the_leader_of_that_time_through_failovers() -> None:
    sim = Simulation(5, seed=5)
    samples: list[tuple[int, int | None]] = []

    def run(ticks: int) -> None:
        for _ in range(ticks):
            samples.append((sim.tick, sim.leader()))  # the state with every event of ts <= tick
            sim.step()

    run(60)
    for _ in range(3):
        leader = sim.leader()
        assert leader is not None
        sim.crash(leader)
        run(80)
        sim.restart(leader)
        run(40)
    leader = sim.leader()
    assert leader is not None
    sim.isolate(leader)
    run(80)
    sim.heal()
    run(40)
    samples.append((sim.tick, sim.leader()))
    leaders = {leader for _, leader in samples}
    assert len(leaders - {None}) >= 3 and None in leaders  # failovers did happen
    for tick, expected in samples:
        assert ClusterView.at(sim.events, tick).leader() == expected, tick
    kept = ClusterView(sim.events, keep_events=True)
    for tick, expected in samples[::25]:
        assert kept.until(tick).leader() == expected
    timeline = kept.leaders()
    assert [s.term for s in timeline] == sorted(s.term for s in timeline)
    assert all(s.until is not None for s in timeline[:-1])


def test_until_needs_the_events() -> None:
    with pytest.raises(ConfigError, match="keep_events=True"):
        ClusterView().until(3.0)


def test_crash_restart_and_removal() -> None:
    sim = Simulation(3, seed=2)
    assert sim.run_until(lambda s: s.leader() is not None)
    leader = sim.leader()
    assert leader is not None
    sim.crash(leader)
    view = ClusterView(sim.events)
    assert view.nodes[leader].status == "crashed" and view.leader() is None
    assert view.replica(leader).span is None
    sim.restart(leader)
    view = ClusterView(sim.events)
    assert view.nodes[leader].status == "alive" and view.replica(leader).role == "follower"
    assert sim.run_until(lambda s: s.leader() is not None)
    new = sim.add_node()
    gone = next(n for n in sim.nodes if n not in (new, sim.leader()))
    sim.remove_node(gone)
    sim.run(20)
    view = ClusterView(sim.events)
    assert view.nodes[gone].status == "removed" and view.nodes[new].status == "alive"
    voters, learners = view.membership() or ((), ())
    assert set(voters) == set(sim.nodes) - {gone} and learners == ()


def test_elections_and_message_counts() -> None:
    sim = Simulation(3, seed=4)
    sim.run(40)
    sim.partition({1}, {2, 3})
    sim.run(60)
    view = ClusterView(sim.events)
    won = [e for e in view.elections() if e.outcome == "won" and not e.pre_vote]
    assert won and all(e.votes >= e.needed for e in won)
    assert sum(c.sent for c in view.messages.values()) == sim.messages_sent()
    assert view.drops["partition"] == sim.messages_dropped("partition") > 0
    assert view.partitions == {0: ((1,), (2, 3))}
    assert (1, 2) in view.cut_links() and (2, 3) not in view.cut_links()
    quiet = view.snapshot(messages=False)
    assert "messages" not in quiet and "message_sent" not in quiet["counts"]


# --- workflows ------------------------------------------------------------------------------


def wf(kind: str, node: int, seq: int, ts: float, **fields: object) -> EventBase:
    return make_event(kind, {"workflow_id": "w1", **fields}, node=node, seq=seq, ts=ts)


def workflow_run() -> list[EventBase]:
    """Three nodes run w1; owner 1 proposes two checkpoints, dies, 2 takes over (epoch 1)."""
    events: list[EventBase] = []
    seq = dict.fromkeys((1, 2, 3), 0)

    def add(kind: str, node: int, ts: float, **fields: object) -> None:
        seq[node] += 1
        events.append(wf(kind, node, seq[node], ts, **fields))

    for n in (1, 2, 3):
        add("workflow_started", n, 1.0 + n / 10, name="order", version=2, owner=1)
    add("checkpoint_proposed", 1, 2.0, ordinal=0, key="status", epoch=0)
    for n in (1, 2, 3):
        add("checkpoint_committed", n, 2.5, ordinal=0, key="status", epoch=0, index=5)
    for n in (1, 2):
        add("checkpoint_consumed", n, 2.6, ordinal=0, key="status")
    add("checkpoint_proposed", 1, 3.0, ordinal=1, key="inventory", epoch=0)
    for n in (2, 3):
        add("owner_changed", n, 4.0, owner=2, epoch=1)
        add("checkpoint_stale", n, 4.1, ordinal=1, epoch=0, current_epoch=1)
    add("checkpoint_proposed", 2, 4.5, ordinal=1, key="inventory", epoch=1)
    for n in (2, 3):
        add("checkpoint_committed", n, 5.0, ordinal=1, key="inventory", epoch=1, index=9)
        add("checkpoint_duplicate", n, 5.1, ordinal=1, key="inventory")
    add("checkpoint_consumed", 2, 5.2, ordinal=1, key="inventory")
    add("workflow_sleeping", 3, 5.3, ordinal=2, until=60.0)
    add("workflow_divergence", 3, 5.4, ordinal=1, expected_key="inventory", actual_key="x")
    add("workflow_completed", 2, 6.0, name="order", result='{"status": "confirmed"}')
    return events


def test_workflows_owner_epoch_checkpoints_and_queues() -> None:
    view = ClusterView(workflow_run())
    w = view.workflows["w1"]
    assert (w.name, w.version, w.owner, w.epoch, w.status) == ("order", 2, 2, 1, "completed")
    assert (w.started, w.ended, w.result) == (1.1, 6.0, '{"status": "confirmed"}')
    assert [(c.ordinal, c.key, c.epoch, c.index) for c in w.checkpoints.values()] == [
        (0, "status", 0, 5),
        (1, "inventory", 1, 9),
    ]
    assert w.checkpoints[1].duplicates == 2 and w.stale == 2
    assert w.queue(1) == [] and w.queue(2) == []
    assert w.queue(3) == [(0, "status"), (1, "inventory")]  # node 3 consumed nothing yet
    assert w.nodes[3].status == "sleeping" and w.nodes[3].sleeping_until == 60.0
    assert [(d.node, d.actual_key) for d in w.divergences] == [(3, "x")]


def test_workflow_status_before_the_end_and_failure() -> None:
    events = workflow_run()[:-1]
    assert ClusterView(events).workflows["w1"].status == "running"
    failed = make_event(
        "workflow_failed",
        {"workflow_id": "w1", "error_type": "ValueError", "message": "no stock"},
        node=3,
        seq=99,
        ts=7.0,
    )
    w = ClusterView([*events, failed]).workflows["w1"]
    assert (w.status, w.error_type, w.error_message) == ("failed", "ValueError", "no stock")


def test_workflow_fold_is_independent_of_cross_node_order() -> None:
    events = workflow_run()
    expected = ClusterView(events)
    rng = random.Random(1)
    for _ in range(20):
        assert ClusterView(interleave(events, rng)) == expected


def test_a_leader_announcing_its_state_again_keeps_its_leadership_span() -> None:
    """An `announce` re-reports a live leader (state_loaded, then role_changed): the timeline
    must show one leadership from its start, not one that restarts at the announce."""
    from raftoral_lab.events import ClusterView, make_event

    def ev(kind: str, seq: int, ts: float, **fields: object) -> object:
        return make_event(kind, fields, node=1, seq=seq, ts=ts)

    loaded = {
        "term": 2, "commit_index": 5, "applied_index": 5, "snapshot_index": 1,
        "snapshot_term": 1, "last_index": 5, "last_term": 2, "voters": [1, 2, 3], "learners": [],
    }  # fmt: skip
    view = ClusterView(
        [
            ev("role_changed", 1, 10.0, role="leader", term=2, leader=1),
            ev("state_loaded", 2, 50.0, **loaded),
            ev("role_changed", 3, 50.0, role="leader", term=2, leader=1),
        ]
    )
    (span,) = view.leader_spans.values()
    assert (span.since, span.until) == (10.0, None)
    assert view.leader(0) == 1
