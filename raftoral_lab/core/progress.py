"""What a leader knows of each follower's log (etcd calls this Progress).

A follower is probed one AppendEntries at a time until its log is found to match
(`PROBE`), then appends are pipelined up to `max_inflight` unacknowledged messages
(`REPLICATE`); a follower whose missing entries were compacted away gets a snapshot (`SNAPSHOT`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class ReplicationState(StrEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    match_index: int = 0
    next_index: int = 1
    state: ReplicationState = ReplicationState.PROBE
    probe_sent: bool = False
    recent_active: bool = True
    inflight: deque[int] = field(default_factory=deque)  # last index of each unacked append
    sent_commit: int = 0
    pending_snapshot: int = 0
    snapshot_elapsed: int = 0
    stalled_rounds: int = 0  # heartbeat answers while an append waits for its acknowledgement

    def become_probe(self) -> None:
        self.stalled_rounds = 0
        self.state = ReplicationState.PROBE
        self.next_index = self.match_index + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.stalled_rounds = 0
        self.state = ReplicationState.REPLICATE
        self.next_index = self.match_index + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = ReplicationState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_elapsed = 0
        self.inflight.clear()

    def acknowledge(self, match_index: int) -> bool:
        """Record an acknowledged index; True when it moved the match forward."""
        inflight = self.inflight
        while inflight and inflight[0] <= match_index:
            inflight.popleft()
        if match_index <= self.match_index:
            return False
        self.stalled_rounds = 0
        self.match_index = match_index
        self.next_index = max(self.next_index, match_index + 1)
        return True

    def reject(self, rejected_index: int, next_hint: int) -> bool:
        """A follower refused the append after `rejected_index`. False when the refusal is stale
        (a duplicate or an answer to an older probe)."""
        if self.state is ReplicationState.REPLICATE:
            if rejected_index <= self.match_index:
                return False  # an answer to an append sent before the acknowledged one
            self.become_probe()
        elif rejected_index != self.next_index - 1:
            return False
        elif rejected_index <= self.match_index:
            # The answer to our current probe denies an index the follower acknowledged (a
            # forged or corrupted acknowledgement, or a stale duplicate refusal): trust the
            # refusal, or the same probe would be re-sent and refused forever. Every step back
            # lowers next_index, so the probing ends.
            self.match_index = max(0, min(self.match_index, rejected_index - 1, next_hint - 1))
        self.next_index = max(min(rejected_index, next_hint), self.match_index + 1)
        self.probe_sent = False
        return True

    def status(self) -> PeerStatus:
        return PeerStatus(self.match_index, self.next_index, self.state, self.recent_active)


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match_index: int
    next_index: int
    state: ReplicationState
    recent_active: bool
    """The follower answered since the last quorum check (CheckQuorum's liveness signal)."""
