"""What a node hands its driver: the work to do, in order, before calling `advance()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from raftoral_lab.core.messages import Message
from raftoral_lab.core.types import Entry, HardState, Snapshot


class Trace(NamedTuple):
    """Something the node did, for the event stream: a kind and its fields (plain values)."""

    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ready:
    """A batch of work. The driver does it in this order, then calls `advance(ready)`:

    1. persist `snapshot`, `entries` and `hard_state` (in that order; atomically if it can);
    2. send `messages` (these may also go out before step 1) and then `persisted_messages`
       (these depend on step 1 being durable: votes and acknowledgements);
    3. restore the state machine from `snapshot` if there is one, then apply
       `committed_entries` in order.
    """

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    persisted_messages: tuple[Message, ...]
    trace: tuple[Trace, ...]
