"""What a benchmark phase measures: latency samples (p50/p99) and throughput."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (`p` in 0..100) of the samples; NaN when there are none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Seconds per operation, one sample per operation (warm-up already left out)."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        return cls(tuple(float(s) for s in samples))

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 50) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1e3


@dataclass(frozen=True, slots=True)
class Throughput:
    """`operations` completed in `seconds` with `in_flight` outstanding at a time."""

    operations: int
    seconds: float
    in_flight: int

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Rounds:
    """Several throughput rounds of one setup; the median is the figure, the spread a note."""

    rounds: tuple[Throughput, ...]

    @property
    def per_second(self) -> float:
        rates = sorted(r.per_second for r in self.rounds)
        if not rates:
            return math.nan
        mid = len(rates) // 2
        return rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2

    @property
    def low(self) -> float:
        return min((r.per_second for r in self.rounds), default=math.nan)

    @property
    def high(self) -> float:
        return max((r.per_second for r in self.rounds), default=math.nan)


def load_average() -> float | None:
    """The 1-minute load average at this moment (None where the platform has none): every
    bench prints it at both ends, since a busy machine moves its figures."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
