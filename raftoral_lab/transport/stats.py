"""Counters every transport keeps, and the names of the reasons a message is dropped.

The dashboard draws message rates and drops from these, and tests count publishes with them,
so both transports fill them in the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DropReason(StrEnum):
    """Why a message did not reach its destination (a str, so it counts and prints).

    The last five are the refusals of signed traffic (see `signing`): they apply to every
    payload, Raft batches and topic traffic alike, and are counted once per payload.
    """

    PARTITION = "partition"
    """The fault filter blocks the peer (a lab partition)."""
    DROP_RATE = "drop_rate"
    """The fault filter's random drop rate chose this message."""
    QUEUE_FULL = "queue_full"
    """The outbound queue was full (broker away too long); the oldest message made room."""
    TOO_LARGE = "too_large"
    """The message alone encodes to more bytes than the payload limit."""
    DISCONNECTED = "disconnected"
    """The broker connection broke while the message was being published."""
    UNREACHABLE = "unreachable"
    """No transport with that node id is attached (memory network)."""
    CLOSED = "closed"
    """The transport was closed with the message still queued or delayed."""
    NO_HANDLER = "no_handler"
    """A message arrived before the node set `on_message`."""
    UNKNOWN_GROUP = "unknown_group"
    """A message of a Raft group the node does not host (counted by the node, which also
    emits `message_ignored`): a group removed here, or one not added yet."""
    UNSIGNED = "unsigned"
    """A payload without signature reached a transport that has a cluster secret."""
    BAD_SIGNATURE = "bad_signature"
    """The MAC does not match: forged, altered, moved to another topic, or another secret."""
    REPLAYED = "replayed"
    """A correctly signed payload whose counter was seen already or is below the window."""
    STALE = "stale"
    """The first payload from a sender is older than the clock skew allowed: a replay to a
    restarted node, or a sender whose clock is far behind."""
    NO_SECRET = "no_secret"
    """A signed payload reached a transport without a secret (set the cluster secret)."""


@dataclass(slots=True)
class TransportStats:
    """Message counts of one transport since it was created.

    `sent` and `received` count Raft messages, `batches_*` count payloads (MQTT publishes or
    memory deliveries): their ratio shows how well batching works. `published`,
    `publishes_received` and `callback_errors` count the topic traffic of `publish`/`subscribe`
    (rpc, control, events, presence): publishes handed to the broker, inbound topic messages,
    and subscription callbacks that raised. Payloads refused by the signature checks count in
    `dropped` under their reason (`unsigned`, `bad_signature`, `replayed`, `stale`,
    `no_secret`) and nowhere else (not in `batches_received` or `publishes_received`).
    """

    sent: int = 0
    received: int = 0
    batches_sent: int = 0
    batches_received: int = 0
    malformed: int = 0
    handler_errors: int = 0
    reconnects: int = 0
    publishes_dropped: int = 0
    published: int = 0
    publishes_received: int = 0
    callback_errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    sent_by_group: Counter[int] = field(default_factory=Counter)
    """Raft messages handed to the transport (past the fault filter), per Raft group."""
    entries_by_group: Counter[int] = field(default_factory=Counter)
    """Log entries those messages carried (one entry sent to four peers counts four): what
    replication costs, the number the management/execution split brings down."""
    last_malformed: str | None = None
    last_refused: str | None = None
    """Why the last payload was refused by signature checks (never contains the secret)."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain values for events and JSON (reason keys as plain strings)."""
        return {
            "sent": self.sent,
            "received": self.received,
            "batches_sent": self.batches_sent,
            "batches_received": self.batches_received,
            "malformed": self.malformed,
            "handler_errors": self.handler_errors,
            "reconnects": self.reconnects,
            "publishes_dropped": self.publishes_dropped,
            "published": self.published,
            "publishes_received": self.publishes_received,
            "callback_errors": self.callback_errors,
            "dropped": {str(k): v for k, v in self.dropped.items()},
            "sent_by_group": {str(k): v for k, v in self.sent_by_group.items()},
            "entries_by_group": {str(k): v for k, v in self.entries_by_group.items()},
            "last_malformed": self.last_malformed,
            "last_refused": self.last_refused,
        }
