"""One Raft group on one node: the Ready loop in the order the persistence contract needs."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Sequence
from typing import Any

from raftoral_lab.core import (
    AppendEntries,
    ConfChange,
    Message,
    RaftConfig,
    RawNode,
    Ready,
    Storage,
)
from raftoral_lab.errors import ProposalDropped, ProposalTimeout
from raftoral_lab.node.state_machine import StateMachine
from raftoral_lab.transport.base import Transport

EventSink = Callable[[int, str, dict[str, Any]], None]
"""`sink(group, kind, fields)`: the node turns it into a typed event."""


class Group:
    def __init__(
        self,
        node_id: int,
        group: int,
        storage: Storage,
        state_machine: StateMachine,
        transport: Transport,
        config: RaftConfig,
        emit: EventSink,
        *,
        compact_every: int | None = None,
    ) -> None:
        self.id = group
        self.storage = storage
        self.state_machine = state_machine
        self.transport = transport
        self.emit = emit
        self.compact_every = compact_every
        state = storage.load()
        # A durable state machine says how far it got, so a restart re-applies nothing twice.
        # It is restored from the snapshot only when it is behind it: restoring one that is
        # ahead (every bootstrapped node has a snapshot at index 1) would wipe what it holds.
        applied: int | None = getattr(state_machine, "applied_index", None)
        if state.snapshot is not None and (applied is None or applied < state.snapshot.meta.index):
            state_machine.restore(state.snapshot.data)
            applied = None  # the core starts applying after the snapshot
        self.raft = RawNode(node_id, state, config, group=group, applied_index=applied)
        self._waiting: dict[int, tuple[int, asyncio.Future[object]]] = {}  # index -> (term, fut)
        self._deadlines: list[tuple[float, int, int, float, asyncio.Future[object]]] = []
        """A heap of (deadline, sequence, index, timeout, future): `expire` fails what is
        overdue, one sweep per tick, instead of a timer per proposal (which would cost more
        than the proposal)."""
        self._proposed = 0
        self.report_messages = False
        """Emit `message_sent` for every Raft message (the dashboard's link rates)."""
        self.max_voters: int | None = None
        """The node's auto-promotion stops at this many voters (None: promote every learner)."""
        self._held: dict[int, AppendEntries] = {}
        """Appends with no entries (a new commit index, a probe), one per follower, held until
        `release`: a proposal made in the meantime sends an append that carries the same news."""

    def propose(self, data: bytes, *, timeout: float | None = None) -> asyncio.Future[object]:
        """Propose on this (leader) node; the future resolves with the state machine's answer,
        or fails with ProposalTimeout once `timeout` seconds have passed (see `expire`)."""
        index = self.raft.propose(data)
        future = self._wait_for(index)
        if timeout is not None:
            self._proposed += 1
            entry = (time.monotonic() + timeout, self._proposed, index, timeout, future)
            heapq.heappush(self._deadlines, entry)
        return future

    def expire(self, now: float) -> None:
        """Fail the proposals whose deadline (time.monotonic) is past; the node's ticker calls
        it once per tick."""
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, index, timeout, future = heapq.heappop(heap)
            if future.done():
                continue
            waiting = self._waiting.get(index)
            if waiting is not None and waiting[1] is future:
                del self._waiting[index]
            future.set_exception(
                ProposalTimeout(
                    f"node {self.raft.id}: proposal in group {self.id} not committed within "
                    f"{timeout:g} s (index {index}); it may still commit later"
                )
            )

    def propose_conf_change(self, change: ConfChange) -> asyncio.Future[object]:
        """Propose a membership change; the future resolves once it is applied here."""
        return self._wait_for(self.raft.propose_conf_change(change))

    def _wait_for(self, index: int) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[index] = (self.raft.term, future)
        return future

    def process_ready(self) -> bool:
        """Do one Ready if there is one: persist, send, apply, advance. True if it did."""
        raft = self.raft
        if not raft.has_ready():
            return False
        rd: Ready = raft.ready()
        self.storage.persist(rd)
        if rd.messages or rd.persisted_messages:
            self._send(rd.messages + rd.persisted_messages)
        if rd.snapshot is not None:
            self.state_machine.restore(rd.snapshot.data)
            self._fail_waiting_up_to(rd.snapshot.meta.index)
        for entry in rd.committed_entries:
            result = self.state_machine.apply(entry)
            waiting = self._waiting.pop(entry.index, None)
            if waiting is not None and not waiting[1].done():
                term, future = waiting
                if term == entry.term:
                    future.set_result(result)
                else:
                    future.set_exception(
                        ProposalDropped(
                            f"the entry proposed at index {entry.index} was replaced by a new "
                            "leader's; propose again"
                        )
                    )
        raft.advance(rd)
        for trace in rd.trace:
            self.emit(self.id, trace.kind, trace.fields)
        every = self.compact_every
        if every is not None and raft.applied_index - raft.log.offset >= every:
            self.storage.compact(raft.compact(self.state_machine.snapshot()))
        return True

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def release(self) -> None:
        """Send the held appends that no later message made redundant."""
        if self._held:
            held = list(self._held.values())
            self._held.clear()
            self._hand_over(held)

    def _send(self, outgoing: Sequence[Message]) -> None:
        """Hand `outgoing` to the transport, holding back appends with no entries (see
        `_held`): after a commit the leader would tell each follower the new commit index in a
        message of its own, and each follower would answer it, while the caller that the commit
        answered usually proposes again at once."""
        held = self._held
        now: list[Message] = []
        for message in outgoing:
            previous = held.pop(message.dst, None)
            if previous is not None and not _supersedes(message, previous):
                now.append(previous)
            if isinstance(message, AppendEntries) and not message.entries:
                held[message.dst] = message
            else:
                now.append(message)
        if now:
            self._hand_over(now)

    def _hand_over(self, outgoing: Sequence[Message]) -> None:
        self.transport.send(outgoing)
        if self.report_messages:
            for msg in outgoing:
                size = len(getattr(msg, "entries", ())) or 1
                fields = {"message": msg.kind, "src": msg.src, "dst": msg.dst, "size": size}
                self.emit(self.id, "message_sent", fields)

    def _fail_waiting_up_to(self, index: int) -> None:
        """Proposals covered by a snapshot from another leader were not ours to answer."""
        for waiting_index in [i for i in self._waiting if i <= index]:
            _, future = self._waiting.pop(waiting_index)
            if not future.done():
                future.set_exception(
                    ProposalDropped(f"index {waiting_index} was settled by a snapshot; check state")
                )

    def fail_all(self, error: BaseException) -> None:
        for _, future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()


def _supersedes(message: Message, held: AppendEntries) -> bool:
    """Whether `message` tells the follower everything `held` would: an append of the same term
    from the same place in the log, with a commit index at least as new."""
    return (
        isinstance(message, AppendEntries)
        and message.term == held.term
        and message.prev_log_index == held.prev_log_index
        and message.prev_log_term == held.prev_log_term
        and message.leader_commit >= held.leader_commit
    )
