"""A Raft node that never touches a socket, a clock or the global random generator.

The driver owns all I/O. It calls `tick()` at a fixed rate, `step(message)` for every message
that arrives, `propose(data)` for new commands, and then, whenever `has_ready()` is true,
takes `ready()`, does the work it lists (persist, send, apply) and calls `advance(ready)`.
The structure follows the Raft paper (Ongaro and Ousterhout, 2014) and Ongaro's thesis for
PreVote, CheckQuorum, single-server membership changes and leadership transfer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from raftoral_lab.core.config import RaftConfig
from raftoral_lab.core.log import RaftLog
from raftoral_lab.core.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.core.progress import PeerStatus, Progress, ReplicationState
from raftoral_lab.core.ready import Ready, Trace
from raftoral_lab.core.types import (
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    PersistentState,
    Role,
    Snapshot,
    SnapshotMeta,
)
from raftoral_lab.errors import (
    ConfChangeError,
    ConfChangePending,
    NotLeader,
    ProposalDropped,
    ReadyError,
)


@dataclass(frozen=True, slots=True)
class Status:
    """A read-only picture of one node, for tests, the simulator and the dashboard."""

    id: int
    group: int
    role: Role
    term: int
    vote: int | None
    leader: int | None
    commit_index: int
    applied_index: int
    applied_term: int
    """Term of the last applied entry: a leader has applied an entry of its own term when this
    equals `term` (so everything committed before it is applied too)."""
    first_index: int
    last_index: int
    voters: frozenset[int]
    learners: frozenset[int]
    progress: dict[int, PeerStatus]
    transferee: int | None


class RawNode:
    """One member of one Raft group (several can run side by side on a machine)."""

    def __init__(
        self,
        node_id: int,
        state: PersistentState | None = None,
        config: RaftConfig | None = None,
        *,
        group: int = 0,
        applied_index: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Rebuild a node from what it persisted (nothing, for a node about to join).

        `applied_index` is how far a durable state machine already got; by default it restarts
        from the snapshot and the committed entries are handed out again.
        """
        state = state or PersistentState()
        self.id = node_id
        self.group = group
        self.config = config or RaftConfig()
        self._rng = rng or random.Random(node_id * 1_000_003 + group)
        self.term = state.hard_state.term
        self.vote = state.hard_state.vote
        self.leader: int | None = None
        self.role = Role.FOLLOWER
        self.log = RaftLog(state.snapshot, state.entries, state.hard_state.commit)
        self.conf = state.snapshot.meta.conf if state.snapshot else ConfState()
        self.progress: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._random_timeout()
        self.transferee: int | None = None
        self._transfer_elapsed = 0
        self._pending_conf_index = 0
        self._messages: list[Message] = []
        self._persisted_messages: list[Message] = []
        self._trace: list[Trace] | None = [] if self.config.trace else None
        self._pending_snapshot: Snapshot | None = None
        self._outstanding: Ready | None = None
        self._hard_state = HardState(self.term, self.vote, self.log.commit_index)
        self._replay_membership(applied_index)

    def _replay_membership(self, applied_index: int | None) -> None:
        """Membership changes apply when applied; a restarted node re-derives them from its log."""
        applied = self.log.offset if applied_index is None else applied_index
        applied = max(self.log.offset, min(applied, self.log.commit_index))
        for entry in self.log.slice(self.log.first_index, applied + 1):
            if entry.kind is EntryKind.CONF_CHANGE:
                self.conf = self.conf.apply(ConfChange.decode(entry.data))
        self.log.applied_index = applied

    # --- the driver's API --------------------------------------------------------------------

    @property
    def commit_index(self) -> int:
        return self.log.commit_index

    @property
    def applied_index(self) -> int:
        return self.log.applied_index

    @property
    def promotable(self) -> bool:
        return self.id in self.conf.voters

    def tick(self) -> None:
        """Advance the node's logical clock by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if self.promotable and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self._emit("election_timeout", term=self.term)
            self._campaign(pre_vote=self.config.pre_vote)

    def step(self, message: Message) -> None:
        """Handle one message from a peer. Never raises on a peer's input."""
        if message.group != self.group:
            self._ignore(message, f"unknown group {message.group}")
            return
        if message.dst != self.id:
            self._ignore(message, f"addressed to node {message.dst}")
            return
        flaw = _malformed(message)
        if flaw is not None:
            self._ignore(message, f"malformed: {flaw}")
            return
        if message.term > self.term:
            if not self._accept_higher_term(message):
                return
        elif message.term < self.term:
            self._answer_stale(message)
            return
        self._handlers[type(message)](self, message)

    def propose(self, data: bytes) -> int:
        """Append a command to the leader's log; returns its index (not yet committed)."""
        self._check_can_propose()
        index = self.log.last_index + 1
        self.log.append(Entry(index, self.term, data))
        return index

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a single-server membership change; one may be pending at a time."""
        self._check_can_propose("membership change")
        if self._pending_conf_index > self.log.applied_index:
            raise ConfChangePending(
                f"the membership change at index {self._pending_conf_index} is not applied yet; "
                "wait for it before proposing another"
            )
        self.conf.apply(change)  # raises ConfChangeError when it cannot apply
        index = self.log.last_index + 1
        self.log.append(Entry(index, self.term, change.encode(), EntryKind.CONF_CHANGE))
        self._pending_conf_index = index
        return index

    def transfer_leader(self, to: int) -> None:
        """Hand leadership to voter `to` once its log has caught up (thesis 3.10)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.id, self.leader, "leadership transfer")
        if to not in self.conf.voters:
            raise ConfChangeError(
                f"node {to} is not a voter of group {self.group} and cannot lead; transfer to one "
                f"of the voters {sorted(self.conf.voters)} (promote a learner first)"
            )
        if to == self.id or to == self.transferee:
            return
        self.transferee = to
        self._transfer_elapsed = 0
        self._emit("leader_transfer_started", to=to)
        if self.progress[to].match_index == self.log.last_index:
            self._send(TimeoutNow(self.group, self.id, to, self.term))

    def compact(self, data: bytes) -> Snapshot:
        """Take a snapshot of the state machine at `applied_index` and drop the log before it."""
        if self._outstanding is not None:
            raise ReadyError("advance() the outstanding Ready before compacting")
        index = self.log.applied_index
        if self.log.snapshot is not None and index == self.log.offset:
            return self.log.snapshot
        term = self.log.term(index)
        assert term is not None  # applied entries are never compacted past
        snapshot = Snapshot(SnapshotMeta(index, term, self.conf), data)
        self.log.compact(snapshot)
        self._emit("snapshot_taken", index=index, term=term)
        return snapshot

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        self._flush()
        log = self.log
        return bool(
            self._messages
            or self._persisted_messages
            or self._trace
            or self._pending_snapshot is not None
            or log.stable_index < log.last_index
            or log.applied_index < log.commit_index
            or self._hard_state != HardState(self.term, self.vote, log.commit_index)
        )

    def ready(self) -> Ready:
        """Collect the work the driver must do now. Call `advance` with it when done."""
        if self._outstanding is not None:
            raise ReadyError("ready() called again before advance() of the previous Ready")
        self._flush()
        log = self.log
        hard_state = HardState(self.term, self.vote, log.commit_index)
        snapshot = self._pending_snapshot
        first_to_apply = snapshot.meta.index + 1 if snapshot else log.applied_index + 1
        entries = log.unstable()
        if entries:
            self._trace_appended(entries)
        rd = Ready(
            hard_state=hard_state if hard_state != self._hard_state else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=log.slice(first_to_apply, log.commit_index + 1),
            messages=tuple(self._messages),
            persisted_messages=tuple(self._persisted_messages),
            trace=tuple(self._trace) if self._trace else (),
        )
        self._messages.clear()
        self._persisted_messages.clear()
        if self._trace:
            self._trace.clear()
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver did everything `rd` listed: entries durable, committed entries applied."""
        if rd is not self._outstanding:
            raise ReadyError("advance() takes the Ready returned by the last ready(), once")
        self._outstanding = None
        if rd.hard_state is not None:
            self._hard_state = rd.hard_state
        log = self.log
        if rd.snapshot is not None:
            self._pending_snapshot = None
            log.applied_index = max(log.applied_index, rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                self._maybe_commit()
        if rd.committed_entries:
            for entry in rd.committed_entries:
                if entry.kind is EntryKind.CONF_CHANGE:
                    self._apply_conf_change(entry.data)
            log.applied_index = rd.committed_entries[-1].index
            self._emit("entries_applied", applied_index=log.applied_index)

    def status(self) -> Status:
        return Status(
            id=self.id,
            group=self.group,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader=self.leader,
            commit_index=self.log.commit_index,
            applied_index=self.log.applied_index,
            applied_term=self.log.term(self.log.applied_index) or 0,
            first_index=self.log.first_index,
            last_index=self.log.last_index,
            voters=self.conf.voters,
            learners=self.conf.learners,
            progress={peer: pr.status() for peer, pr in self.progress.items()},
            transferee=self.transferee,
        )

    # --- roles -------------------------------------------------------------------------------

    def _become_follower(self, term: int, leader: int | None) -> None:
        changed = self.role is not Role.FOLLOWER or term != self.term or leader != self.leader
        if term != self.term:
            self.term = term
            self.vote = None
        self.role = Role.FOLLOWER
        self.leader = leader
        self._reset_timers()
        self.progress.clear()
        self.transferee = None
        if changed:
            self._emit("role_changed", role=Role.FOLLOWER.value, term=term, leader=leader)

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader = self.id
        self._reset_timers()
        last = self.log.last_index
        self.progress = {
            peer: Progress(next_index=last + 1) for peer in self.conf.members if peer != self.id
        }
        self._pending_conf_index = last + 1  # no membership change before this term's first entry
        self._emit("role_changed", role=Role.LEADER.value, term=self.term, leader=self.id)
        # An empty entry of the new term lets earlier entries commit (paper 5.4.2, Figure 8).
        self.log.append(Entry(last + 1, self.term))

    def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.vote = self.id
            term = self.term
        self.leader = None
        self._reset_timers()  # a fresh random timeout, so split votes do not repeat in lockstep
        self._votes = {self.id: True}
        self._emit("role_changed", role=self.role.value, term=self.term, leader=None)
        self._emit("election_started", term=term, pre_vote=pre_vote)
        if self._tally() is True:  # a single voter wins at once
            self._won_election(pre_vote)
            return
        last_index, last_term = self.log.last_index, self.log.last_term
        send = self._send if pre_vote else self._send_after_persist  # a real vote is durable first
        for voter in sorted(self.conf.voters - {self.id}):
            send(
                RequestVote(
                    self.group, self.id, voter, term, last_index, last_term, pre_vote, transfer
                )
            )

    def _won_election(self, pre_vote: bool) -> None:
        if pre_vote:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()

    def _tally(self) -> bool | None:
        """True when a quorum granted, False when a quorum refused, None while undecided."""
        voters = self.conf.voters
        granted = sum(1 for voter, ok in self._votes.items() if ok and voter in voters)
        refused = sum(1 for voter, ok in self._votes.items() if not ok and voter in voters)
        quorum = len(voters) // 2 + 1
        if granted >= quorum:
            return True
        if refused > len(voters) - quorum:
            return False
        return None

    def _reset_timers(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._random_timeout()

    def _random_timeout(self) -> int:
        timeout = self.config.election_timeout
        return timeout + self._rng.randrange(timeout)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        timeout = self.config.election_timeout
        if self._election_elapsed >= timeout:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                self._emit("check_quorum_failed", term=self.term)
                self._become_follower(self.term, None)
                return
            if self.transferee is not None:
                self._emit("leader_transfer_aborted", to=self.transferee, reason="timed out")
                self.transferee = None
        for pr in self.progress.values():
            if pr.state is ReplicationState.SNAPSHOT:
                pr.snapshot_elapsed += 1
                if pr.snapshot_elapsed > timeout:  # the snapshot or its answer was lost
                    pr.become_probe()
        if self._heartbeat_elapsed >= self.config.heartbeat_interval:
            self._heartbeat_elapsed = 0
            for peer, pr in self.progress.items():
                commit = min(pr.match_index, self.log.commit_index)
                self._send(Heartbeat(self.group, self.id, peer, self.term, commit))

    def _quorum_active(self) -> bool:
        active = sum(
            1
            for voter in self.conf.voters
            if voter == self.id or (voter in self.progress and self.progress[voter].recent_active)
        )
        for pr in self.progress.values():
            pr.recent_active = False
        return active >= len(self.conf.voters) // 2 + 1

    # --- term rules --------------------------------------------------------------------------

    def _in_lease(self) -> bool:
        """A follower that heard from its leader within the election timeout keeps it."""
        return (
            self.config.check_quorum
            and self.leader is not None
            and self._election_elapsed < self.config.election_timeout
        )

    def _accept_higher_term(self, message: Message) -> bool:
        """Message from a later term. False when it must be dropped (the leader lease)."""
        if isinstance(message, RequestVote):
            if not message.transfer and self._in_lease():
                self._emit(
                    "vote_cast",
                    candidate=message.src,
                    term=message.term,
                    granted=False,
                    pre_vote=message.pre_vote,
                    reason=f"leader lease: heard from node {self.leader} recently",
                )
                return False
            if message.pre_vote:
                return True  # a pre-vote never changes our term
        if isinstance(message, VoteResponse) and message.pre_vote and message.granted:
            return True  # granted pre-votes carry the term the candidate asked for
        leader = (
            message.src
            if isinstance(message, AppendEntries | Heartbeat | InstallSnapshot)
            else None
        )
        self._become_follower(message.term, leader)
        return True

    def _answer_stale(self, message: Message) -> None:
        """Tell a stale sender about the newer term, so a deposed leader steps down."""
        stale = f"stale term {message.term} < {self.term}"
        if isinstance(message, AppendEntries | Heartbeat):
            self._send(HeartbeatResponse(self.group, self.id, message.src, self.term))
        elif isinstance(message, RequestVote) and message.pre_vote:
            self._send(VoteResponse(self.group, self.id, message.src, self.term, False, True))
        else:
            self._ignore(message, stale)
            return
        self._ignore(message, f"{stale}; answered with term {self.term}")

    # --- message handlers --------------------------------------------------------------------

    def _on_request_vote(self, m: RequestVote) -> None:
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.leader is None)
            or (m.pre_vote and m.term > self.term)
        )
        up_to_date = self.log.is_up_to_date(m.last_log_index, m.last_log_term)
        granted = can_vote and up_to_date
        if granted:
            reason = "granted"
            if not m.pre_vote:
                self.vote = m.src
                self._election_elapsed = 0
        elif not can_vote:
            reason = f"already voted for {self.vote}" if self.vote is not None else "has a leader"
        else:
            reason = "candidate log not up to date"
        self._emit(
            "vote_cast",
            candidate=m.src,
            term=m.term,
            granted=granted,
            pre_vote=m.pre_vote,
            reason=reason,
        )
        term = m.term if granted else self.term
        self._send_after_persist(
            VoteResponse(self.group, self.id, m.src, term, granted, m.pre_vote)
        )

    def _on_vote_response(self, m: VoteResponse) -> None:
        expected = Role.PRE_CANDIDATE if m.pre_vote else Role.CANDIDATE
        if self.role is not expected or m.src in self._votes:
            return
        self._votes[m.src] = m.granted
        granted = sum(1 for ok in self._votes.values() if ok)
        self._emit(
            "vote_received",
            voter=m.src,
            term=m.term,
            granted=m.granted,
            pre_vote=m.pre_vote,
            votes=granted,
            needed=len(self.conf.voters) // 2 + 1,
        )
        outcome = self._tally()
        if outcome is True:
            self._won_election(m.pre_vote)
        elif outcome is False:
            self._become_follower(self.term, None)

    def _hear_from_leader(self, leader: int) -> None:
        if self.role is not Role.FOLLOWER or self.leader != leader:
            self._become_follower(self.term, leader)
        self._election_elapsed = 0

    def _on_append_entries(self, m: AppendEntries) -> None:
        self._hear_from_leader(m.src)
        log = self.log
        if m.prev_log_index < log.commit_index:
            reply = AppendResponse(self.group, self.id, m.src, self.term, True, log.commit_index)
            self._send_after_persist(reply)
            return
        result = log.try_append(m.prev_log_index, m.prev_log_term, m.entries)
        if result is None:
            hint = log.find_conflict_by_term(m.prev_log_index, m.prev_log_term)
            hint_term = log.term(hint) or 0
            self._send_after_persist(
                AppendResponse(
                    self.group, self.id, m.src, self.term, False, m.prev_log_index, hint, hint_term
                )
            )
            return
        last_new, overwritten = result
        if overwritten is not None:
            self._emit(
                "entries_truncated", from_index=overwritten, to_index=overwritten + len(m.entries)
            )
        self._commit_to(min(m.leader_commit, last_new))
        self._send_after_persist(
            AppendResponse(self.group, self.id, m.src, self.term, True, last_new)
        )

    def _on_heartbeat(self, m: Heartbeat) -> None:
        self._hear_from_leader(m.src)
        self._commit_to(min(m.commit, self.log.last_index))
        self._send(HeartbeatResponse(self.group, self.id, m.src, self.term))

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        self._hear_from_leader(m.src)
        meta = m.snapshot.meta
        log = self.log
        if meta.index <= log.commit_index:
            match = log.commit_index
        elif log.term(meta.index) == meta.term:
            match = meta.index  # we have the entries already; they are just committed now
            self._commit_to(meta.index)
        else:
            log.restore(m.snapshot)
            self.conf = meta.conf
            self._pending_snapshot = m.snapshot
            match = meta.index
            self._emit("snapshot_installed", index=meta.index, term=meta.term)
        self._send_after_persist(AppendResponse(self.group, self.id, m.src, self.term, True, match))

    def _on_timeout_now(self, m: TimeoutNow) -> None:
        if self.promotable and self.role is not Role.LEADER:
            self._emit("election_timeout", term=self.term)
            self._campaign(pre_vote=False, transfer=True)

    def _on_append_response(self, m: AppendResponse) -> None:
        pr = self.progress.get(m.src) if self.role is Role.LEADER else None
        if pr is None:
            return
        if m.match_index > self.log.last_index:
            # A follower of this term only names indexes of our log (our leader log only
            # grows); believing this one would loop snapshots or re-probes for ever.
            self._ignore(
                m, f"names index {m.match_index} beyond our last index {self.log.last_index}"
            )
            return
        pr.recent_active = True
        if not m.success:
            next_hint = self.log.find_conflict_by_term(m.hint_index, m.hint_term) + 1
            pr.reject(m.match_index, next_hint)
            return
        moved = pr.acknowledge(m.match_index)
        if pr.state is ReplicationState.PROBE or (
            pr.state is ReplicationState.SNAPSHOT and pr.match_index >= pr.pending_snapshot
        ):
            pr.become_replicate()  # the logs match: pipeline from here on
        if not moved:
            return
        self._maybe_commit()
        if m.src == self.transferee and pr.match_index == self.log.last_index:
            self._send(TimeoutNow(self.group, self.id, m.src, self.term))

    def _on_heartbeat_response(self, m: HeartbeatResponse) -> None:
        pr = self.progress.get(m.src) if self.role is Role.LEADER else None
        if pr is None:
            return
        pr.recent_active = True
        if pr.match_index >= self.log.last_index:
            return
        if pr.state is not ReplicationState.REPLICATE:
            pr.probe_sent = False  # the follower is alive: probe again
        elif pr.inflight:
            # Two heartbeat round trips completed while an append stayed unacknowledged: it was
            # lost. A single overtaking heartbeat is only a slow link, so nothing is resent.
            pr.stalled_rounds += 1
            if pr.stalled_rounds >= 2:
                pr.become_probe()

    _handlers: dict[type, Callable[[RawNode, Any], None]] = {
        RequestVote: _on_request_vote,
        VoteResponse: _on_vote_response,
        AppendEntries: _on_append_entries,
        AppendResponse: _on_append_response,
        Heartbeat: _on_heartbeat,
        HeartbeatResponse: _on_heartbeat_response,
        InstallSnapshot: _on_install_snapshot,
        TimeoutNow: _on_timeout_now,
    }

    # --- replication -------------------------------------------------------------------------

    def _commit_to(self, index: int) -> None:
        if index > self.log.commit_index:
            self.log.commit_index = index
            self._emit("commit_advanced", commit_index=index)

    def _maybe_commit(self) -> None:
        """Commit the highest index a quorum holds, if it is of the current term (Figure 8)."""
        log = self.log
        matches = sorted(
            (log.stable_index if voter == self.id else self.progress[voter].match_index)
            for voter in self.conf.voters
            if voter == self.id or voter in self.progress
        )
        if len(matches) < len(self.conf.voters):
            matches = [0] * (len(self.conf.voters) - len(matches)) + matches
        quorum_index = matches[len(matches) - (len(matches) // 2 + 1)]
        if quorum_index > log.commit_index and log.term(quorum_index) == self.term:
            self._commit_to(quorum_index)

    def _flush(self) -> None:
        """Send each follower what it lacks: the batching point of proposals (see `ready`)."""
        if self.role is not Role.LEADER:
            return
        log = self.log
        for peer, pr in self.progress.items():
            state = pr.state
            if state is ReplicationState.SNAPSHOT or (
                state is ReplicationState.PROBE and pr.probe_sent
            ):
                continue
            while True:
                if (
                    state is ReplicationState.REPLICATE
                    and len(pr.inflight) >= self.config.max_inflight
                ):
                    break
                nothing_new = pr.next_index > log.last_index and pr.sent_commit >= log.commit_index
                # A follower in doubt is probed even with nothing new to send: its last probe may
                # have been lost (a joiner is often not listening yet when the first one goes).
                if nothing_new and not (
                    state is ReplicationState.PROBE and pr.match_index < log.last_index
                ):
                    break
                if not self._send_append(peer, pr):
                    break
                if state is ReplicationState.PROBE or pr.next_index > log.last_index:
                    break

    def _send_append(self, peer: int, pr: Progress) -> bool:
        log = self.log
        prev_index = pr.next_index - 1
        prev_term = log.term(prev_index)
        if prev_term is None:
            return self._send_snapshot(peer, pr)
        hi = min(log.last_index + 1, pr.next_index + self.config.max_entries_per_message)
        entries = log.slice(pr.next_index, hi)
        self._send(
            AppendEntries(
                self.group,
                self.id,
                peer,
                self.term,
                prev_index,
                prev_term,
                entries,
                log.commit_index,
            )
        )
        pr.sent_commit = log.commit_index
        if pr.state is ReplicationState.REPLICATE:
            pr.next_index = hi
            pr.inflight.append(hi - 1)
        else:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, peer: int, pr: Progress) -> bool:
        snapshot = self.log.snapshot
        if snapshot is None:
            return False
        pr.become_snapshot(snapshot.meta.index)
        self._send(InstallSnapshot(self.group, self.id, peer, self.term, snapshot))
        self._emit("snapshot_sent", to=peer, index=snapshot.meta.index)
        return False

    # --- membership --------------------------------------------------------------------------

    def _apply_conf_change(self, data: bytes) -> None:
        try:
            change = ConfChange.decode(data)
            self.conf = self.conf.apply(change)
        except ConfChangeError:
            return  # validated on proposal; a duplicate in a replayed log changes nothing
        self._emit(
            "membership_changed",
            op=change.op.value,
            target=change.node,
            voters=sorted(self.conf.voters),
            learners=sorted(self.conf.learners),
        )
        if self.role is not Role.LEADER:
            return
        if change.node == self.id and change.op is ConfChangeOp.REMOVE:
            self._hand_over_after_removal()
            return
        if change.op is ConfChangeOp.REMOVE:
            self.progress.pop(change.node, None)
            if change.node == self.transferee:
                self.transferee = None
        elif change.node != self.id and change.node not in self.progress:
            self.progress[change.node] = Progress(next_index=self.log.last_index + 1)
        self._maybe_commit()

    def _hand_over_after_removal(self) -> None:
        """A removed leader lets the most caught-up voter take over at once."""
        candidates = [
            (pr.match_index, peer) for peer, pr in self.progress.items() if peer in self.conf.voters
        ]
        if candidates:
            _, successor = max(candidates)
            self._send(TimeoutNow(self.group, self.id, successor, self.term))
        self._become_follower(self.term, None)

    # --- plumbing ----------------------------------------------------------------------------

    def _check_can_propose(self, what: str = "proposal") -> None:
        if self.role is not Role.LEADER:
            self._emit("proposal_refused", reason="not leader", leader=self.leader)
            raise NotLeader(self.id, self.leader, what)
        if self.transferee is not None:
            self._emit("proposal_refused", reason="leadership transfer", leader=self.leader)
            raise ProposalDropped(
                f"node {self.id} is handing leadership to node {self.transferee}; retry shortly"
            )

    def _send(self, message: Message) -> None:
        self._messages.append(message)

    def _send_after_persist(self, message: Message) -> None:
        self._persisted_messages.append(message)

    def _ignore(self, message: Message, reason: str) -> None:
        self._emit("message_ignored", message=message.kind, src=message.src, reason=reason)

    def _trace_appended(self, entries: Sequence[Entry]) -> None:
        """One `entries_appended` per run of equal term (terms only grow along a log, so one
        comparison settles the usual single-term batch)."""
        if self._trace is None:
            return
        first, last = entries[0], entries[-1]
        if first.term != last.term:
            for entry in entries:
                if entry.term != first.term:
                    self._emit(
                        "entries_appended",
                        first_index=first.index,
                        last_index=entry.index - 1,
                        term=first.term,
                    )
                    first = entry
        self._emit(
            "entries_appended", first_index=first.index, last_index=last.index, term=last.term
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._trace is not None:
            self._trace.append(Trace(kind, fields))


def _malformed(m: Message) -> str | None:
    """What makes a message impossible for a correct peer to send, or None.

    The codec checks types; this checks the shape Raft relies on, so a forged or corrupted
    message is dropped instead of bending the log.
    """
    if m.term < 0:
        return f"negative term {m.term}"
    if isinstance(m, AppendEntries):
        if m.prev_log_index < 0 or not 0 <= m.prev_log_term <= m.term or m.leader_commit < 0:
            return "negative index or previous term above the message term"
        expected = m.prev_log_index + 1
        last_term = m.prev_log_term
        for entry in m.entries:
            if entry.index != expected or not last_term <= entry.term <= m.term:
                return (
                    f"entry {entry.index}/{entry.term} does not follow {expected - 1}/{last_term}"
                )
            if entry.kind is EntryKind.CONF_CHANGE and not _is_conf_change(entry.data):
                return f"entry {entry.index} is not a valid membership change"
            expected += 1
            last_term = entry.term
    elif isinstance(m, InstallSnapshot):
        meta = m.snapshot.meta
        if meta.index < 0 or not 0 <= meta.term <= m.term or not meta.conf.voters:
            return "snapshot with a bad index, a term above the message term, or no voters"
    elif isinstance(m, RequestVote):
        if m.last_log_index < 0 or not 0 <= m.last_log_term <= m.term:
            return "vote request with a bad last log position"
    elif isinstance(m, AppendResponse):
        if m.match_index < 0 or m.hint_index < 0 or m.hint_term < 0:
            return "negative index in an append response"
    elif isinstance(m, Heartbeat) and m.commit < 0:
        return "negative commit index"
    return None


def _is_conf_change(data: bytes) -> bool:
    try:
        ConfChange.decode(data)
    except ConfChangeError:
        return False
    return True
