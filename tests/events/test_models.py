"""The event schema: every kind round-trips, and every bad event is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import ValidationError

from raftoral_lab.errors import RaftoralError
from raftoral_lab.events import (
    EVENT_KINDS,
    EVENT_TYPES,
    MESSAGE_KINDS,
    SCHEMA_VERSION,
    WORKFLOW_KINDS,
    EventBase,
    EventSchemaError,
    Partitioned,
    RoleChanged,
    VoteCast,
    event_to_json,
    make_event,
    parse_event,
)

BASE_FIELDS = set(EventBase.model_fields)
VOTE = {"candidate": 2, "term": 3, "granted": False, "pre_vote": True, "reason": "stale term"}


def sample(annotation: Any) -> Any:
    """A non-default value of a field's type, so a new kind needs no hand-written example;
    a field type this does not know fails the round-trip test until it is taught here."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation in (bool, int, float, str):
        return {bool: True, int: 7, float: 2.5, str: "some text"}[annotation]
    if origin is Annotated:
        return sample(args[0])
    if origin is Literal:
        return args[-1]
    if origin is tuple and args[-1] is Ellipsis:
        return (sample(args[0]), sample(args[0]))
    if origin in (Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)))
    raise TypeError(f"no sample value for {annotation!r}: teach sample() this type")


def example(kind: str) -> dict[str, Any]:
    cls = EVENT_TYPES[kind]
    return {
        name: sample(info.annotation)
        for name, info in cls.model_fields.items()
        if name not in BASE_FIELDS
    }


def make(kind: str, fields: dict[str, Any]) -> Any:
    return make_event(kind, fields, node=1, group=2, seq=41, ts=12.75, tick=1275)


def test_registry_is_the_union() -> None:
    # A model left out of the union would be neither parsed nor tested.
    assert set(EVENT_TYPES.values()) == set(EventBase.__subclasses__())
    assert tuple(EVENT_TYPES) == EVENT_KINDS
    assert all(cls.model_fields["kind"].default == kind for kind, cls in EVENT_TYPES.items())


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_kind_round_trips_through_json(kind: str) -> None:
    event = make(kind, example(kind))
    assert type(event) is EVENT_TYPES[kind]
    assert (event.kind, event.v, event.node, event.group, event.seq, event.tick) == (
        kind,
        SCHEMA_VERSION,
        1,
        2,
        41,
        1275,
    )
    line = event_to_json(event)
    assert "\n" not in line
    back = parse_event(line)
    assert back == event and type(back) is type(event)
    assert parse_event(line.encode()) == event


def test_discriminated_parsing_picks_the_class() -> None:
    role = parse_event(
        '{"kind": "role_changed", "node": 3, "seq": 0, "ts": 1, "role": "leader",'
        ' "term": 4, "leader": 3}'
    )
    assert isinstance(role, RoleChanged) and role.role == "leader" and role.group == 0
    part = parse_event(
        '{"kind": "partitioned", "node": 0, "seq": 5, "ts": 2, "sides": [[1], [2, 3]]}'
    )
    assert isinstance(part, Partitioned) and part.sides == ((1,), (2, 3))
    assert isinstance(make("vote_cast", VOTE), VoteCast)


def test_events_are_frozen_and_hashable() -> None:
    event = make("partitioned", {"sides": [[1, 2], [3]]})
    with pytest.raises(ValidationError, match="frozen"):
        event.node = 9
    assert event.sides == ((1, 2), (3,))  # lists in, tuples out: frozen all the way down
    assert hash(event) == hash(make("partitioned", {"sides": ((1, 2), (3,))}))


def test_unknown_kind_is_named() -> None:
    with pytest.raises(EventSchemaError, match=r"unknown event kind 'vote_casted'.*'vote_cast'"):
        make("vote_casted", VOTE)
    with pytest.raises(EventSchemaError, match="unknown event kind 'zzz'; known kinds: ") as info:
        parse_event('{"kind": "zzz", "node": 1, "seq": 0, "ts": 0}')
    assert info.value.kind == "zzz" and info.value.fields == ("kind",)
    assert isinstance(info.value, RaftoralError) and isinstance(info.value, ValueError)
    with pytest.raises(EventSchemaError, match="no 'kind' field"):
        parse_event('{"node": 1, "seq": 0, "ts": 0}')


@pytest.mark.parametrize(
    ("field", "value"),
    [("term", "3"), ("term", 3.0), ("granted", 1), ("candidate", None), ("reason", 5)],
)
def test_wrong_field_type_is_named(field: str, value: Any) -> None:
    # Strict: no silent "3" -> 3 or 1 -> True that would hide a producer's bug.
    with pytest.raises(EventSchemaError, match=rf"'vote_cast'.*field '{field}'") as info:
        make("vote_cast", {**VOTE, field: value})
    assert info.value.kind == "vote_cast" and info.value.fields == (field,)


def test_wrong_field_in_json_is_named() -> None:
    line = event_to_json(make("membership_changed", example("membership_changed")))
    bad = json.loads(line) | {"voters": [1, "two"]}
    with pytest.raises(
        EventSchemaError, match=r"'membership_changed'.*field 'voters\[1\]'"
    ) as info:
        parse_event(json.dumps(bad))
    assert info.value.fields == ("voters",)


def test_missing_extra_and_clashing_fields_are_named() -> None:
    with pytest.raises(EventSchemaError, match="field 'reason' is missing"):
        make("vote_cast", {k: v for k, v in VOTE.items() if k != "reason"})
    with pytest.raises(EventSchemaError, match="'color' is not a field of 'vote_cast'"):
        make("vote_cast", {**VOTE, "color": "red"})
    with pytest.raises(EventSchemaError, match="'node'") as info:
        make("commit_advanced", {"commit_index": 3, "node": 2})
    assert info.value.fields == ("node",)


def test_future_schema_version_is_refused() -> None:
    data = json.loads(event_to_json(make("vote_cast", VOTE))) | {"v": SCHEMA_VERSION + 1}
    with pytest.raises(EventSchemaError, match=r"schema version 2 is newer.*upgrade") as info:
        parse_event(json.dumps(data))
    assert "v" in info.value.fields
    # a kind that only exists in the newer version says so too
    with pytest.raises(EventSchemaError, match="schema version 2"):
        parse_event('{"kind": "brand_new", "v": 2, "node": 1, "seq": 0, "ts": 0}')


def test_not_an_event_object() -> None:
    for text in ("not json", "[1, 2]"):
        with pytest.raises(EventSchemaError, match="not a JSON event object"):
            parse_event(text)


def test_events_import_nothing_of_raft() -> None:
    # the dashboard reads events without the protocol, and without pandas or Bokeh until a
    # DataFrame or a diagram is asked for
    code = "import sys, raftoral_lab.events; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = out.stdout.split()
    ours = {m for m in modules if m.startswith("raftoral_lab.")}
    assert all(m == "raftoral_lab.errors" or m.startswith("raftoral_lab.events") for m in ours)
    assert not {m for m in modules if m.split(".")[0] in ("pandas", "bokeh")}


def test_workflow_kinds_are_the_kinds_with_a_workflow_id() -> None:
    with_id = {k for k, cls in EVENT_TYPES.items() if "workflow_id" in cls.model_fields}
    assert with_id == WORKFLOW_KINDS
    assert {"message_sent", "message_delivered", "message_dropped"} == MESSAGE_KINDS


def test_message_events_take_an_optional_msg_id() -> None:
    fields = {"message": "heartbeat", "src": 1, "dst": 2}
    assert make("message_sent", fields).msg_id is None
    sent = make("message_sent", {**fields, "msg_id": 17})
    assert sent.msg_id == 17 and parse_event(event_to_json(sent)) == sent


def test_the_drop_reasons_documented_are_reasons_producers_give() -> None:
    """The transports' reasons, the node's `malformed` and the simulator's `node_down`: no
    fault filter drops by message type, so no "filter" reason is named."""
    import re

    from raftoral_lab.events import MessageDropped
    from raftoral_lab.transport.stats import DropReason

    named = set(re.findall(r'"(\w+)"', MessageDropped.__doc__ or ""))
    assert named <= {reason.value for reason in DropReason} | {"malformed", "node_down"}
    assert {"partition", "drop_rate", "node_down", "malformed", "bad_signature"} <= named
