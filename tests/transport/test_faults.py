"""FaultFilter: seeded, clock-free fault decisions shared by both transports."""

from __future__ import annotations

import math

import pytest

from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.faults import DELIVER, FaultFilter, Verdict


def test_no_faults_delivers_everything_at_once() -> None:
    f = FaultFilter(seed=1)
    assert not f.active
    assert all(f.decide(d) is DELIVER for d in range(100))
    assert Verdict(True, 0.0, None) == DELIVER


def test_partition_blocks_listed_peers_only() -> None:
    f = FaultFilter(seed=1, blocked={2, 3})
    assert f.decide(2) == Verdict(False, 0.0, "partition")
    assert f.decide(4).deliver
    assert f.is_blocked(3) and not f.is_blocked(4)
    f.unblock(2)
    assert f.decide(2).deliver
    f.block(5)
    assert f.blocked == {3, 5}
    f.heal()
    assert not f.blocked and not f.active


def test_drop_rate_statistics_with_a_seed() -> None:
    f = FaultFilter(seed=42, drop_rate=0.3)
    n = 20_000
    dropped = sum(not f.decide(2).deliver for _ in range(n))
    # binomial: mean 6000, sd ~65; 5 sd is far from flaky and still catches a wrong rate
    assert abs(dropped - 0.3 * n) < 5 * math.sqrt(n * 0.3 * 0.7)
    first = [FaultFilter(seed=42, drop_rate=0.3).decide(2) for _ in range(2)]
    assert first[0] == first[1]


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[Verdict]:
        f = FaultFilter(seed=seed, drop_rate=0.5, delay=(0.01, 0.05))
        return [f.decide(d % 3) for d in range(500)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_drop_rate_extremes() -> None:
    assert all(not FaultFilter(drop_rate=1.0).decide(1).deliver for _ in range(100))
    assert FaultFilter(drop_rate=1.0).decide(1).reason == "drop_rate"
    assert all(FaultFilter(drop_rate=0.0).decide(1).deliver for _ in range(100))


def test_delay_range_statistics() -> None:
    f = FaultFilter(seed=3, delay=(0.1, 0.3))
    delays = [f.decide(1).delay for _ in range(5000)]
    assert min(delays) >= 0.1 and max(delays) <= 0.3
    assert abs(sum(delays) / len(delays) - 0.2) < 0.01
    assert len(set(delays)) > 100  # a range, so messages reorder


def test_fixed_delay() -> None:
    f = FaultFilter()
    f.set_delay(0.05)
    assert f.delay == (0.05, 0.05)
    assert f.decide(1) == Verdict(True, 0.05)
    f.delay = 0.2
    assert f.delay == (0.2, 0.2)


def test_partition_wins_over_drop_and_delay() -> None:
    f = FaultFilter(seed=0, drop_rate=0.5, delay=(1, 2), blocked=[9])
    assert all(f.decide(9).reason == "partition" for _ in range(50))


def test_inactive_filter_draws_no_random_numbers() -> None:
    """Decisions under faults depend only on messages sent while faults were on."""
    a, b = FaultFilter(seed=5), FaultFilter(seed=5)
    for _ in range(100):
        a.decide(1)
    a.drop_rate = b.drop_rate = 0.5
    assert [a.decide(1) for _ in range(50)] == [b.decide(1) for _ in range(50)]


@pytest.mark.parametrize("rate", [-0.1, 1.5, math.nan, math.inf, "0.5", True, None])
def test_bad_drop_rate_names_the_range(rate: object) -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        FaultFilter(drop_rate=rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delay", "text"),
    [
        (-1, r"\[0, 60\]"),
        ((0.5, 0.1), "min <= max"),
        ((0, 1, 2), "pair"),
        (math.nan, r"\[0, 60\]"),
        (math.inf, r"\[0, 60\]"),
        (250, "not milliseconds"),
        ("1", "number of seconds"),
    ],
)
def test_bad_delay_names_the_range(delay: object, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        FaultFilter(delay=delay)  # type: ignore[arg-type]


@pytest.mark.parametrize("blocked", [[-1], ["a"], "12", [True]])
def test_bad_blocked_peers(blocked: object) -> None:
    with pytest.raises(ConfigError, match="node id"):
        FaultFilter(blocked=blocked)  # type: ignore[arg-type]


def test_to_dict_is_plain_json() -> None:
    f = FaultFilter(drop_rate=0.25, delay=(0.1, 0.2), blocked={3, 1})
    assert f.to_dict() == {"blocked": [1, 3], "drop_rate": 0.25, "delay": [0.1, 0.2]}
    f.reset()
    assert f.to_dict() == {"blocked": [], "drop_rate": 0.0, "delay": [0.0, 0.0]}
    assert "drop_rate=0" in repr(f)
