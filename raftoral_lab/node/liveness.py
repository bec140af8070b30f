"""Which peers a leader has heard from lately: the liveness the upper layers act on.

A leader's progress marks a peer `recent_active` when it answers; sampled every tick, that
gives the last time each peer was heard. A peer silent for two election timeouts counts as
gone: long enough that a slow heartbeat round is not a death, short enough for a lesson.
Workflow ownership (who may own a run) and the management group (who is placed in a
cluster) both decide with this one rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftoral_lab.node.node import Node


class Liveness:
    def __init__(self, node: Node, group: int) -> None:
        self.node = node
        self.group = group
        self._last_seen: dict[int, float] = {}

    @property
    def grace(self) -> float:
        """Seconds of silence after which a peer counts as gone (follows the tick dial)."""
        return 2 * self.node.config.election_timeout * self.node.tick_seconds

    def sample(self, now: float) -> None:
        """Note the peers that answered this leader since the last sample."""
        for peer, progress in self.node.group(self.group).raft.progress.items():
            if progress.recent_active:
                self._last_seen[peer] = now

    def alive(self, peer: int, now: float) -> bool:
        if peer == self.node.id:
            return True
        seen = self._last_seen.get(peer)
        return seen is not None and now - seen <= self.grace
