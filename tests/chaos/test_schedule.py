"""The fault plan of `raftoral-lab chaos`: pure data, the same for the same seed, and shaped so
that a run stays meaningful (a minority at most is hit, faults never overlap, every fault is
undone by the end, a long enough run holds every kind)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftoral_lab.chaos.schedule import (
    COVERING_DURATION,
    EPISODE_KINDS,
    MAX_NODES,
    MIN_NODES,
    EpisodeKind,
    choose,
    make_plan,
    minority,
)
from raftoral_lab.errors import ConfigError

seeds = st.integers(min_value=0, max_value=2**32)
sizes = st.integers(min_value=MIN_NODES, max_value=MAX_NODES)


@settings(max_examples=200, deadline=None)
@given(seed=seeds, nodes=sizes, duration=st.floats(min_value=1.0, max_value=600.0))
def test_a_plan_is_deterministic_and_well_formed(seed: int, nodes: int, duration: float) -> None:
    plan = make_plan(seed, duration, nodes)
    assert plan == make_plan(seed, duration, nodes), f"seed {seed}"
    previous_end = 0.0
    for number, episode in enumerate(plan.episodes, start=1):
        assert episode.number == number
        assert episode.at >= previous_end, f"seed {seed}: episodes overlap: {plan.describe()}"
        assert episode.ends <= duration, f"seed {seed}: {episode} is not undone by the end"
        if episode.kind is EpisodeKind.BROKER_RESTART:
            assert episode.size == 0
        else:
            assert 1 <= episode.size <= minority(nodes), f"seed {seed}: {episode}"
            assert len(episode.picks) == episode.size
        assert all(0.0 <= p < 1.0 for p in episode.picks)
        previous_end = episode.ends


@settings(max_examples=200, deadline=None)
@given(seed=seeds, nodes=sizes)
def test_a_run_long_enough_holds_every_kind_of_fault(seed: int, nodes: int) -> None:
    plan = make_plan(seed, COVERING_DURATION, nodes)
    assert plan.kinds() == set(EPISODE_KINDS), f"seed {seed}: {plan.describe()}"


def test_different_seeds_give_different_plans() -> None:
    plans = {make_plan(seed, 60.0, 3).episodes for seed in range(20)}
    assert len(plans) == 20


def test_the_chaos_test_duration_covers_every_kind() -> None:
    # tests/chaos/test_chaos_processes.py runs this long and asserts every fault type happened
    from .test_chaos_processes import DURATION

    assert DURATION >= COVERING_DURATION


def test_a_short_run_has_fewer_faults_but_still_a_valid_plan() -> None:
    plan = make_plan(3, 5.0, 3)
    assert all(e.ends <= 5.0 for e in plan.episodes)
    assert make_plan(3, 1.0, 3).episodes == ()


@given(
    candidates=st.sets(st.integers(min_value=1, max_value=9), max_size=7),
    picks=st.lists(st.floats(min_value=0.0, max_value=0.999999), min_size=1, max_size=4),
    count=st.integers(min_value=0, max_value=8),
)
def test_choose_is_deterministic_and_picks_distinct_candidates(
    candidates: set[int], picks: list[float], count: int
) -> None:
    chosen = choose(list(candidates), picks, count)
    assert chosen == choose(sorted(candidates, reverse=True), picks, count)  # order-independent
    assert len(chosen) == min(count, len(candidates))
    assert len(set(chosen)) == len(chosen)
    assert set(chosen) <= candidates


@pytest.mark.parametrize(
    ("seed", "duration", "nodes"),
    [(1, 60.0, 2), (1, 60.0, 8), (1, 0.0, 3), (1, -5.0, 3), (1, float("nan"), 3), (1, 60.0, True)],
)
def test_bad_plan_arguments_raise_config_error(seed: int, duration: float, nodes: int) -> None:
    with pytest.raises(ConfigError):
        make_plan(seed, duration, nodes)
