"""The cluster policy and the management state, without a cluster (both are pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftoral_lab.core import Entry
from raftoral_lab.errors import ConfigError
from raftoral_lab.scale import ClusterPolicy, ExecutionCluster, ManagementState, Plan, RoundRobin
from raftoral_lab.scale.state import workflow_cluster

POLICY = ClusterPolicy(target_size=5)


def members(plan: dict[int, ExecutionCluster]) -> dict[int, tuple[int, ...]]:
    return {c: x.members for c, x in plan.items()}


def test_fifteen_nodes_make_three_clusters_of_five() -> None:
    plan = POLICY.plan({}, range(1, 16), 1)
    assert members(plan) == {1: (1, 2, 3, 4, 5), 2: (6, 7, 8, 9, 10), 3: (11, 12, 13, 14, 15)}
    assert all(c.founders == c.members for c in plan.values())


def test_a_dead_member_is_replaced_and_given_back_when_it_returns() -> None:
    start = POLICY.plan({}, range(1, 16), 1)
    after_kill = POLICY.plan(start, set(range(1, 16)) - {3}, 4)
    assert 3 not in after_kill[1].members and len(after_kill[1].members) == 5
    borrowed = set(after_kill[1].members) - {1, 2, 4, 5}
    assert len(borrowed) == 1 and borrowed <= set(range(6, 16)), "a node of another cluster"
    back = POLICY.plan(after_kill, range(1, 16), 4)
    assert members(back) == members(start), "the returned node ends the sharing"


def test_a_cluster_that_lost_its_majority_keeps_its_members() -> None:
    start = POLICY.plan({}, range(1, 16), 1)
    plan = POLICY.plan(start, set(range(1, 16)) - {1, 2, 3}, 4)
    assert plan[1].members == (1, 2, 3, 4, 5)


def test_joiners_grow_a_cluster_then_split_it() -> None:
    policy = ClusterPolicy(target_size=3)
    plan = policy.plan({}, [1, 2, 3], 1)
    assert members(plan) == {1: (1, 2, 3)}
    plan = policy.plan(plan, [1, 2, 3, 4, 5], 2)
    assert members(plan) == {1: (1, 2, 3, 4, 5)}  # grown up to max_size (3 + 2)
    plan = policy.plan(plan, range(1, 7), 2)
    assert members(plan) == {1: (1, 2, 3), 2: (4, 5, 6)}
    assert plan[2].founders == (4, 5, 6)


def test_bad_settings_are_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="execution_cluster_size"):
        ClusterPolicy(target_size=0)
    with pytest.raises(ConfigError, match="max_size"):
        ClusterPolicy(target_size=5, max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    target=st.integers(1, 6),
    steps=st.lists(st.sets(st.integers(1, 20)), min_size=1, max_size=8),
)
def test_plans_are_stable_bounded_and_place_every_live_node(
    target: int, steps: list[set[int]]
) -> None:
    policy = ClusterPolicy(target_size=target)
    plan: dict[int, ExecutionCluster] = {}
    next_cluster = 1
    for live in steps:
        plan = policy.plan(plan, live, next_cluster)
        next_cluster = max([next_cluster - 1, *plan]) + 1
        assert policy.plan(plan, live, next_cluster) == plan, "the same inputs, the same plan"
        for cluster in plan.values():
            assert len(set(cluster.members)) == len(cluster.members)
            kept_dead = set(cluster.members) - live
            assert len(cluster.members) <= max(policy.largest, 2 * len(kept_dead)), cluster
        placed = {m for c in plan.values() for m in c.members}
        healthy = all(set(c.members) <= live for c in plan.values())
        if healthy and len(live) >= policy.smallest:
            assert live <= placed, (live - placed, members(plan))


def test_management_state_applies_plans_in_version_order_only() -> None:
    state = ManagementState()
    cluster = ExecutionCluster(1, (1, 2, 3), (1, 2, 3))
    plan = Plan(0, (cluster,), (1, 2, 3))
    assert state.apply(Entry(2, 1, plan.encode())) == {"result": "planned", "version": 1}
    assert state.apply(Entry(3, 1, plan.encode())) == {"result": "stale", "version": 1}
    refused = state.apply(Entry(4, 1, b'{"op": "plan", "base": -1}'))
    assert isinstance(refused, dict) and refused["result"] == "refused"
    copy = ManagementState()
    copy.restore(state.snapshot())
    assert copy.clusters == state.clusters and copy.version == 1 and copy.next_cluster == 2
    assert state.member_of(2) == [1] and state.member_of(9) == []


def test_a_workflow_id_tells_its_cluster() -> None:
    assert workflow_cluster("e3-abc") == 3
    assert workflow_cluster("e12-x-y") == 12
    for other in ("abc", "e-abc", "e03-abc", "ex-abc", "e3-", "3-abc"):
        assert workflow_cluster(other) is None, other


def test_round_robin_takes_each_cluster_in_turn() -> None:
    placement = RoundRobin()
    assert [placement.choose([3, 1, 2], "w", 1) for _ in range(4)] == [1, 2, 3, 1]
    with pytest.raises(ConfigError, match="no execution cluster"):
        placement.choose([], "w", 1)
