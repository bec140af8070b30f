"""A RawNode fed arbitrary (well-typed) messages never raises and never breaks its own log.

The node under test is a follower, a compacted follower, a pre-candidate, a candidate, a
leader or a compacted leader of a small simulated cluster, taken out of the simulation and
driven by hand: Hypothesis interleaves `step(message)` with ticks, proposals and
ready/advance cycles. Messages are built with `st.builds` over the 8 message classes, with
terms and indexes drawn around the node's own, random groups, senders, receivers, entries and
snapshots. After every action:

- nothing raised;
- commit_index <= last_index, and the log's entries are numbered by their position;
- commit_index and term never go down;
- a leader's match_index <= last_index and next_index <= last_index + 1 for every peer;
- an entry once committed is never changed while it is still in the log, and committed entries
  are handed out for applying in index order, each once;
- a message of another group changes nothing and shows up as a `message_ignored` trace;
- a message a correct peer could send is never dropped as malformed.

Two more tests send what no correct peer sends (entries numbered anywhere, membership entries
with garbage payloads): the node must still never raise or bend its log.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from raftoral_lab.core import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RawNode,
    RequestVote,
    Role,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.errors import RaftError
from raftoral_lab.sim import Simulation

SIM_SEED = 3
NODES = (1, 2, 3)
OTHER_GROUPS = (1, 2, 9)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,  # shrink one failure, quickly, rather than every variant
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow "explain"
)

STATES = (
    "follower",
    "compacted_follower",
    "pre_candidate",
    "candidate",
    "leader",
    "compacted_leader",
)


# --- the node under test ----------------------------------------------------------------------


def node_in_state(state: str) -> RawNode:
    """A node of a 3-node cluster (seed SIM_SEED) in `state`, detached from its simulation."""
    sim = Simulation(nodes=len(NODES), seed=SIM_SEED)
    assert sim.run_until(lambda s: s.leader() is not None, max_ticks=1000), f"seed {SIM_SEED}"
    for i in range(6):
        assert sim.propose(f"c{i}".encode()) is not None
    sim.run(3)
    leader = sim.leader()
    assert leader is not None, f"seed {SIM_SEED}"
    follower = next(i for i in NODES if i != leader)
    if state.startswith("compacted"):
        sim.compact()
    if "leader" in state:
        raft = sim.node(leader).raft
        assert raft is not None
        raft.propose(b"uncommitted-1")
        raft.propose(b"uncommitted-2")
        return raft
    raft = sim.node(follower).raft
    assert raft is not None
    if state == "pre_candidate":
        for _ in range(2 * raft.config.election_timeout):
            raft.tick()
        assert raft.role is Role.PRE_CANDIDATE, raft.role
    elif state == "candidate":
        raft.step(TimeoutNow(raft.group, leader, follower, raft.term))
        assert raft.role is Role.CANDIDATE, raft.role
    return raft


# --- strategies -----------------------------------------------------------------------------


def mostly(value: int, others: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """`value` about four times in five, else a draw from `others`."""
    return st.one_of(st.sampled_from((value,) * 4), others)


@dataclass(frozen=True)
class Around:
    """Where the drawn numbers are centred: the node's term and log (hashable, so the
    strategies built from it are cached: building a strategy costs more than drawing it)."""

    term: int
    last_index: int
    commit_index: int
    log_terms: tuple[int | None, ...]  # the term at each index 0 .. last_index + 3

    @classmethod
    def of(cls, raft: RawNode) -> Around:
        log = raft.log
        terms = tuple(log.term(i) for i in range(log.last_index + 4))
        return cls(raft.term, log.last_index, raft.commit_index, terms)

    def terms(self) -> st.SearchStrategy[int]:
        """Mostly the node's term or the next one, else anything near it."""
        near = st.integers(max(0, self.term - 2), self.term + 2)
        return st.one_of(st.sampled_from((self.term, self.term + 1)), near)

    def indexes(self) -> st.SearchStrategy[int]:
        """Mostly the log's edges (last, commit), else anything up to just past the end."""
        edges = st.sampled_from(sorted({self.last_index, self.commit_index, self.last_index + 1}))
        return st.one_of(edges, st.integers(0, self.last_index + 3))


EntriesFactory = Callable[[Around, int, int, int], st.SearchStrategy[tuple[Entry, ...]]]
"""(around, prev_log_index, prev_log_term, message term) -> the entries of an AppendEntries."""


def valid_conf_change_data() -> st.SearchStrategy[bytes]:
    change = st.builds(ConfChange, op=st.sampled_from(ConfChangeOp), node=st.integers(1, 5))
    return change.map(ConfChange.encode)


def well_formed_entries(around: Around, prev_index: int, prev_term: int, term: int):
    """What a correct leader could send: entries numbered from prev_index + 1, terms not
    decreasing and at most the message's term, decodable membership changes."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Entry, ...]:
        count = draw(st.integers(0, 4))
        entry_term = prev_term
        out = []
        for offset in range(1, count + 1):
            entry_term = draw(st.integers(entry_term, max(entry_term, term)))
            if draw(st.integers(0, 5)) == 0:
                data, kind = draw(valid_conf_change_data()), EntryKind.CONF_CHANGE
            else:
                data, kind = draw(st.binary(max_size=4)), EntryKind.NORMAL
            out.append(Entry(prev_index + offset, entry_term, data, kind))
        return tuple(out)

    return build()


def entries_with_arbitrary_numbers(around: Around, prev_index: int, prev_term: int, term: int):
    """Well-typed entries whose indexes and terms need not follow prev_index or each other."""
    entry = st.builds(
        Entry,
        index=around.indexes(),
        term=around.terms(),
        data=st.binary(max_size=4),
        kind=st.just(EntryKind.NORMAL),
    )
    return st.lists(entry, max_size=4).map(tuple)


def conf_changes_with_any_payload(around: Around, prev_index: int, prev_term: int, term: int):
    """Entries numbered from prev_index + 1, but a conf-change entry carries arbitrary bytes."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Entry, ...]:
        count = draw(st.integers(0, 3))
        return tuple(
            Entry(
                prev_index + offset,
                max(prev_term, term),
                draw(st.binary(max_size=6)),
                draw(st.sampled_from(EntryKind)),
            )
            for offset in range(1, count + 1)
        )

    return build()


def up_to(term: int, likely: int) -> st.SearchStrategy[int]:
    """A term no later than `term` (a message never names a term after its own), mostly
    `likely` when that fits."""
    return st.one_of(st.just(min(likely, term)), st.integers(0, term))


def snapshots(around: Around, term: int) -> st.SearchStrategy[Snapshot]:
    conf = st.builds(
        ConfState,
        voters=st.frozensets(st.sampled_from((*NODES, 4)), min_size=1),
        learners=st.frozensets(st.just(5)),
    )
    last_term = around.log_terms[around.last_index] or 0
    meta = st.builds(SnapshotMeta, index=around.indexes(), term=up_to(term, last_term), conf=conf)
    return st.builds(Snapshot, meta=meta, data=st.binary(max_size=4))


def messages(raft: RawNode, entries: EntriesFactory) -> st.SearchStrategy[Message]:
    """Any of the 8 message classes, mostly addressed to `raft` in its own group."""
    return _messages(Around.of(raft), raft.group, raft.id, entries)


@functools.lru_cache(maxsize=1024)
def _messages(
    around: Around, own_group: int, own_id: int, entries: EntriesFactory
) -> st.SearchStrategy[Message]:
    group = mostly(own_group, st.sampled_from(OTHER_GROUPS))
    src = st.sampled_from((*NODES, 4))
    dst = mostly(own_id, st.sampled_from((*NODES, 4)))
    terms, indexes = around.terms(), around.indexes()
    common = {"group": group, "src": src, "dst": dst, "term": terms}
    addressing = {"group": group, "src": src, "dst": dst}
    last_term = around.log_terms[around.last_index] or 0

    def request_vote(term: int) -> st.SearchStrategy[RequestVote]:
        return st.builds(
            RequestVote,
            term=st.just(term),
            last_log_index=indexes,
            last_log_term=up_to(term, last_term),
            pre_vote=st.booleans(),
            transfer=st.booleans(),
            **addressing,
        )

    def append_entries(term: int) -> st.SearchStrategy[AppendEntries]:
        # the previous entry is mostly one the node has (so appends get through), else any
        known_prev = indexes.map(lambda i: (i, min(around.log_terms[i] or 0, term)))
        prev = st.one_of(known_prev, known_prev, known_prev, st.tuples(indexes, up_to(term, 0)))
        return prev.flatmap(
            lambda p: st.builds(
                AppendEntries,
                term=st.just(term),
                prev_log_index=st.just(p[0]),
                prev_log_term=st.just(p[1]),
                entries=entries(around, p[0], p[1], term),
                leader_commit=st.integers(0, around.last_index + 6),
                **addressing,
            )
        )

    def install_snapshot(term: int) -> st.SearchStrategy[InstallSnapshot]:
        return st.builds(
            InstallSnapshot, term=st.just(term), snapshot=snapshots(around, term), **addressing
        )

    return st.one_of(
        terms.flatmap(request_vote),
        st.builds(VoteResponse, granted=st.booleans(), pre_vote=st.booleans(), **common),
        terms.flatmap(append_entries),
        st.builds(
            AppendResponse,
            success=st.booleans(),
            match_index=indexes,
            hint_index=indexes,
            hint_term=terms,
            **common,
        ),
        st.builds(Heartbeat, commit=st.integers(0, around.last_index + 6), **common),
        st.builds(HeartbeatResponse, **common),
        terms.flatmap(install_snapshot),
        st.builds(TimeoutNow, **common),
    )


# --- the checks -----------------------------------------------------------------------------


@dataclass
class Watch:
    """What the node must keep true, with what it has shown so far."""

    raft: RawNode
    term: int = 0
    commit: int = 0
    committed: dict[int, Entry] = field(default_factory=dict)
    applied: int = 0
    foreign_pending: int = 0  # messages of another group stepped since the last ready()
    well_formed: bool = True  # every message could come from a correct peer

    def __post_init__(self) -> None:
        self.term, self.commit, self.applied = (
            self.raft.term,
            self.raft.commit_index,
            self.raft.applied_index,
        )
        self.record_committed()

    def record_committed(self) -> None:
        log = self.raft.log
        for entry in log.slice(max(log.first_index, log.commit_index - 20), log.commit_index + 1):
            self.committed.setdefault(entry.index, entry)

    def check(self, after: str) -> None:
        raft, log = self.raft, self.raft.log
        assert raft.commit_index <= log.last_index, (
            f"after {after}: commit_index {raft.commit_index} > last_index {log.last_index}"
        )
        for position, entry in enumerate(log.entries):
            assert entry.index == log.offset + 1 + position, (
                f"after {after}: entry {entry} sits at index {log.offset + 1 + position}"
            )
        if raft.role is Role.LEADER:
            for peer, pr in raft.progress.items():
                assert pr.match_index <= log.last_index and pr.next_index <= log.last_index + 1, (
                    f"after {after}: node {peer}: match {pr.match_index}, next {pr.next_index}, "
                    f"last index {log.last_index}"
                )
        assert raft.term >= self.term, f"after {after}: term went {self.term} -> {raft.term}"
        assert raft.commit_index >= self.commit, (
            f"after {after}: commit_index went {self.commit} -> {raft.commit_index}"
        )
        for index, entry in self.committed.items():
            if log.offset < index <= log.last_index:
                now = log.slice(index, index + 1)[0]
                assert now == entry, (
                    f"after {after}: committed entry {index} changed from {entry} to {now}"
                )
        self.term, self.commit = raft.term, raft.commit_index
        self.record_committed()

    def ready_cycle(self) -> None:
        raft = self.raft
        rd = raft.ready()
        foreign = [
            t
            for t in rd.trace
            if t.kind == "message_ignored" and str(t.fields["reason"]).startswith("unknown group")
        ]
        assert len(foreign) == self.foreign_pending, (
            f"{self.foreign_pending} messages of another group, {len(foreign)} message_ignored "
            f"traces: {rd.trace}"
        )
        self.foreign_pending = 0
        if self.well_formed:
            refused = [
                t.fields
                for t in rd.trace
                if t.kind == "message_ignored" and str(t.fields["reason"]).startswith("malformed")
            ]
            assert not refused, f"messages a correct peer could send were dropped: {refused}"
        first = (rd.snapshot.meta.index if rd.snapshot is not None else self.applied) + 1
        indexes = [e.index for e in rd.committed_entries]
        assert indexes == list(range(first, first + len(indexes))), (
            f"committed entries handed out out of order: {indexes}, expected from {first}"
        )
        for entry in rd.committed_entries:
            assert entry.index <= raft.commit_index, (
                f"{entry} handed out, commit {raft.commit_index}"
            )
            seen = self.committed.get(entry.index)
            assert seen is None or seen == entry, f"applying {entry}, but {seen} was committed"
        raft.advance(rd)
        if indexes:
            self.applied = indexes[-1]
        elif rd.snapshot is not None:
            self.applied = rd.snapshot.meta.index
        self.check("ready/advance")


def drive(data: st.DataObject, state: str, entries: EntriesFactory) -> None:
    raft = node_in_state(state)
    note(f"node {raft.id} as {state} (Simulation seed {SIM_SEED}): {raft.status()}")
    watch = Watch(raft, well_formed=entries is well_formed_entries)
    watch.ready_cycle()
    for step in range(data.draw(st.integers(1, 40), label="actions")):
        action = data.draw(st.sampled_from(("step", "step", "step", "tick", "ready", "propose")))
        if action == "step":
            message = data.draw(messages(raft, entries), label=f"message {step}")
            foreign = message.group != raft.group
            before = raft.status() if foreign else None
            raft.step(message)  # must never raise on a peer's input
            if foreign:
                watch.foreign_pending += 1
                assert raft.status() == before, f"a message of group {message.group} changed us"
            watch.check(f"step({message})")
        elif action == "tick":
            raft.tick()
            watch.check("tick()")
        elif action == "propose":
            try:
                raft.propose(data.draw(st.binary(max_size=4), label=f"proposal {step}"))
            except RaftError:
                assert raft.role is not Role.LEADER or raft.transferee is not None
            watch.check("propose()")
        else:
            watch.ready_cycle()
    watch.ready_cycle()


# --- the tests --------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), state=st.sampled_from(STATES))
def test_well_formed_messages_never_break_the_node(data: st.DataObject, state: str) -> None:
    drive(data, state, well_formed_entries)


@FUZZ
@given(data=st.data(), state=st.sampled_from(("follower", "compacted_follower")))
def test_entries_with_arbitrary_indexes_never_break_the_node(
    data: st.DataObject, state: str
) -> None:
    drive(data, state, entries_with_arbitrary_numbers)


@FUZZ
@given(data=st.data(), state=st.sampled_from(("follower", "candidate")))
def test_conf_change_entries_with_any_payload_never_raise(data: st.DataObject, state: str) -> None:
    drive(data, state, conf_changes_with_any_payload)


def test_every_message_class_is_generated() -> None:
    raft = node_in_state("follower")
    seen: set[type] = set()

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(messages(raft, well_formed_entries))
    def collect(message: Message) -> None:
        seen.add(type(message))

    collect()
    assert len(seen) == 8, sorted(t.__name__ for t in seen)
