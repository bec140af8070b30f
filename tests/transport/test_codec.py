"""The wire codec: every message kind round-trips, and no input makes decode raise anything but
MalformedMessage (with a reason that names the problem)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftoral_lab.core.messages import (
    MESSAGE_KINDS,
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
from raftoral_lab.core.types import (
    ConfChange,
    ConfChangeOp,
    ConfState,
    Entry,
    EntryKind,
    Snapshot,
    SnapshotMeta,
)
from raftoral_lab.errors import MalformedMessage, TransportError
from raftoral_lab.transport.codec import (
    SCHEMA_VERSION,
    decode_batch,
    encode_batch,
    encode_batches,
    message_from_dict,
    message_to_dict,
)

SRC, DST = 1, 2

SNAPSHOT = Snapshot(
    SnapshotMeta(
        index=40, term=3, conf=ConfState(voters=frozenset({3, 1, 2}), learners=frozenset({5}))
    ),
    data=bytes(range(256)) * 4,
)

SAMPLES: list[Message] = [
    RequestVote(0, SRC, DST, term=4, last_log_index=10, last_log_term=3),
    RequestVote(0, SRC, DST, term=5, last_log_index=10, last_log_term=3, pre_vote=True),
    RequestVote(2, SRC, DST, term=6, last_log_index=0, last_log_term=0, transfer=True),
    VoteResponse(0, SRC, DST, term=4, granted=True),
    VoteResponse(1, SRC, DST, term=5, granted=False, pre_vote=True),
    AppendEntries(0, SRC, DST, 3, prev_log_index=0, prev_log_term=0, entries=(), leader_commit=0),
    AppendEntries(
        0,
        SRC,
        DST,
        term=3,
        prev_log_index=7,
        prev_log_term=2,
        entries=(
            Entry(8, 3, b"hello"),
            Entry(9, 3, b""),
            Entry(10, 3, ConfChange(ConfChangeOp.ADD_LEARNER, 4).encode(), EntryKind.CONF_CHANGE),
            Entry(11, 3, b'\x00\xff\n"{}'),
        ),
        leader_commit=8,
    ),
    AppendResponse(0, SRC, DST, term=3, success=True, match_index=11),
    AppendResponse(0, SRC, DST, term=3, success=False, match_index=7, hint_index=5, hint_term=2),
    Heartbeat(0, SRC, DST, term=3, commit=8),
    HeartbeatResponse(0, SRC, DST, term=3),
    InstallSnapshot(0, SRC, DST, term=3, snapshot=SNAPSHOT),
    InstallSnapshot(
        1, SRC, DST, 9, Snapshot(SnapshotMeta(0, 0, ConfState(frozenset({1}), frozenset())))
    ),
    TimeoutNow(0, SRC, DST, term=3),
]


def roundtrip(msgs: list[Message]) -> list[Message]:
    return decode_batch(encode_batch(SRC, msgs), expect_dst=DST)


def test_samples_cover_every_kind() -> None:
    assert {m.kind for m in SAMPLES} == set(MESSAGE_KINDS)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.kind)
def test_every_kind_round_trips(msg: Message) -> None:
    assert roundtrip([msg]) == [msg]
    assert message_from_dict(message_to_dict(msg)) == msg


def test_a_batch_keeps_order_and_types() -> None:
    out = roundtrip(SAMPLES)
    assert out == SAMPLES
    assert [type(m) for m in out] == [type(m) for m in SAMPLES]
    entries = out[6].entries  # type: ignore[union-attr]
    assert isinstance(entries, tuple) and entries[2].kind is EntryKind.CONF_CHANGE
    assert ConfChange.decode(entries[2].data) == ConfChange(ConfChangeOp.ADD_LEARNER, 4)


def test_wire_form_is_readable_json() -> None:
    """What a student sees with mosquitto_sub: kinds by name, base64 data, sorted id lists."""
    snap_msg = SAMPLES[11]
    doc = json.loads(encode_batch(SRC, [SAMPLES[6], snap_msg, SAMPLES[9]]))
    assert doc["v"] == SCHEMA_VERSION and doc["src"] == SRC
    append, snap, beat = doc["msgs"]
    assert beat == {"kind": "heartbeat", "group": 0, "src": 1, "dst": 2, "term": 3, "commit": 8}
    assert append["entries"][0] == {
        "index": 8,
        "term": 3,
        "data": base64.b64encode(b"hello").decode(),
    }
    assert append["entries"][2]["kind"] == "conf_change"
    assert snap["snapshot"]["meta"]["conf"] == {"voters": [1, 2, 3], "learners": [5]}
    assert base64.b64decode(snap["snapshot"]["data"]) == SNAPSHOT.data


def test_pre_vote_is_its_own_kind_on_the_wire() -> None:
    doc = json.loads(encode_batch(SRC, [SAMPLES[1], SAMPLES[4]]))
    assert [m["kind"] for m in doc["msgs"]] == ["pre_vote", "pre_vote_response"]


def test_encoding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a Raft message"):
        encode_batch(SRC, ["heartbeat"])  # type: ignore[list-item]


# --- malformed input: every class has a reason -----------------------------------------------


def payload(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def good_doc() -> dict[str, Any]:
    return json.loads(encode_batch(SRC, [SAMPLES[9]]))  # type: ignore[no-any-return]


def with_msg(**changes: Any) -> bytes:
    doc = good_doc()
    doc["msgs"][0].update(changes)
    return payload(doc)


def without(field: str) -> bytes:
    doc = good_doc()
    del doc["msgs"][0][field]
    return payload(doc)


def append_doc(entries: Any) -> bytes:
    doc = json.loads(encode_batch(SRC, [SAMPLES[6]]))
    doc["msgs"][0]["entries"] = entries
    return payload(doc)


def snapshot_doc(path: list[str], value: Any) -> bytes:
    doc = json.loads(encode_batch(SRC, [SAMPLES[11]]))
    target = doc["msgs"][0]["snapshot"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload(doc)


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "not JSON"),
    ("not json", b"hello raft", "not JSON"),
    ("invalid utf-8", b'{"v": 1, "src": "\xff"}', "not JSON"),
    ("truncated", encode_batch(SRC, [SAMPLES[9]])[:-3], "not JSON"),
    ("array", b"[1, 2]", "must be a JSON object, got array"),
    ("string", b'"x"', "must be a JSON object, got string"),
    ("null", b"null", "must be a JSON object, got null"),
    ("no version", payload({"src": 1, "msgs": []}), "'v'"),
    ("version string", payload({"v": "1", "src": 1, "msgs": []}), "'v'"),
    ("newer version", payload({"v": SCHEMA_VERSION + 1, "src": 1, "msgs": []}), "newer than ours"),
    ("version zero", payload({"v": 0, "src": 1, "msgs": []}), "not supported"),
    ("no src", payload({"v": 1, "msgs": []}), "missing field 'src'"),
    ("msgs not list", payload({"v": 1, "src": 1, "msgs": {}}), "'msgs' must be an array"),
    ("msg not object", payload({"v": 1, "src": 1, "msgs": [3]}), "msgs[0] must be an object"),
    ("no kind", without("kind"), "'kind' must be a string"),
    ("unknown kind", with_msg(kind="append_everything"), "unknown message kind"),
    ("missing term", without("term"), "missing field 'term'"),
    ("missing commit", without("commit"), "missing field 'commit'"),
    ("term as string", with_msg(term="3"), "'term' must be a non-negative integer"),
    ("term as float", with_msg(term=3.0), "'term' must be a non-negative integer"),
    ("term as bool", with_msg(term=True), "'term' must be a non-negative integer"),
    ("negative term", with_msg(term=-1), "'term' must be a non-negative integer"),
    ("group null", with_msg(group=None), "'group' must be a non-negative integer"),
    (
        "granted as int",
        payload({"v": 1, "src": 1, "msgs": [{**message_to_dict(SAMPLES[3]), "granted": 1}]}),
        "'granted' must be true or false",
    ),
    ("dst not us", with_msg(dst=3), "for node 3, not for this node (2)"),
    ("src mismatch", with_msg(src=4), "claims src 4 in a batch from node 1"),
    ("entries not list", append_doc("none"), "'entries' must be an array"),
    ("entry not object", append_doc([1]), "entries[0] must be an object"),
    ("entry bad base64", append_doc([{"index": 8, "term": 3, "data": "!!"}]), "not valid base64"),
    ("entry data not str", append_doc([{"index": 8, "term": 3, "data": 5}]), "base64 string"),
    (
        "entry data non-ascii",
        append_doc([{"index": 8, "term": 3, "data": "é"}]),
        "not valid base64",
    ),
    (
        "entry bad kind",
        append_doc([{"index": 8, "term": 3, "data": "", "kind": "x"}]),
        "'normal' or 'conf_change'",
    ),
    ("entry missing index", append_doc([{"term": 3, "data": ""}]), "missing field 'index'"),
    ("snapshot not object", snapshot_doc(["meta"], []), "'meta' must be an object"),
    ("snapshot voters", snapshot_doc(["meta", "conf", "voters"], ["a"]), "must hold node ids"),
    ("snapshot learners", snapshot_doc(["meta", "conf", "learners"], 3), "must be an array"),
    ("snapshot data", snapshot_doc(["data"], None), "base64 string"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "JSON"),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [(r, why) for _, r, why in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_input_is_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_batch(raw, expect_dst=DST)
    assert reason in str(info.value)


def test_oversized_payload_is_refused_before_parsing() -> None:
    raw = encode_batch(SRC, [SAMPLES[6]])
    with pytest.raises(MalformedMessage, match="over the limit of 100 bytes"):
        decode_batch(raw, expect_dst=DST, max_bytes=100)


def test_not_bytes_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="must be bytes"):
        decode_batch("{}", expect_dst=DST)  # type: ignore[arg-type]


def test_malformed_is_a_transport_error() -> None:
    assert issubclass(MalformedMessage, TransportError)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    doc = good_doc()
    doc["trace_id"] = "abc"
    doc["msgs"][0]["priority"] = 7
    assert decode_batch(payload(doc), expect_dst=DST) == [SAMPLES[9]]


def test_empty_batch_decodes_to_nothing() -> None:
    assert decode_batch(encode_batch(SRC, []), expect_dst=DST) == []


# --- splitting by size ------------------------------------------------------------------------


def test_encode_batches_splits_under_the_limit_and_keeps_order() -> None:
    msgs: list[Message] = [Heartbeat(0, SRC, DST, 1, i) for i in range(200)]
    payloads, too_large = encode_batches(SRC, msgs, max_bytes=2000)
    assert not too_large and len(payloads) > 1
    assert all(len(p) <= 2000 for p, _ in payloads)
    decoded = [m for p, _ in payloads for m in decode_batch(p, expect_dst=DST)]
    assert decoded == msgs
    assert [m for _, chunk in payloads for m in chunk] == msgs


def test_encode_batches_reports_a_message_too_large_alone() -> None:
    big = AppendEntries(0, SRC, DST, 1, 0, 0, (Entry(1, 1, b"x" * 5000),), 0)
    small: list[Message] = [Heartbeat(0, SRC, DST, 1, 0), big, Heartbeat(0, SRC, DST, 1, 1)]
    payloads, too_large = encode_batches(SRC, small, max_bytes=1024)
    assert too_large == [big]
    assert [m for p, _ in payloads for m in decode_batch(p, expect_dst=DST)] == [small[0], small[2]]


# --- property tests ---------------------------------------------------------------------------

ids = st.integers(min_value=0, max_value=2**40)
entries = st.lists(
    st.builds(Entry, ids, ids, st.binary(max_size=64), st.sampled_from(list(EntryKind))),
    max_size=20,
).map(tuple)
id_sets = st.frozensets(st.integers(0, 1000), max_size=6)
snapshots = st.builds(
    Snapshot,
    st.builds(SnapshotMeta, ids, ids, st.builds(ConfState, id_sets, id_sets)),
    st.binary(max_size=300),
)
common = {"group": ids, "src": st.just(SRC), "dst": st.just(DST), "term": ids}
messages = st.one_of(
    st.builds(
        RequestVote,
        **common,
        last_log_index=ids,
        last_log_term=ids,
        pre_vote=st.booleans(),
        transfer=st.booleans(),
    ),
    st.builds(VoteResponse, **common, granted=st.booleans(), pre_vote=st.booleans()),
    st.builds(
        AppendEntries,
        **common,
        prev_log_index=ids,
        prev_log_term=ids,
        entries=entries,
        leader_commit=ids,
    ),
    st.builds(
        AppendResponse,
        **common,
        success=st.booleans(),
        match_index=ids,
        hint_index=ids,
        hint_term=ids,
    ),
    st.builds(Heartbeat, **common, commit=ids),
    st.builds(HeartbeatResponse, **common),
    st.builds(InstallSnapshot, **common, snapshot=snapshots),
    st.builds(TimeoutNow, **common),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=8))
def test_any_batch_round_trips(msgs: list[Message]) -> None:
    assert roundtrip(msgs) == msgs


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        decode_batch(raw, expect_dst=DST)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_never_raises_anything_else(value: Any) -> None:
    with contextlib.suppress(MalformedMessage):
        decode_batch(json.dumps(value).encode(), expect_dst=DST)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_valid_payloads_never_raise_anything_else(
    msg: Message, data: st.DataObject
) -> None:
    """Replace one value somewhere inside a valid payload: decode returns or refuses cleanly."""
    doc = json.loads(encode_batch(SRC, [msg]))
    containers: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            containers.append(node)
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    walk(doc)
    target = data.draw(st.sampled_from(containers))
    if not target:
        return
    keys = list(target) if isinstance(target, dict) else list(range(len(target)))
    key = data.draw(st.sampled_from(keys))
    if data.draw(st.booleans(), label="delete") and isinstance(target, dict):
        del target[key]
    else:
        target[key] = data.draw(json_values)
    try:
        out = decode_batch(payload(doc), expect_dst=DST)
    except MalformedMessage:
        return
    assert all(m.dst == DST and m.src == SRC for m in out)
