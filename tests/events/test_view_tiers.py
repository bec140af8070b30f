"""ClusterView of a scaled cluster: the management group's plans (`clusters_planned`) fold into
the two tiers, the same in any cross-node order, from a recording and at any time t."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftoral_lab.errors import EventSchemaError
from raftoral_lab.events import (
    ClusterView,
    EventBase,
    Recorder,
    event_to_json,
    load,
    make_event,
    parse_event,
)

from .support import interleave


class Cluster:
    """Writes the events a scaled cluster's nodes would emit, each node with its own seq."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []
        self.seq: dict[int, int] = {}

    def emit(self, kind: str, node: int, ts: float, group: int = 0, **fields: object) -> None:
        self.seq[node] = self.seq.get(node, 0) + 1
        self.events.append(
            make_event(kind, fields, node=node, group=group, seq=self.seq[node], ts=ts)
        )

    def roles(self, group: int, members: list[int], leader: int, term: int, ts: float) -> None:
        for node in members:
            role = "leader" if node == leader else "follower"
            self.emit("role_changed", node, ts, group, role=role, term=term, leader=leader)

    def plan(
        self,
        nodes: list[int],
        version: int,
        clusters: dict[int, list[int]],
        live: list[int],
        ts: float,
    ) -> None:
        """Every node of `nodes` applies plan `version` (one after the other, 0.01 s apart)."""
        for i, node in enumerate(nodes):
            self.emit(
                "clusters_planned",
                node,
                ts + i * 0.01,
                version=version,
                cluster_ids=sorted(clusters),
                clusters=[clusters[c] for c in sorted(clusters)],
                live=live,
            )


NODES = list(range(1, 10))


def scaled() -> Cluster:
    """Nine nodes: group 0 led by n1 (voters n1-n3, the rest learners), three execution
    clusters of three; at t=5 n4 crashes and plan v2 replaces it in cluster 2 by n7 (shared)."""
    c = Cluster()
    c.plan(NODES, 0, {}, [], ts=0.0)  # a scaled node reports its empty state at start
    c.roles(0, NODES, leader=1, term=1, ts=1.0)
    learners = [4, 5, 6, 7, 8, 9]
    c.emit(
        "membership_changed",
        1,
        1.5,
        op="add_learner",
        target=9,
        voters=[1, 2, 3],
        learners=learners,
    )
    first = {1: [1, 2, 3], 2: [4, 5, 6], 3: [7, 8, 9]}
    c.plan(NODES, 1, first, NODES, ts=2.0)
    c.roles(1, [1, 2, 3], leader=2, term=1, ts=3.0)
    c.roles(2, [4, 5, 6], leader=4, term=1, ts=3.0)
    c.roles(3, [7, 8, 9], leader=9, term=1, ts=3.0)
    c.emit("node_crashed", 4, 5.0)
    c.roles(2, [5, 6], leader=5, term=2, ts=6.0)
    second = {1: [1, 2, 3], 2: [5, 6, 7], 3: [7, 8, 9]}
    live = [n for n in NODES if n != 4]
    c.plan([n for n in NODES if n != 4], 2, second, live, ts=8.0)
    return c


def test_plans_fold_into_the_two_tiers_with_the_leader_of_every_group() -> None:
    view = ClusterView(scaled().events)
    assert view.management_version == 2
    assert view.execution_clusters == {1: (1, 2, 3), 2: (5, 6, 7), 3: (7, 8, 9)}
    assert view.live_by_manager == (1, 2, 3, 5, 6, 7, 8, 9)
    assert view.leader(0) == 1
    assert view.cluster_leaders() == {1: 2, 2: 5, 3: 9}
    assert view.clusters_of(7) == [2, 3]  # shared by two clusters
    assert view.clusters_of(4) == []
    assert view.nodes[4].status == "crashed"
    assert view.plan is not None and view.plan.since == 8.0  # the first node to apply it
    assert view.plan_versions[4] == 1 and view.plan_versions[1] == 2
    assert view.membership(0) == ((1, 2, 3), (4, 5, 6, 7, 8, 9))


def test_a_view_without_plans_is_not_scaled() -> None:
    c = Cluster()
    c.roles(0, [1, 2, 3], leader=1, term=1, ts=1.0)
    view = ClusterView(c.events)
    assert view.plan is None and view.management_version is None
    assert view.execution_clusters == {} and view.live_by_manager == ()
    assert view.clusters_of(1) == [] and view.cluster_leaders() == {}
    assert view.snapshot()["plan"] is None


def test_the_empty_start_plan_says_scaled_but_no_clusters_yet() -> None:
    c = Cluster()
    c.plan([1, 2, 3], 0, {}, [], ts=0.0)
    view = ClusterView(c.events)
    assert view.management_version == 0
    assert view.execution_clusters == {}


def test_a_later_plan_replaces_an_earlier_one_in_any_cross_node_order() -> None:
    events = scaled().events
    ordered = ClusterView(events)
    for seed in range(30):
        shuffled = ClusterView(interleave(events, random.Random(seed)))
        assert shuffled == ordered, seed
        assert shuffled.management_version == 2
        assert shuffled.execution_clusters[2] == (5, 6, 7)


def test_a_restarted_node_replaying_old_plans_does_not_roll_the_picture_back() -> None:
    c = scaled()
    c.emit("node_restarted", 4, 10.0)
    c.plan([4], 0, {}, [], ts=10.1)  # rebuilt from its log: from version 0 again
    c.plan([4], 1, {1: [1, 2, 3], 2: [4, 5, 6], 3: [7, 8, 9]}, NODES, ts=10.2)
    view = ClusterView(c.events)
    assert view.management_version == 2
    assert view.execution_clusters[2] == (5, 6, 7)
    assert view.plan_versions[4] == 1  # what node 4 itself has applied so far


def test_at_t_shows_the_plan_and_leaders_of_that_time() -> None:
    events = scaled().events
    assert ClusterView.at(events, 0.5).management_version == 0
    assert ClusterView.at(events, 0.5).execution_clusters == {}
    before = ClusterView.at(events, 4.0)
    assert before.management_version == 1
    assert before.execution_clusters[2] == (4, 5, 6)
    assert before.cluster_leaders() == {1: 2, 2: 4, 3: 9}
    assert before.live_by_manager == tuple(NODES)
    crashed = ClusterView.at(events, 5.5)  # n4 is down, the manager has not replanned yet
    assert crashed.execution_clusters[2] == (4, 5, 6)
    assert crashed.cluster_leaders()[2] is None
    after = ClusterView(events, keep_events=True).until(9.0)
    assert after.execution_clusters[2] == (5, 6, 7)
    assert after.cluster_leaders()[2] == 5


def test_the_same_tiers_live_from_json_and_from_a_recording(tmp_path: Path) -> None:
    events = scaled().events
    live = ClusterView()
    path = tmp_path / "scaled.jsonl"
    with Recorder(path, cluster="lab", config={"nodes": 9}) as recorder:
        for event in events:
            live.apply(event)
            recorder.record(event)
    remote = ClusterView(parse_event(event_to_json(e)) for e in events)  # as over MQTT
    replayed = load(path).view()
    assert remote == live and replayed == live
    assert replayed.execution_clusters == live.execution_clusters
    assert replayed.snapshot()["plan"] == live.snapshot()["plan"]


def test_a_plan_needs_one_id_per_cluster() -> None:
    fields = {"version": 1, "cluster_ids": [1, 2], "clusters": [[1, 2, 3]], "live": [1]}
    with pytest.raises(EventSchemaError, match="one id per cluster") as caught:
        make_event("clusters_planned", fields, node=1, seq=1, ts=0.0)
    assert caught.value.fields == ("cluster_ids",)
