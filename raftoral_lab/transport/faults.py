"""Fault injection that both transports share, so a lab partition or drop rate behaves the same
in one process and across machines.

`FaultFilter` is pure: a seeded `random.Random`, no clock, no I/O. The transport asks it about
each outbound message and acts on the `Verdict` (drop it, or deliver it after a delay).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.stats import DropReason

MAX_DELAY = 60.0
"""Upper bound of an added delay in seconds; larger values are almost always milliseconds
typed where seconds were meant, and would stall a cluster for minutes."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one message: deliver it (after `delay` seconds) or drop it (`reason`)."""

    deliver: bool
    delay: float = 0.0
    reason: str | None = None


DELIVER = Verdict(True)
_PARTITIONED = Verdict(False, 0.0, DropReason.PARTITION.value)
_RANDOM_DROP = Verdict(False, 0.0, DropReason.DROP_RATE.value)


def _node_id(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ConfigError(f"{what} must be a non-negative integer node id, got {value!r}")
    return value


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{what} must be a number of seconds in [0, {MAX_DELAY:g}], got {value!r}"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or not 0.0 <= seconds <= MAX_DELAY:
        raise ConfigError(
            f"{what} must be in [0, {MAX_DELAY:g}] seconds, got {value!r}"
            + (" (delays are in seconds, not milliseconds)" if seconds > MAX_DELAY else "")
        )
    return seconds


class FaultFilter:
    """Partition, random drops and added delay for the messages one node sends.

    A partition (`blocked`) is checked on both ends, so blocking a peer on one node cuts both
    directions; the drop rate and delay act on the sending side only, so they do not compound.
    With no fault set, `decide` returns at once without drawing a random number, so a seeded
    filter's sequence depends only on the messages sent while faults were active.
    """

    __slots__ = ("_blocked", "_delay_hi", "_delay_lo", "_drop_rate", "_rng", "seed")

    def __init__(
        self,
        *,
        seed: int | None = None,
        drop_rate: float = 0.0,
        delay: float | tuple[float, float] = 0.0,
        blocked: Iterable[int] = (),
    ) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._blocked: frozenset[int] = frozenset()
        self._drop_rate = 0.0
        self._delay_lo = 0.0
        self._delay_hi = 0.0
        self.drop_rate = drop_rate
        self.delay = delay
        self.blocked = frozenset(blocked)

    # --- partition -------------------------------------------------------------------------

    @property
    def blocked(self) -> frozenset[int]:
        """Peers this node can neither send to nor receive from."""
        return self._blocked

    @blocked.setter
    def blocked(self, peers: Iterable[int]) -> None:
        if isinstance(peers, str | bytes):
            raise ConfigError(f"blocked must be a collection of node ids, got {peers!r}")
        try:
            items = list(peers)
        except TypeError:
            raise ConfigError(f"blocked must be a collection of node ids, got {peers!r}") from None
        self._blocked = frozenset(_node_id(p, "a blocked peer") for p in items)

    def block(self, *peers: int) -> None:
        self.blocked = self._blocked | {_node_id(p, "a blocked peer") for p in peers}

    def unblock(self, *peers: int) -> None:
        self._blocked = self._blocked - set(peers)

    def heal(self) -> None:
        """End the partition; drop rate and delay stay as they are."""
        self._blocked = frozenset()

    def is_blocked(self, peer: int) -> bool:
        return peer in self._blocked

    # --- drops and delay -------------------------------------------------------------------

    @property
    def drop_rate(self) -> float:
        """Probability in [0, 1] that an outbound message is lost."""
        return self._drop_rate

    @drop_rate.setter
    def drop_rate(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise ConfigError(f"drop_rate must be a number in [0, 1], got {rate!r}")
        value = float(rate)
        if not 0.0 <= value <= 1.0:  # also false for NaN
            raise ConfigError(f"drop_rate must be in [0, 1] (a probability), got {rate!r}")
        self._drop_rate = value

    @property
    def delay(self) -> tuple[float, float]:
        """Added delay range (min, max) in seconds; each message draws uniformly from it."""
        return (self._delay_lo, self._delay_hi)

    @delay.setter
    def delay(self, value: float | tuple[float, float]) -> None:
        if isinstance(value, tuple | list):
            if len(value) != 2:
                raise ConfigError(
                    f"delay must be seconds or a (min, max) pair with 0 <= min <= max <= "
                    f"{MAX_DELAY:g}, got {value!r}"
                )
            lo, hi = _seconds(value[0], "delay min"), _seconds(value[1], "delay max")
        else:
            lo = hi = _seconds(value, "delay")
        if lo > hi:
            raise ConfigError(f"delay must satisfy min <= max, got ({lo:g}, {hi:g})")
        self._delay_lo, self._delay_hi = lo, hi

    def set_delay(self, lo: float, hi: float | None = None) -> None:
        """A fixed delay (`hi` omitted) or a uniform range: a range also reorders messages."""
        self.delay = (lo, lo if hi is None else hi)

    def reset(self) -> None:
        """No partition, no drops, no delay."""
        self._blocked = frozenset()
        self._drop_rate = 0.0
        self._delay_lo = self._delay_hi = 0.0

    @property
    def active(self) -> bool:
        return bool(self._blocked) or self._drop_rate > 0.0 or self._delay_hi > 0.0

    def decide(self, dst: int) -> Verdict:
        """The fate of one message to `dst`: partition first, then the drop rate, then delay."""
        if dst in self._blocked:
            return _PARTITIONED
        if self._drop_rate > 0.0 and self._rng.random() < self._drop_rate:
            return _RANDOM_DROP
        if self._delay_hi > 0.0:
            lo, hi = self._delay_lo, self._delay_hi
            return Verdict(True, lo if lo == hi else self._rng.uniform(lo, hi))
        return DELIVER

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values, for events and control messages."""
        return {
            "blocked": sorted(self._blocked),
            "drop_rate": self._drop_rate,
            "delay": [self._delay_lo, self._delay_hi],
        }

    def __repr__(self) -> str:
        return (
            f"FaultFilter(blocked={sorted(self._blocked)}, drop_rate={self._drop_rate:g}, "
            f"delay=({self._delay_lo:g}, {self._delay_hi:g}))"
        )
