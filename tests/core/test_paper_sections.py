"""Tests named for the section of the Raft paper (Ongaro and Ousterhout, 2014) they check.

`thesis_*` tests name a section of Ongaro's thesis (leadership transfer, PreVote, CheckQuorum).
Most tests drive `RawNode` objects directly through `Net`, a tiny hand-written network below:
every Ready is persisted to a `MemoryStorage`, its messages are queued, and the test decides
which of them get delivered. The simulator's invariant checker watches every Ready, so each
test also checks election safety, log matching, leader completeness and state machine safety.
"""

from __future__ import annotations

import marshal
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import pytest

from raftoral_lab.core import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RaftConfig,
    RawNode,
    Ready,
    RequestVote,
    Role,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.errors import (
    ConfChangeError,
    ConfChangePending,
    NotLeader,
    ProposalDropped,
    ReadyError,
)
from raftoral_lab.sim import InvariantChecker
from raftoral_lab.storage import MemoryStorage

T = 10  # the election timeout of the default RaftConfig
SEED = 11

# --- the hand-written network ------------------------------------------------------------------


def _bootstrap_point() -> tuple[int, int]:
    """Index and term of the membership snapshot a bootstrapped log starts from."""
    storage = MemoryStorage()
    storage.bootstrap([1])
    snap = storage.load().snapshot
    return (snap.meta.index, snap.meta.term) if snap is not None else (0, 0)


BASE, BASE_TERM = _bootstrap_point()
"""Tests count entries from the bootstrap point: `at(1)` is the first entry after it."""


def at(k: int) -> int:
    return BASE + k


def entry(index: int, term: int) -> Entry:
    """The entry a test log holds at (index, term): its data names it, so equal means same."""
    return Entry(index, term, f"{index}/{term}".encode())


def data(k: int, term: int) -> bytes:
    """The data of the k-th preloaded entry (k counted from the bootstrap point)."""
    return entry(at(k), term).data


def entries_of(terms: Sequence[int], start: int = 1) -> tuple[Entry, ...]:
    """Entries of the given terms, the first one the `start`-th after the bootstrap point."""
    return tuple(entry(at(k), t) for k, t in enumerate(terms, start=start))


def hard_state(terms: Sequence[int], term: int | None, commit: int) -> HardState:
    return HardState(term if term is not None else max([*terms, BASE_TERM]), None, at(commit))


class Net:
    """RawNodes wired by hand. `deliver()` moves queued messages until the network is quiet.

    `logs` preloads each node's durable log after the bootstrap point as a list of terms (entry
    i has data b"i/term"); `term` is every preloaded node's durable term (default: its last log
    term); the first `commit` preloaded entries are committed.
    """

    def __init__(
        self,
        voters: Iterable[int] = (1, 2, 3),
        *,
        config: RaftConfig | None = None,
        logs: Mapping[int, Sequence[int]] | None = None,
        term: int | None = None,
        commit: int = 0,
        seed: int = SEED,
    ) -> None:
        self.voters = tuple(voters)
        self.config = config or RaftConfig()
        self.seed = seed
        self.storage: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[bytes]] = {}
        self.readies: dict[int, list[Ready]] = {}
        self.queue: list[Message] = []
        self.delivered: list[Message] = []
        self.dropped: list[Message] = []
        self.down: set[int] = set()
        self.side: dict[int, int] = {}
        self.checker = InvariantChecker()
        self._incarnation: Counter[int] = Counter()
        for node_id in self.voters:
            storage = MemoryStorage()
            storage.bootstrap(self.voters)
            terms = (logs or {}).get(node_id, ())
            if terms or term is not None:
                hard = hard_state(terms, term, commit)
                storage.persist(Ready(hard, entries_of(terms), None, (), (), (), ()))
            self.storage[node_id] = storage
            self._boot(node_id)

    # --- nodes ------------------------------------------------------------------------------

    def _boot(self, node_id: int) -> RawNode:
        self._incarnation[node_id] += 1
        state = self.storage[node_id].load()
        rng = random.Random(f"{self.seed}/{node_id}/{self._incarnation[node_id]}")
        node = RawNode(node_id, state, self.config, rng=rng)
        self.nodes[node_id] = node
        snap = state.snapshot
        self.applied[node_id] = list(marshal.loads(snap.data)) if snap and snap.data else []
        self.readies.setdefault(node_id, [])
        return node

    def join(self, node_id: int) -> RawNode:
        """A brand-new, empty server (not a member until a membership change names it)."""
        self.storage[node_id] = MemoryStorage()
        return self._boot(node_id)

    def crash(self, node_id: int) -> None:
        """Drop the node's memory; its storage survives. Messages to it are lost meanwhile."""
        self.down.add(node_id)

    def restart(self, node_id: int) -> RawNode:
        self.down.discard(node_id)
        return self._boot(node_id)

    def isolate(self, *node_ids: int) -> None:
        for number, node_id in enumerate(node_ids, start=1):
            self.side[node_id] = number

    def heal(self) -> None:
        self.side.clear()

    def live(self) -> list[int]:
        return [i for i in sorted(self.nodes) if i not in self.down]

    # --- driving ----------------------------------------------------------------------------

    def pump(self, node_id: int) -> None:
        """Do every Ready of one node: persist, queue its messages, apply, advance."""
        node = self.nodes[node_id]
        while node.has_ready():
            rd = node.ready()
            self.readies[node_id].append(rd)
            self.storage[node_id].persist(rd)
            if rd.entries:
                self.checker.on_entries(node_id, node, rd.entries)
            self.queue.extend(rd.messages)
            self.queue.extend(rd.persisted_messages)
            if rd.snapshot is not None:
                data = rd.snapshot.data
                self.applied[node_id] = list(marshal.loads(data)) if data else []
            for e in rd.committed_entries:
                if e.kind is EntryKind.NORMAL and e.data:
                    self.applied[node_id].append(e.data)
                self.checker.on_apply(node_id, e)
            node.advance(rd)
            self.checker.on_state(node_id, node)

    def pump_all(self) -> None:
        for node_id in self.live():
            self.pump(node_id)

    def tick(self, node_ids: Iterable[int] | None = None, n: int = 1) -> None:
        ids = list(node_ids) if node_ids is not None else self.live()
        for _ in range(n):
            for node_id in ids:
                self.nodes[node_id].tick()
            for node_id in ids:
                self.pump(node_id)

    def deliver(self, allow: Callable[[Message], bool] | None = None) -> int:
        """Deliver queued messages (and the ones they cause) until none is left."""
        self.pump_all()
        count = 0
        for _ in range(10_000):
            if not self.queue:
                return count
            batch, self.queue = self.queue, []
            for m in batch:
                reachable = (
                    m.dst in self.nodes
                    and m.dst not in self.down
                    and m.src not in self.down
                    and self.side.get(m.src, 0) == self.side.get(m.dst, 0)
                )
                if not reachable or (allow is not None and not allow(m)):
                    self.dropped.append(m)
                    continue
                self.delivered.append(m)
                self.nodes[m.dst].step(m)
                count += 1
            self.pump_all()
        raise AssertionError(f"seed={self.seed}: messages still flowing after 10000 rounds")

    def campaign(self, node_id: int) -> int:
        """Tick one node alone until it starts an election; the number of ticks it took."""
        node = self.nodes[node_id]
        for ticks in range(1, 4 * self.config.election_timeout):
            node.tick()
            if node.role is not Role.FOLLOWER:
                self.pump(node_id)
                return ticks
        raise AssertionError(f"seed={self.seed}: node {node_id} never campaigned")

    def elect(self, node_id: int) -> RawNode:
        self.campaign(node_id)
        self.deliver()
        node = self.nodes[node_id]
        assert node.role is Role.LEADER, f"seed={self.seed}: node {node_id} is {node.role}"
        return node

    def round(self, n: int = 1) -> None:
        """n ticks of every live node, each followed by full delivery (heartbeats flow)."""
        for _ in range(n):
            self.tick()
            self.deliver()

    def propose(self, leader: int, *data: bytes) -> list[int]:
        return [self.nodes[leader].propose(d) for d in data]

    # --- looking ----------------------------------------------------------------------------

    def log(self, node_id: int) -> list[Entry]:
        return list(self.nodes[node_id].log.entries)

    def traces(self, node_id: int, kind: str) -> list[dict[str, object]]:
        return [t.fields for rd in self.readies[node_id] for t in rd.trace if t.kind == kind]

    def check(self) -> None:
        self.checker.check_all({i: self.nodes[i] for i in self.live()})


def fresh(
    node_id: int,
    voters: Iterable[int] = (1, 2, 3),
    terms: Sequence[int] = (),
    term: int | None = None,
    config: RaftConfig | None = None,
    seed: int = SEED,
) -> RawNode:
    """One RawNode, not wired to anything, with a preloaded log of `terms`."""
    storage = MemoryStorage()
    storage.bootstrap(voters)
    if terms or term is not None:
        hard = hard_state(terms, term, 0)
        storage.persist(Ready(hard, entries_of(terms), None, (), (), (), ()))
    return RawNode(node_id, storage.load(), config or RaftConfig(), rng=random.Random(seed))


def drain(node: RawNode) -> Ready:
    """Take one Ready and advance it (the caller looks at what it held)."""
    rd = node.ready()
    node.advance(rd)
    return rd


def sent(rd: Ready) -> list[Message]:
    return [*rd.messages, *rd.persisted_messages]


def votes_cast(rd: Ready) -> list[dict[str, object]]:
    return [t.fields for t in rd.trace if t.kind == "vote_cast"]


PLAIN = RaftConfig(pre_vote=False, check_quorum=False)
"""The paper's Raft without the thesis extensions: the vote rules in their bare form."""


# --- §5.2 leader election ------------------------------------------------------------------------


def test_5_2_election_timeout_is_randomized_between_T_and_2T() -> None:
    timeouts = []
    for seed in range(40):
        node = fresh(1, seed=seed)
        ticks = 0
        while node.role is Role.FOLLOWER:
            node.tick()
            ticks += 1
            assert ticks < 3 * T, f"seed={seed}: no election after {ticks} ticks"
        assert T <= ticks < 2 * T, f"seed={seed}: election after {ticks} ticks"
        timeouts.append(ticks)
    assert len(set(timeouts)) >= 5, f"seeds 0..39: timeouts barely vary: {sorted(set(timeouts))}"


@pytest.mark.parametrize("pre_vote", [False, True], ids=["candidate", "pre_candidate"])
def test_5_2_each_election_restarts_a_newly_randomized_timeout(pre_vote: bool) -> None:
    """Paper 5.2: "each candidate restarts its randomized election timeout at the start of an
    election". Without a new draw, two candidates that drew the same timeout split the vote
    again and again (see tests/sim/test_scenarios.py::test_split_vote_is_resolved)."""
    for seed in range(5):
        node = fresh(1, seed=seed, config=RaftConfig(pre_vote=pre_vote))  # peers never answer
        intervals, last = [], 0
        for now in range(1, 40 * T):
            node.tick()
            rd = drain(node)
            if any(t.kind == "election_started" for t in rd.trace):
                intervals.append(now - last)
                last = now
        assert all(T <= i < 2 * T for i in intervals), f"seed={seed}: intervals {intervals}"
        assert len(set(intervals)) > 1, (
            f"seed={seed}: {len(intervals)} elections in a row all waited exactly "
            f"{intervals[0]} ticks: the timeout is not redrawn when an election starts"
        )


def test_5_2_candidate_that_wins_a_majority_becomes_leader() -> None:
    net = Net(config=PLAIN)
    leader = net.elect(1)
    assert leader.term == BASE_TERM + 1, f"seed={net.seed}"
    for i in (2, 3):
        follower = net.nodes[i]
        assert (follower.role, follower.term, follower.leader, follower.vote) == (
            Role.FOLLOWER,
            leader.term,
            1,
            1,
        ), f"seed={net.seed}: node {i}"
    net.check()


def test_5_2_a_server_votes_at_most_once_per_term() -> None:
    voter = fresh(1, config=PLAIN)
    voter.step(RequestVote(0, 2, 1, 5, at(0), BASE_TERM))
    first = drain(voter)
    voter.step(RequestVote(0, 3, 1, 5, at(0), BASE_TERM))
    second = drain(voter)
    voter.step(RequestVote(0, 2, 1, 5, at(0), BASE_TERM))  # a retry of the vote it gave
    retry = drain(voter)
    assert [m.granted for m in first.persisted_messages] == [True]
    assert [m.granted for m in second.persisted_messages] == [False]
    assert votes_cast(second)[0]["reason"] == "already voted for 2"
    assert [m.granted for m in retry.persisted_messages] == [True]
    assert (voter.term, voter.vote) == (5, 2)


def test_5_2_a_candidate_with_a_stale_log_is_refused() -> None:
    voter = fresh(1, terms=[1, 2], config=PLAIN)
    voter.step(RequestVote(0, 2, 1, 3, last_log_index=at(5), last_log_term=1))
    rd = drain(voter)
    [reply] = rd.persisted_messages
    assert isinstance(reply, VoteResponse) and not reply.granted
    assert votes_cast(rd)[0]["reason"] == "candidate log not up to date"
    assert voter.vote is None  # the refused candidate got nothing durable
    assert voter.term == 3  # but the term moved on (paper 5.1)


def test_5_2_a_candidate_steps_down_for_a_leader_of_its_term() -> None:
    candidate = fresh(1, config=PLAIN)
    while candidate.role is not Role.CANDIDATE:
        candidate.tick()
    drain(candidate)
    candidate.step(AppendEntries(0, 2, 1, candidate.term, at(0), BASE_TERM, (), 0))
    drain(candidate)
    assert (candidate.role, candidate.leader) == (Role.FOLLOWER, 2)


def test_5_2_a_refused_candidate_returns_to_follower() -> None:
    net = Net(config=PLAIN, logs={1: [1], 2: [1, 1], 3: [1, 1]})
    net.campaign(1)
    net.deliver()
    assert net.nodes[1].role is Role.FOLLOWER, f"seed={net.seed}"
    net.check()


# --- §5.3 log replication -----------------------------------------------------------------------


def test_5_3_append_entries_consistency_check() -> None:
    follower = fresh(1, terms=[1, 1], term=2)
    follower.step(AppendEntries(0, 2, 1, 2, at(3), 1, (entry(at(4), 2),), leader_commit=0))
    missing = drain(follower)
    follower.step(AppendEntries(0, 2, 1, 2, at(2), 2, (entry(at(3), 2),), leader_commit=0))
    wrong_term = drain(follower)
    for rd in (missing, wrong_term):
        [reply] = rd.persisted_messages
        assert isinstance(reply, AppendResponse) and not reply.success
        assert rd.entries == ()
    assert list(follower.log.entries) == list(entries_of([1, 1]))
    follower.step(AppendEntries(0, 2, 1, 2, at(2), 1, (entry(at(3), 2),), leader_commit=0))
    ok = drain(follower)
    [reply] = ok.persisted_messages
    assert (reply.success, reply.match_index) == (True, at(3))
    assert ok.entries == (entry(at(3), 2),)


def test_5_3_a_conflicting_follower_suffix_is_overwritten() -> None:
    storage = MemoryStorage()
    storage.bootstrap([1, 2, 3])
    hard = hard_state([2], None, 0)
    storage.persist(Ready(hard, entries_of([1, 1, 2, 2]), None, (), (), (), ()))
    follower = RawNode(1, storage.load(), RaftConfig())
    follower.step(AppendEntries(0, 2, 1, 3, at(2), 1, (entry(at(3), 3),), leader_commit=0))
    rd = follower.ready()
    storage.persist(rd)
    follower.advance(rd)
    assert rd.entries == (entry(at(3), 3),)
    assert list(follower.log.entries) == list(entries_of([1, 1, 3]))
    assert storage.load().entries == entries_of([1, 1, 3])
    truncated = [t.fields["from_index"] for t in rd.trace if t.kind == "entries_truncated"]
    assert truncated == [at(3)]


FIGURE_7 = {
    1: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],  # the leader for term 8
    2: [1, 1, 1, 4, 4, 5, 5, 6, 6],  # (a) missing an entry
    3: [1, 1, 1, 4],  # (b) missing many
    4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],  # (c) one extra entry
    5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d) extra entries of a later term
    6: [1, 1, 1, 4, 4, 4, 4],  # (e) missing and extra
    7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # (f) a leader of terms 2 and 3 that never committed
}


def test_5_3_figure_7_the_leader_brings_every_follower_in_line() -> None:
    net = Net(range(1, 8), logs=FIGURE_7, term=7, commit=3)
    before = net.log(1)
    leader = net.elect(1)
    assert leader.term == 8, f"seed={net.seed}"
    net.round(3)
    final = net.log(1)
    assert final[: len(before)] == before, (
        f"seed={net.seed}: the leader overwrote its own log (paper 5.3)"
    )
    assert final[-1].term == 8 and len(final) == len(before) + 1, f"seed={net.seed}"
    for i in range(2, 8):
        assert net.log(i) == final, f"seed={net.seed}: node {i} log not in line"
        assert net.nodes[i].commit_index == final[-1].index, f"seed={net.seed}: node {i}"
        assert net.applied[i] == [e.data for e in final if e.data], f"seed={net.seed}: node {i}"
    # Fast back-tracking: each follower needs at most a rejection per conflicting term.
    appends = Counter(m.dst for m in net.delivered if isinstance(m, AppendEntries))
    assert max(appends.values()) <= 6, f"seed={net.seed}: appends per follower {appends}"
    net.check()


def test_5_3_entries_are_not_resent_to_followers_that_keep_up() -> None:
    """Paper 5.3: the leader retries AppendEntries when followers crash, run slowly or lose
    packets. On a lossless network where every follower answers, each entry goes out once
    per follower, even when a heartbeat answer overtakes the append's answer."""
    net = Net()
    elect_and_settle(net)
    for round_ in range(3):
        [index] = net.propose(1, b"x%d" % round_)
        net.tick([1])  # a heartbeat leaves together with the append
        net.deliver()
        carrying = Counter(
            m.dst
            for m in net.delivered
            if isinstance(m, AppendEntries) and any(e.index == index for e in m.entries)
        )
        assert carrying == {2: 1, 3: 1}, (
            f"seed={net.seed}: entry {index} was sent {dict(carrying)} times per follower"
        )
        assert net.nodes[1].commit_index == index, f"seed={net.seed}"


def test_5_3_pipelined_entries_still_in_flight_are_not_resent_on_a_heartbeat_answer() -> None:
    """A slow (not lossy) link: the appends are in flight while a heartbeat and its answer
    overtake them. A follower in the replicate state has up to `max_inflight` appends
    unacknowledged by design; the heartbeat answer is no sign that they were lost."""
    net = Net()
    elect_and_settle(net)
    [index] = net.propose(1, b"x")
    net.pump(1)
    in_flight, net.queue = net.queue, []
    assert {m.dst for m in in_flight if isinstance(m, AppendEntries)} == {2, 3}, f"seed={net.seed}"
    net.tick([1])
    net.deliver()
    resent = [
        (m.dst, [e.index for e in m.entries])
        for m in net.delivered
        if isinstance(m, AppendEntries) and any(e.index == index for e in m.entries)
    ]
    assert resent == [], f"seed={net.seed}: in-flight entry {index} sent again: {resent}"
    net.queue.extend(in_flight)
    net.deliver()
    assert net.nodes[1].commit_index == index, f"seed={net.seed}"


def test_5_3_appends_are_pipelined_up_to_max_inflight() -> None:
    """A follower that keeps up gets a new append per proposal without waiting for answers,
    but at most `max_inflight` unacknowledged ones; an acknowledgement frees a slot."""
    net = Net(config=RaftConfig(max_inflight=2))
    leader = elect_and_settle(net)
    indexes = []
    for k in range(3):  # three ready/advance cycles, nothing delivered
        indexes += net.propose(1, b"p%d" % k)
        net.pump(1)
    appends = [m for m in net.queue if isinstance(m, AppendEntries)]
    per_follower = Counter(m.dst for m in appends)
    assert per_follower == {2: 2, 3: 2}, f"seed={net.seed}: {per_follower}"
    carried = {(m.dst, e.index) for m in appends for e in m.entries}
    assert carried == {(f, i) for f in (2, 3) for i in indexes[:2]}, f"seed={net.seed}"
    # follower 2 acknowledges the first append: the third entry goes out to it, not to 3
    net.queue = []
    first = next(m for m in appends if m.dst == 2)
    net.nodes[2].step(first)
    net.pump(2)
    [ack] = [m for m in net.queue if isinstance(m, AppendResponse)]
    assert ack.success and ack.match_index == indexes[0], f"seed={net.seed}: {ack}"
    net.queue = []
    leader.step(ack)
    net.pump(1)
    sent_now = [(m.dst, [e.index for e in m.entries]) for m in net.queue]
    assert sent_now == [(2, [indexes[2]])], f"seed={net.seed}: {sent_now}"


def test_5_3_a_leader_ignores_appends_of_an_older_term() -> None:
    net = Net(config=PLAIN)
    leader = net.elect(1)
    net.propose(1, b"a", b"b")
    net.deliver()
    before = net.log(1)
    stale = leader.term - 1
    leader.step(AppendEntries(0, 2, 1, stale, at(0), BASE_TERM, (entry(at(1), stale),), 0))
    rd = drain(leader)
    assert net.log(1) == before, f"seed={net.seed}"
    assert [type(m) for m in rd.messages] == [HeartbeatResponse], (
        f"seed={net.seed}"
    )  # tells the sender the term
    assert rd.messages[0].term == leader.term, f"seed={net.seed}"


# --- §5.4.1 election restriction ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_term", "last_index", "granted"),
    [(2, 10, False), (3, 1, False), (3, 2, True), (3, 5, True), (4, 1, True)],
)
def test_5_4_1_up_to_date_compares_last_term_then_last_index(
    last_term: int, last_index: int, granted: bool
) -> None:
    voter = fresh(1, terms=[1, 3], config=PLAIN)  # last entry: the 2nd, of term 3
    voter.step(RequestVote(0, 2, 1, 9, at(last_index), last_term))
    [reply] = drain(voter).persisted_messages
    assert reply.granted is granted


def test_5_4_1_a_server_missing_a_committed_entry_cannot_be_elected() -> None:
    net = Net(config=PLAIN)
    net.elect(1)
    net.isolate(3)
    [index] = net.propose(1, b"committed")
    net.deliver()
    assert net.nodes[1].commit_index == index, f"seed={net.seed}"
    net.heal()
    net.crash(1)
    net.campaign(3)
    net.deliver()
    assert net.nodes[3].role is not Role.LEADER, f"seed={net.seed}"
    assert net.traces(2, "vote_cast")[-1]["reason"] == "candidate log not up to date", (
        f"seed={net.seed}"
    )
    net.elect(2)
    assert b"committed" in [e.data for e in net.log(2)], f"seed={net.seed}"
    net.round(2)
    assert net.applied[3] == [b"committed"], f"seed={net.seed}"
    net.check()


# --- §5.4.2 committing entries from previous terms (Figure 8) ------------------------------------


def figure_8_c() -> Net:
    """Figure 8 (c), indexes counted from the bootstrap point: S1 leads term 4 and copies its
    term-2 entry at index 2 to S2 and S3, but the network loses every AppendEntries that would
    deliver S1's term-4 entry (index 3). S4 and S5 are down. S5 holds a term-3 entry at index 2
    that no one else has."""
    config = RaftConfig(pre_vote=False, check_quorum=False, max_entries_per_message=1)
    net = Net(
        range(1, 6),
        config=config,
        term=3,
        commit=1,
        logs={1: [1, 2], 2: [1], 3: [1], 4: [1], 5: [1, 3]},
    )
    net.crash(4)
    net.crash(5)

    def loses_term_4(m: Message) -> bool:
        if isinstance(m, AppendEntries) and any(e.term == 4 for e in m.entries):
            return net.nodes[m.dst].log.term(m.prev_log_index) != m.prev_log_term
        return True  # rejections still flow, so S1 probes back to index 2

    net.campaign(1)
    net.deliver(loses_term_4)  # S1 counts itself, S2 and S3: a majority of five
    assert net.nodes[1].role is Role.LEADER and net.nodes[1].term == 4
    net.tick([1], n=2)
    net.deliver(loses_term_4)
    return net


def test_5_4_2_figure_8_an_old_term_entry_is_not_committed_by_counting_replicas() -> None:
    net = figure_8_c()
    leader = net.nodes[1]
    holders = [i for i in (1, 2, 3) if net.nodes[i].log.term(at(2)) == 2]
    assert holders == [1, 2, 3], f"seed={net.seed}: index {at(2)} term 2 is on {holders}"
    assert leader.status().progress[2].match_index == at(2), f"seed={net.seed}"
    assert leader.status().progress[3].match_index == at(2), f"seed={net.seed}"
    assert leader.commit_index == at(1), (
        f"seed={net.seed}: a term-2 entry was committed by counting replicas"
    )
    assert all(net.applied[i] == [data(1, 1)] for i in (1, 2, 3)), f"seed={net.seed}"
    # Figure 8 (d): this is why. S1 crashes; S5 (last term 3) wins S2, S3 and S4 and
    # overwrites index 2 everywhere. Had S1 committed it, a committed entry would be lost.
    net.crash(1)
    net.restart(4)
    s5 = net.restart(5)
    for _ in range(6 * T):  # term 4 is S1's for S2 and S3: S5 wins in a later term
        net.tick([5])
        net.deliver()
        if s5.role is Role.LEADER:
            break
    assert s5.role is Role.LEADER, f"seed={net.seed}"
    net.round(3)
    for i in (2, 3, 4, 5):
        assert net.nodes[i].log.term(at(2)) == 3, f"seed={net.seed}: node {i}"
        assert net.applied[i] == [data(1, 1), data(2, 3)], f"seed={net.seed}: node {i}"
    net.check()


def test_5_4_2_figure_8_an_old_term_entry_commits_with_a_current_term_entry() -> None:
    net = figure_8_c()
    net.tick([1])  # a heartbeat; this time the term-4 entry gets through
    net.deliver()
    leader = net.nodes[1]
    assert leader.commit_index == at(3), f"seed={net.seed}: commit {leader.commit_index}"
    net.round(1)
    for i in (1, 2, 3):
        assert net.applied[i] == [data(1, 1), data(2, 2)], f"seed={net.seed}: node {i}"
    net.check()


def test_5_4_2_a_new_leader_commits_only_through_an_entry_of_its_term() -> None:
    """The new leader's first entry is an empty one of its own term (the thesis' no-op)."""
    net = Net(logs={1: [1, 1], 2: [1, 1], 3: [1]}, term=1)
    leader = net.elect(1)
    assert net.log(1)[-1] == Entry(at(3), 2), f"seed={net.seed}"
    net.deliver()
    assert leader.commit_index == at(3), f"seed={net.seed}"
    assert net.applied[1] == [data(1, 1), data(2, 1)], f"seed={net.seed}"


# --- §5.5 follower and candidate crashes --------------------------------------------------------


def test_5_5_duplicate_append_entries_change_nothing() -> None:
    follower = fresh(1, term=1)
    first = AppendEntries(0, 2, 1, 1, at(0), BASE_TERM, entries_of([1, 1, 1]), leader_commit=0)
    second = AppendEntries(0, 2, 1, 1, at(3), 1, entries_of([1, 1], start=4), at(2))
    replies = []
    for m in (first, second, first, second, second):
        follower.step(m)
        rd = drain(follower)
        replies.append(rd.persisted_messages)
        if len(replies) > 2:
            assert rd.entries == (), "a duplicate append wrote entries again"
            assert rd.hard_state is None, "a duplicate append changed the hard state"
    assert list(follower.log.entries) == list(entries_of([1] * 5))
    assert follower.commit_index == at(2)
    assert [r[0].success for r in replies] == [True] * 5
    assert [r[0].match_index for r in replies[:2]] == [at(3), at(5)]
    assert [r[0].match_index for r in replies[3:]] == [at(5), at(5)]
    # A replay below the commit index may be answered with the commit index (etcd does so).
    assert at(2) <= replies[2][0].match_index <= at(3)


def test_5_5_a_late_duplicate_does_not_truncate_newer_entries() -> None:
    net = Net()
    net.elect(1)
    net.propose(1, b"a")
    net.deliver()
    old = [m for m in net.delivered if isinstance(m, AppendEntries) and m.dst == 2][-1]
    net.propose(1, b"b", b"c")
    net.deliver()
    log_before = net.log(2)
    net.nodes[2].step(old)  # the network redelivers an old append
    net.deliver()
    assert net.log(2) == log_before, f"seed={net.seed}"
    net.check()


def test_5_5_a_restarted_follower_keeps_its_log_and_catches_up() -> None:
    net = Net()
    net.elect(1)
    net.propose(1, b"a", b"b")
    net.deliver()
    net.round(1)
    net.crash(2)
    net.propose(1, b"c")
    net.deliver()
    node = net.restart(2)
    assert [e.data for e in net.log(2)] == [b"", b"a", b"b"], f"seed={net.seed}"
    assert (node.term, node.vote) == (net.nodes[1].term, 1), f"seed={net.seed}"
    net.round(3)
    assert net.log(2) == net.log(1), f"seed={net.seed}"
    assert net.applied[2] == [b"a", b"b", b"c"], f"seed={net.seed}"
    net.check()


def test_5_5_a_restarted_voter_does_not_vote_twice_in_a_term() -> None:
    net = Net(config=PLAIN)
    term = BASE_TERM + 1
    net.nodes[2].step(RequestVote(0, 1, 2, term, at(0), BASE_TERM))
    net.pump(2)
    net.crash(2)
    voter = net.restart(2)
    voter.step(RequestVote(0, 3, 2, term, at(0), BASE_TERM))
    rd = drain(voter)
    assert [m.granted for m in rd.persisted_messages] == [False], f"seed={net.seed}"
    assert votes_cast(rd)[0]["reason"] == "already voted for 1", f"seed={net.seed}"


# --- §6 cluster membership changes (single-server, thesis 4.1) ----------------------------------


def elect_and_settle(net: Net, leader: int = 1) -> RawNode:
    node = net.elect(leader)
    net.round(1)
    assert node.applied_index == node.commit_index == node.log.last_index
    return node


def change(net: Net, leader: int, op: ConfChangeOp, target: int) -> None:
    net.nodes[leader].propose_conf_change(ConfChange(op, target))
    net.deliver()
    net.round(2)


def test_6_add_a_learner_then_promote_it() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.propose(1, b"a", b"b")
    net.deliver()
    learner = net.join(4)
    change(net, 1, ConfChangeOp.ADD_LEARNER, 4)
    assert leader.conf.learners == {4} and leader.conf.voters == {1, 2, 3}, f"seed={net.seed}"
    assert learner.conf.learners == {4}, (
        f"seed={net.seed}: the learner did not learn its membership from the log"
    )
    assert net.log(4) == net.log(1) and net.applied[4] == [b"a", b"b"], f"seed={net.seed}"
    net.tick([4], n=5 * T)
    net.deliver()
    assert learner.role is Role.FOLLOWER and learner.term == leader.term, (
        f"seed={net.seed}: a learner campaigned"
    )
    # A learner does not count toward commit: with 3 cut off, 1 and 4 are not a majority.
    net.isolate(3, 2)
    [index] = net.propose(1, b"needs two voters")
    net.deliver()
    assert leader.commit_index < index, f"seed={net.seed}"
    net.heal()
    # The lost appends are resent once two heartbeat round trips pass without an
    # acknowledgement (one overtaking heartbeat is not a loss: see the pipelining test).
    net.round(2)
    assert leader.commit_index >= index, f"seed={net.seed}"
    change(net, 1, ConfChangeOp.ADD_VOTER, 4)
    assert leader.conf.voters == {1, 2, 3, 4} and not leader.conf.learners, f"seed={net.seed}"
    assert learner.conf.voters == {1, 2, 3, 4}, f"seed={net.seed}"
    net.check()


def test_6_one_membership_change_may_be_pending_at_a_time() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.join(4)
    net.join(5)
    leader.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 4))
    with pytest.raises(ConfChangePending):
        leader.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 5))
    net.deliver()
    net.round(1)
    leader.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 5))
    net.deliver()
    net.round(2)
    assert leader.conf.learners == {4, 5}, f"seed={net.seed}"


def test_6_a_new_leader_accepts_no_change_before_its_first_entry_is_applied() -> None:
    net = Net()
    net.campaign(1)
    net.deliver(lambda m: not isinstance(m, AppendResponse))
    leader = net.nodes[1]
    assert leader.role is Role.LEADER and leader.applied_index < leader.log.last_index, (
        f"seed={net.seed}"
    )
    with pytest.raises(ConfChangePending):
        leader.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, 3))


def test_6_remove_a_voter() -> None:
    net = Net()
    leader = elect_and_settle(net)
    change(net, 1, ConfChangeOp.REMOVE, 3)
    assert leader.conf.voters == {1, 2}, f"seed={net.seed}"
    assert 3 not in leader.status().progress, f"seed={net.seed}"
    net.crash(3)
    [index] = net.propose(1, b"two voters")
    net.deliver()
    assert leader.commit_index >= index, f"seed={net.seed}"
    with pytest.raises(ConfChangeError):
        leader.propose_conf_change(ConfChange(ConfChangeOp.REMOVE, 3))  # not a member now
    net.check()


def test_6_remove_the_leader_itself() -> None:
    net = Net()
    old = elect_and_settle(net)
    term = old.term
    net.propose(1, b"a")
    net.deliver()
    change(net, 1, ConfChangeOp.REMOVE, 1)
    assert old.role is not Role.LEADER, f"seed={net.seed}"
    assert any(isinstance(m, TimeoutNow) and m.src == 1 for m in net.delivered), f"seed={net.seed}"
    net.crash(1)
    net.round(2)
    leaders = [i for i in (2, 3) if net.nodes[i].role is Role.LEADER]
    assert len(leaders) == 1, f"seed={net.seed}: leaders {leaders}"
    new = net.nodes[leaders[0]]
    assert new.term == term + 1 and new.conf.voters == {2, 3}, f"seed={net.seed}"
    [index] = net.propose(leaders[0], b"b")
    net.deliver()
    net.round(1)
    assert new.commit_index >= index, f"seed={net.seed}"
    assert net.applied[2] == net.applied[3] == [b"a", b"b"], f"seed={net.seed}"
    net.check()


def test_8_a_follower_refuses_a_proposal_and_names_the_leader() -> None:
    net = Net()
    elect_and_settle(net)
    with pytest.raises(NotLeader) as info:
        net.nodes[2].propose(b"x")
    assert info.value.leader == 1, f"seed={net.seed}"
    assert "node 1 is the leader" in str(info.value), f"seed={net.seed}"


# --- §7 log compaction ----------------------------------------------------------------------------


def snapshot_now(net: Net, node_id: int) -> None:
    snap = net.nodes[node_id].compact(marshal.dumps(net.applied[node_id]))
    net.storage[node_id].compact(snap)


def test_7_compaction_keeps_only_entries_after_the_applied_index() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.propose(1, *(b"c%d" % i for i in range(5)))
    net.deliver()
    net.round(1)
    applied = leader.applied_index
    net.propose(1, b"not applied yet")
    rd = leader.ready()
    with pytest.raises(ReadyError):
        leader.compact(b"")
    net.storage[1].persist(rd)
    net.queue.extend(sent(rd))
    leader.advance(rd)
    snapshot_now(net, 1)
    assert leader.log.first_index == applied + 1, f"seed={net.seed}"
    assert [e.data for e in net.log(1)] == [b"not applied yet"], f"seed={net.seed}"
    assert net.storage[1].load().snapshot.meta.index == applied, f"seed={net.seed}"


def test_7_install_snapshot_on_a_lagging_follower_restores_its_state_machine() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.isolate(3)
    net.propose(1, *(b"c%d" % i for i in range(10)))
    net.deliver()
    net.round(1)
    for i in (1, 2):
        snapshot_now(net, i)
    offset = leader.log.offset
    assert offset == leader.commit_index and leader.log.entries == [], f"seed={net.seed}"
    net.heal()
    net.round(3)
    installs = [m for m in net.delivered if isinstance(m, InstallSnapshot)]
    assert [m.dst for m in installs] == [3], f"seed={net.seed}"
    follower = net.nodes[3]
    assert follower.log.offset == offset, f"seed={net.seed}"
    [rd] = [rd for rd in net.readies[3] if rd.snapshot is not None]
    assert rd.snapshot.meta.index == offset, f"seed={net.seed}"
    assert net.applied[3] == net.applied[1] == [b"c%d" % i for i in range(10)], f"seed={net.seed}"
    assert net.storage[3].load().snapshot.meta.index == offset, f"seed={net.seed}"
    net.propose(1, b"after")
    net.round(2)
    assert net.applied[3][-1] == b"after", f"seed={net.seed}"
    net.check()


# --- thesis §3.10 leadership transfer -------------------------------------------------------------


def test_thesis_3_10_transfer_to_an_up_to_date_follower_uses_timeout_now() -> None:
    net = Net()
    old = elect_and_settle(net)
    term = old.term
    old.transfer_leader(2)
    rd = old.ready()
    assert [type(m) for m in rd.messages] == [TimeoutNow], f"seed={net.seed}"
    assert rd.messages[0].dst == 2, f"seed={net.seed}"
    net.queue.extend(sent(rd))
    old.advance(rd)
    net.deliver()
    new = net.nodes[2]
    assert (new.role, new.term) == (Role.LEADER, term + 1), f"seed={net.seed}"
    assert (old.role, old.leader) == (Role.FOLLOWER, 2), f"seed={net.seed}"
    net.check()


def test_thesis_3_10_proposals_are_refused_while_a_transfer_is_under_way() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.isolate(3)
    leader.transfer_leader(3)
    with pytest.raises(ProposalDropped):
        leader.propose(b"x")


def test_thesis_3_10_the_target_first_catches_up_then_gets_timeout_now() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.isolate(3)
    net.propose(1, b"a", b"b")
    net.deliver()
    leader.transfer_leader(3)
    net.deliver()
    assert not any(isinstance(m, TimeoutNow) for m in net.dropped), (
        f"seed={net.seed}: sent to a lagging target"
    )
    net.heal()
    for _ in range(2):  # two heartbeat round trips show the appends to 3 were lost
        net.tick([1])
        net.deliver()
    assert net.nodes[3].role is Role.LEADER, f"seed={net.seed}"
    assert [e.data for e in net.log(3)][:3] == [b"", b"a", b"b"], f"seed={net.seed}"
    net.check()


def test_thesis_3_10_a_transfer_that_cannot_finish_is_aborted_after_an_election_timeout() -> None:
    net = Net()
    leader = elect_and_settle(net)
    net.isolate(3)
    net.propose(1, b"a")
    net.deliver()
    leader.transfer_leader(3)
    net.round(T)
    assert leader.role is Role.LEADER and leader.transferee is None, f"seed={net.seed}"
    assert net.traces(1, "leader_transfer_aborted"), f"seed={net.seed}"
    assert leader.propose(b"accepted again") > 0, f"seed={net.seed}"


# --- thesis §9.6 PreVote and CheckQuorum ----------------------------------------------------------


def test_thesis_9_6_pre_vote_keeps_a_partitioned_node_from_raising_its_term() -> None:
    net = Net()
    leader = elect_and_settle(net)
    term = leader.term
    net.isolate(3)
    net.round(10 * T)
    assert net.nodes[3].term == term, f"seed={net.seed}: an isolated pre-candidate raised its term"
    assert net.traces(3, "election_started"), f"seed={net.seed}: the isolated node never tried"
    net.heal()
    net.round(3 * T)
    assert (leader.role, leader.term) == (Role.LEADER, term), (
        f"seed={net.seed}: the rejoining node disrupted"
    )
    assert net.nodes[3].leader == 1, f"seed={net.seed}"
    net.check()


def test_thesis_9_6_without_pre_vote_a_rejoining_node_disrupts_the_leader() -> None:
    """The contrast that motivates PreVote (thesis 9.6)."""
    net = Net(config=RaftConfig(pre_vote=False))
    leader = elect_and_settle(net)
    term = leader.term
    net.isolate(3)
    net.round(10 * T)
    assert net.nodes[3].term > term, f"seed={net.seed}"
    net.heal()
    net.round(3 * T)
    assert max(n.term for n in net.nodes.values()) > term, f"seed={net.seed}"
    net.check()


def test_thesis_9_6_a_pre_vote_changes_neither_term_nor_vote() -> None:
    voter = fresh(1, term=3)
    voter.step(RequestVote(0, 2, 1, 4, at(0), BASE_TERM, pre_vote=True))
    rd = drain(voter)
    [reply] = rd.messages + rd.persisted_messages
    assert isinstance(reply, VoteResponse) and reply.granted and reply.pre_vote
    assert (voter.term, voter.vote) == (3, None)
    assert rd.hard_state is None or (rd.hard_state.term, rd.hard_state.vote) == (3, None)


def test_thesis_9_6_check_quorum_a_partitioned_leader_steps_down() -> None:
    net = Net()
    leader = elect_and_settle(net)
    term = leader.term
    net.isolate(1)
    ticks = 0
    while leader.role is Role.LEADER and ticks < 2 * T:
        net.round(1)
        ticks += 1
    assert leader.role is Role.FOLLOWER, f"seed={net.seed}: still leading after {ticks} ticks"
    assert leader.term == term, f"seed={net.seed}"
    assert net.traces(1, "check_quorum_failed"), f"seed={net.seed}"


def test_thesis_9_6_check_quorum_a_follower_in_its_leader_lease_ignores_vote_requests() -> None:
    net = Net()
    leader = elect_and_settle(net)
    follower = net.nodes[2]
    follower.step(RequestVote(0, 3, 2, leader.term + 1, 99, leader.term))
    net.pump(2)
    assert (follower.term, follower.leader, follower.vote) == (leader.term, 1, 1), (
        f"seed={net.seed}"
    )
    assert "leader lease" in str(net.traces(2, "vote_cast")[-1]["reason"]), f"seed={net.seed}"
    assert not net.queue, f"seed={net.seed}: the lease refusal answered the candidate"


# --- persistence contract (the Ready) ------------------------------------------------------------


def test_persistence_votes_and_append_responses_only_in_persisted_messages() -> None:
    net = Net(range(1, 6))
    net.elect(1)
    net.isolate(5)
    net.propose(1, *(b"c%d" % i for i in range(5)))
    net.round(3)
    for i in range(1, 5):
        snapshot_now(net, i)
    net.heal()
    net.round(3)
    net.crash(1)
    net.round(3 * T)  # a new election among 2..5, then replication
    assert any(net.nodes[i].role is Role.LEADER for i in range(2, 6)), f"seed={net.seed}"
    durable = (VoteResponse, AppendResponse)
    seen: Counter[str] = Counter()
    for node_id, readies in net.readies.items():
        for rd in readies:
            for m in rd.messages:
                assert not isinstance(m, AppendResponse), f"seed={net.seed}: node {node_id}: {m}"
                assert not (isinstance(m, VoteResponse) and not m.pre_vote and m.granted), (
                    f"seed={net.seed}: {m}"
                )
                assert not (isinstance(m, RequestVote) and not m.pre_vote), f"seed={net.seed}: {m}"
            for m in rd.persisted_messages:
                seen[m.kind] += 1
                assert isinstance(m, (*durable, RequestVote)), (
                    f"seed={net.seed}: node {node_id}: {m}"
                )
                if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                    assert rd.hard_state is not None and rd.hard_state.vote == m.dst, (
                        f"seed={net.seed}: {m}"
                    )
                if isinstance(m, RequestVote) and not m.pre_vote:
                    assert rd.hard_state is not None and rd.hard_state.vote == node_id, (
                        f"seed={net.seed}: {m}"
                    )
    assert {"vote_response", "append_response", "request_vote"} <= set(seen), (
        f"seed={net.seed}: {seen}"
    )
    net.check()


def test_persistence_the_leader_counts_its_own_entry_only_after_advance() -> None:
    net = Net()
    leader = elect_and_settle(net)
    index = leader.propose(b"x")
    rd = leader.ready()
    assert rd.entries[-1].index == index, f"seed={net.seed}"
    appends = [m for m in rd.messages if isinstance(m, AppendEntries) and m.dst == 2]
    assert appends, f"seed={net.seed}: the leader may send appends before persisting; it did not"
    net.nodes[2].step(appends[0])  # follower 2 persists and acknowledges
    rd2 = drain(net.nodes[2])
    [ack] = rd2.persisted_messages
    leader.step(ack)
    assert leader.commit_index < index, (
        f"seed={net.seed}: committed on one follower plus an unpersisted entry"
    )
    net.storage[1].persist(rd)
    leader.advance(rd)
    assert leader.commit_index == index, f"seed={net.seed}"


def test_persistence_a_single_node_commits_only_after_advance() -> None:
    node = fresh(1, voters=[1])
    node.tick()
    while node.role is not Role.LEADER:
        node.tick()
    while node.has_ready():
        drain(node)
    index = node.propose(b"solo")
    rd = node.ready()
    assert rd.entries[-1] == Entry(index, node.term, b"solo")
    assert node.commit_index < index and rd.committed_entries == ()
    node.advance(rd)
    assert node.commit_index == index
    assert [e.data for e in node.ready().committed_entries] == [b"solo"]


def test_persistence_a_snapshot_is_delivered_before_its_acknowledgement() -> None:
    follower = fresh(1, term=2)
    conf = ConfState(voters=frozenset({1, 2, 3}))
    snap = Snapshot(SnapshotMeta(at(2), 2, conf), marshal.dumps([data(1, 1), data(2, 2)]))
    follower.step(InstallSnapshot(0, 2, 1, 2, snap))
    rd = follower.ready()
    assert rd.snapshot == snap
    assert [type(m) for m in rd.persisted_messages] == [AppendResponse] and not rd.messages
    follower.advance(rd)
    assert follower.applied_index == follower.commit_index == at(2)


def test_persistence_heartbeats_need_nothing_durable() -> None:
    follower = fresh(1, term=1)
    follower.step(Heartbeat(0, 2, 1, 1, 0))
    rd = drain(follower)
    assert [type(m) for m in rd.messages] == [HeartbeatResponse] and not rd.persisted_messages
