"""Settings of one Raft node, in ticks: the core has no clock; the driver sets a tick's length."""

from __future__ import annotations

from dataclasses import dataclass

from raftoral_lab.errors import ConfigError

_COUNTS = {
    "election_timeout": "ticks",
    "heartbeat_interval": "ticks",
    "max_entries_per_message": "entries",
    "max_inflight": "messages",
}


@dataclass(frozen=True, slots=True)
class RaftConfig:
    election_timeout: int = 10
    """A follower that hears no leader for a random time in [T, 2T) ticks starts an election."""
    heartbeat_interval: int = 1
    """Ticks between the leader's heartbeats; must be well below the election timeout."""
    pre_vote: bool = True
    """Ask whether an election could be won before raising the term (thesis 9.6)."""
    check_quorum: bool = True
    """A leader that has not heard from a quorum for an election timeout steps down; followers
    that heard from a leader recently ignore vote requests (the leader lease)."""
    max_entries_per_message: int = 4096
    """Batch size of one AppendEntries."""
    max_inflight: int = 64
    """AppendEntries sent to one follower and not yet acknowledged (the pipelining window)."""
    trace: bool = True
    """Record what the node does (role changes, votes, appends...) in `Ready.trace`."""

    def __post_init__(self) -> None:
        for name, unit in _COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(
                    f"{name} must be a whole number of {unit}, got {value!r} "
                    f"({type(value).__name__})"
                )
        for name in ("pre_vote", "check_quorum", "trace"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        if self.heartbeat_interval < 1:
            raise ConfigError(
                f"heartbeat_interval must be at least 1 tick, got {self.heartbeat_interval}"
            )
        if self.election_timeout <= self.heartbeat_interval:
            raise ConfigError(
                f"election_timeout ({self.election_timeout}) must be larger than "
                f"heartbeat_interval ({self.heartbeat_interval}); a ratio of 10 is usual"
            )
        if self.max_entries_per_message < 1 or self.max_inflight < 1:
            raise ConfigError("max_entries_per_message and max_inflight must be at least 1")
