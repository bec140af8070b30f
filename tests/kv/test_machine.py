"""The key-value state machine: commands, exactly-once sessions, snapshots."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftoral_lab.core import Entry, EntryKind
from raftoral_lab.kv import Command, KVStateMachine
from raftoral_lab.node.state_machine import StateMachine


def entry(command: Command | bytes, index: int = 1) -> Entry:
    data = command if isinstance(command, bytes) else command.encode()
    return Entry(index=index, term=1, data=data)


def test_it_is_a_node_state_machine() -> None:
    machine: StateMachine = KVStateMachine()  # the protocol, checked by mypy
    machine.restore(b"")
    assert json.loads(machine.snapshot())["data"] == {}


def test_get_put_and_cas() -> None:
    kv = KVStateMachine()
    assert kv.apply(entry(Command("get", "x", "a", 1))) == {"value": None}
    assert kv.apply(entry(Command("put", "x", "a", 2, value=1))) == {"value": 1}
    assert kv.apply(entry(Command("cas", "x", "a", 3, value=2, expected=0))) == {
        "swapped": False,
        "value": 1,
    }
    assert kv.apply(entry(Command("cas", "x", "a", 4, value=2, expected=1))) == {
        "swapped": True,
        "value": 2,
    }
    assert kv.apply(entry(Command("cas", "y", "a", 5, value=1, expected=None))) == {
        "swapped": True,
        "value": 1,
    }
    assert kv.data == {"x": 2, "y": 1}


def test_true_is_not_one() -> None:
    kv = KVStateMachine()
    kv.apply(entry(Command("put", "x", "a", 1, value=1)))
    answer = kv.apply(entry(Command("cas", "x", "a", 2, value=5, expected=True)))
    assert answer == {"swapped": False, "value": 1}


def test_a_repeated_request_gets_its_first_answer_and_no_second_effect() -> None:
    kv = KVStateMachine()
    put = Command("put", "x", "a", 1, value=1)
    assert kv.apply(entry(put)) == {"value": 1}
    kv.apply(entry(Command("put", "x", "b", 1, value=2)))
    assert kv.apply(entry(put)) == {"value": 1}  # the retry arrives late
    assert kv.data == {"x": 2}
    assert kv.repeats == 1


def test_an_older_request_is_refused_as_stale() -> None:
    kv = KVStateMachine()
    kv.apply(entry(Command("put", "x", "a", 1, value=1)))
    kv.apply(entry(Command("put", "x", "a", 2, value=2)))
    answer = kv.apply(entry(Command("put", "x", "a", 1, value=1)))
    assert isinstance(answer, dict) and answer["error"] == "stale"
    assert kv.data == {"x": 2}


def test_the_session_table_survives_a_snapshot() -> None:
    kv = KVStateMachine()
    cas = Command("cas", "x", "a", 1, value=1, expected=None)
    first = kv.apply(entry(cas))
    restored = KVStateMachine()
    restored.restore(kv.snapshot())
    assert restored.data == kv.data and restored.sessions == kv.sessions
    assert restored.apply(entry(cas)) == first  # deduplicated after the restore too
    assert restored.data == {"x": 1}
    restored.restore(b"")
    assert restored.data == {} and restored.sessions == {}


def test_a_foreign_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="key-value snapshot"):
        KVStateMachine().restore(json.dumps(["a", "b"]).encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"op": "get", "key": "x", "client": "a"}', "missing field 'request'"),
        (b'{"op": "del", "key": "x", "client": "a", "request": 1}', "unknown op"),
        (b'{"op": "get", "key": 3, "client": "a", "request": 1}', "key must be a string"),
        (b'{"op": "get", "key": "x", "client": "", "request": 1}', "client must be"),
        (b'{"op": "get", "key": "x", "client": "a", "request": true}', "request must be"),
        (b'{"op": "get", "key": "x", "client": "a", "request": 0}', "request must be"),
        (b'{"op": "put", "key": "x", "client": "a", "request": 1, "value": [1]}', "scalar"),
        (b'{"op": "get", "key": "x", "client": "a", "request": 1, "ttl": 3}', "unknown field"),
    ],
)
def test_a_bad_command_changes_nothing_and_says_why(data: bytes, message: str) -> None:
    kv = KVStateMachine()
    kv.apply(entry(Command("put", "x", "a", 1, value=1)))
    before = kv.snapshot()
    answer = kv.apply(entry(data))
    assert isinstance(answer, dict) and answer["error"] == "bad_command"
    assert message in answer["message"]
    assert kv.snapshot() == before


def test_membership_and_empty_entries_are_not_commands() -> None:
    kv = KVStateMachine()
    assert kv.apply(Entry(2, 1, b"add_learner:4", EntryKind.CONF_CHANGE)) is None
    assert kv.apply(Entry(3, 2, b"")) is None
    assert kv.data == {} and kv.sessions == {}


values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b"]))
commands = st.builds(
    Command,
    op=st.sampled_from(["get", "put", "cas"]),
    key=st.sampled_from(["x", "y"]),
    client=st.sampled_from(["c1", "c2", "c3"]),
    request=st.integers(1, 6),
    value=values,
    expected=values,
)


@settings(max_examples=200, deadline=None, print_blob=True)
@given(command=commands)
def test_commands_survive_the_wire(command: Command) -> None:
    decoded = Command.decode(command.encode())
    assert decoded.encode() == command.encode()
    assert (decoded.op, decoded.key, decoded.client, decoded.request) == (
        command.op,
        command.key,
        command.client,
        command.request,
    )


@settings(max_examples=200, deadline=None, print_blob=True)
@given(log=st.lists(commands, max_size=40), cut=st.integers(0, 40))
def test_a_replica_restored_from_a_snapshot_answers_like_the_others(
    log: list[Command], cut: int
) -> None:
    """Every replica must answer alike, whether it applied the whole log or a snapshot and
    the rest: that is what makes the answers of any node the answers of the store."""
    cut = min(cut, len(log))
    whole, early = KVStateMachine(), KVStateMachine()
    for index, command in enumerate(log[:cut], start=1):
        assert whole.apply(entry(command, index)) == early.apply(entry(command, index))
    late = KVStateMachine()
    late.restore(early.snapshot())
    for index, command in enumerate(log[cut:], start=cut + 1):
        assert whole.apply(entry(command, index)) == late.apply(entry(command, index))
    assert whole.snapshot() == late.snapshot()
