"""The settings of a chaos run, checked where they enter (ConfigError saying what to change)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from raftoral_lab.chaos.schedule import check_cluster_size
from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.mqtt import parse_broker_url
from raftoral_lab.transport.topics import validate_cluster
from raftoral_lab.workflow.state_machine import DEFAULT_RETAIN_FINISHED

OWN_BROKER = "mosquitto"
"""`--broker mosquitto`: start our own Mosquitto (the only broker a run can restart)."""

MAX_WORKFLOWS = DEFAULT_RETAIN_FINISHED - 100
"""Nodes remember this many finished workflows (then forget the oldest, and a retried start of
a forgotten id would run again); a run starts fewer, so every end stays checkable."""

MAX_DURATION = 24 * 3600.0


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{what} must be a positive number, got {value!r}")
    return number


def _count(value: object, what: str, *, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{what} must be a whole number of at least {least}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    duration: float = 60.0
    """Seconds of workload and faults (recovery and checks come after)."""
    nodes: int = 3
    seed: int = 0
    rate: float = 5.0
    """Workflows started per second."""
    broker: str = OWN_BROKER
    data_dir: Path | None = None
    """Where the nodes keep their SQLite files and logs (default: a new temporary directory,
    removed after a passing run)."""
    in_flight: int = 40
    """At most this many workflows started and not yet ended at once."""
    tick: float = 0.05
    election_ticks: int = 10
    compact_every: int | None = 500
    settle_timeout: float = 120.0
    """Seconds after the faults for every workflow to end and the nodes to converge."""
    cluster: str | None = None
    """Topic root of the run's cluster (default: a fresh name, so runs never mix)."""

    def __post_init__(self) -> None:
        duration = _number(self.duration, "the duration (--duration, seconds)")
        if duration > MAX_DURATION:
            raise ConfigError(f"the duration is at most {MAX_DURATION:g} s, got {duration:g}")
        check_cluster_size(self.nodes)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"the seed must be a whole number, got {self.seed!r}")
        rate = _number(self.rate, "the workload rate (--rate, workflows per second)")
        if rate * duration > MAX_WORKFLOWS:
            raise ConfigError(
                f"{rate:g} workflows/s for {duration:g} s is {rate * duration:.0f} workflows; a "
                f"run starts at most {MAX_WORKFLOWS} (nodes forget older finished workflows): "
                "lower --rate or --duration"
            )
        if not isinstance(self.broker, str) or not self.broker:
            raise ConfigError(
                f"--broker takes {OWN_BROKER!r} or a URL like mqtt://127.0.0.1:1883, "
                f"got {self.broker!r}"
            )
        if self.broker != OWN_BROKER:
            parse_broker_url(self.broker)  # ConfigError saying what is wrong with it
        if self.data_dir is not None:
            check_data_dir(Path(self.data_dir))
        _count(self.in_flight, "in_flight")
        tick = _number(self.tick, "the tick (seconds)")
        if tick > 5:
            raise ConfigError(f"the tick is in seconds and at most 5, got {tick:g}")
        _count(self.election_ticks, "election_ticks", least=2)
        if self.compact_every is not None:
            _count(self.compact_every, "compact_every")
        _number(self.settle_timeout, "settle_timeout")
        if self.cluster is not None:
            validate_cluster(self.cluster)

    @property
    def own_broker(self) -> bool:
        return self.broker == OWN_BROKER


def check_data_dir(path: Path) -> None:
    """A run's data directory must be new or empty: a node directory left by another run
    would make its node restart instead of founding this run's cluster."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--data-dir {path} is a file; give a new or empty directory")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(
            f"--data-dir {path} is not empty (a previous run?); give a new or empty directory"
        )
