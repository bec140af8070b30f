"""The linearizability checker: known-bad histories are caught with a small witness, known-good
ones pass, and on random histories it agrees with trying every order."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftoral_lab.kv import History, check, linearizable
from raftoral_lab.kv.checker import search
from raftoral_lab.kv.history import operations

from .histories import brute_force, linearizable_history, sequence

# --- known bad ---------------------------------------------------------------------------------


def test_a_stale_read_after_a_completed_write_is_caught() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("ok", 0, None),
        ("put", 0, ("x", 2)), ("ok", 0, None),
        ("get", 1, "x"), ("ok", 1, 1),
    )  # fmt: skip
    result = check(history)
    assert not result.ok and not result
    assert result.key == "x"
    assert [str(op).split("  [")[0] for op in result.witness] == [
        "p0 put('x', 2) -> None",
        "p1 get('x') -> 1",
    ]
    text = str(result)
    assert "NOT linearizable: key 'x', first at event #5" in text
    assert "then p1 get('x') -> 1 cannot be placed" in text


def test_two_cas_from_the_same_expected_value_cannot_both_succeed() -> None:
    history = sequence(
        ("put", 0, ("x", 0)), ("ok", 0, None),
        ("cas", 1, ("x", 0, 1)), ("cas", 2, ("x", 0, 2)),
        ("ok", 1, True), ("ok", 2, True),
    )  # fmt: skip
    result = check(history)
    assert not result.ok
    assert {op.process for op in result.witness} == {1, 2}
    assert 0 in result.starts


def test_a_read_of_a_value_nobody_wrote() -> None:
    assert not linearizable(sequence(("get", 0, "x"), ("ok", 0, 7)))
    # found without a search, however many unknown outcomes make the search hard
    noise = linearizable_history(random.Random(2), operations=600, values=5, info_rate=0.1)
    history = History(events=list(noise.events))
    history.invoke(50, "get", "x")
    history.ok(50, 7)
    result = check(history)
    assert [op.process for op in result.witness] == [50]
    assert "This operation, whatever 'x' held before it" in str(result)
    assert 7 not in result.starts


def test_reads_that_go_back_in_time() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("get", 1, "x"), ("ok", 1, 1),
        ("get", 2, "x"), ("ok", 2, None),  # after a read saw 1, nobody may see the old value
        ("ok", 0, None),
    )  # fmt: skip
    result = check(history)
    assert not result.ok
    assert len(result.witness) == 3


def test_a_cas_that_failed_although_the_value_matched() -> None:
    history = sequence(
        ("put", 0, ("x", 3)), ("ok", 0, None),
        ("cas", 0, ("x", 3, 4)), ("ok", 0, False),
    )  # fmt: skip
    assert not linearizable(history)


def test_a_failed_write_never_happened() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("fail", 0, None),
        ("get", 1, "x"), ("ok", 1, 1),
    )  # fmt: skip
    assert not linearizable(history)


def test_an_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    history = sequence(
        ("get", 1, "x"), ("ok", 1, 5),
        ("put", 0, ("x", 5)), ("info", 0, None),
    )  # fmt: skip
    assert not linearizable(history)


def test_keys_are_checked_apart_and_the_bad_one_is_named() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("ok", 0, None),
        ("put", 1, ("y", 1)), ("ok", 1, None),
        ("get", 2, "x"), ("ok", 2, 1),
        ("get", 3, "y"), ("ok", 3, 2),
    )  # fmt: skip
    result = check(history)
    assert result.key == "y"
    assert result.keys == 2 and result.operations == 4


def test_a_violation_buried_in_a_long_history_gets_a_small_witness() -> None:
    rng = random.Random(5)
    good = linearizable_history(rng, operations=400, processes=4, values=4, info_rate=0.0)
    history = History(events=list(good.events))
    for process, steps in ((100, ("put", "x", (9,))), (101, ("get", "x", ()))):
        op, key, args = steps
        history.invoke(process, op, key, args)  # type: ignore[arg-type]
        history.ok(process, None if op == "put" else 0)  # 0 was written long ago
    result = check(history)
    assert not result.ok
    assert [op.process for op in result.witness] == [100, 101], str(result)
    assert result.prefix_end == len(history) - 1


def test_a_search_out_of_budget_says_undecided_not_wrong() -> None:
    history = sequence(
        *[step for v in range(6) for step in (("put", 0, ("x", v)), ("ok", 0, None))],
        ("get", 1, "x"), ("ok", 1, 3),
    )  # fmt: skip
    result = check(history, budget=2)
    assert not result.ok and result.key is None and result.undecided == ("x",)
    assert str(result).startswith("UNDECIDED")
    assert not check(history).ok and check(history).key == "x"


# --- known good --------------------------------------------------------------------------------


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (None, 1):
        history = sequence(
            ("put", 0, ("x", 1)), ("get", 1, "x"), ("ok", 1, seen), ("ok", 0, None),
        )  # fmt: skip
        assert check(history).ok


def test_overlapping_writes_and_reads_in_any_consistent_order() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("put", 1, ("x", 2)), ("get", 2, "x"),
        ("ok", 0, None), ("ok", 2, 1),      # 2 then 1 ...
        ("get", 3, "x"), ("ok", 1, None), ("ok", 3, 1),  # ... so 1 is the last value
        ("cas", 0, ("x", 1, 3)), ("cas", 1, ("x", 1, 4)),
        ("ok", 1, False), ("ok", 0, True),
        ("get", 2, "x"), ("ok", 2, 3),
    )  # fmt: skip
    assert check(history).ok


def test_an_unknown_write_may_have_happened() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("info", 0, None),
        ("get", 1, "x"), ("ok", 1, 1),
    )  # fmt: skip
    assert check(history).ok


def test_an_unknown_write_may_never_have_happened() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("info", 0, None),
        ("get", 1, "x"), ("ok", 1, None),
    )  # fmt: skip
    assert check(history).ok


def test_an_unknown_write_may_take_effect_late() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("info", 0, None),
        ("get", 1, "x"), ("ok", 1, None),
        ("put", 2, ("x", 2)), ("ok", 2, None),
        ("get", 1, "x"), ("ok", 1, 1),  # long after its client gave up
    )  # fmt: skip
    assert check(history).ok


def test_an_unknown_cas_and_a_never_completed_invocation() -> None:
    history = sequence(
        ("put", 0, ("x", 1)), ("ok", 0, None),
        ("cas", 1, ("x", 1, 2)), ("info", 1, None),
        ("get", 2, "x"), ("ok", 2, 2),
        ("put", 3, ("x", 7)),  # never completes: unknown
        ("get", 2, "x"), ("ok", 2, 7),
    )  # fmt: skip
    assert check(history).ok


def test_the_empty_history_and_an_initial_value() -> None:
    assert check(History()).ok
    history = sequence(("get", 0, "x"), ("ok", 0, 0))
    assert not linearizable(history)
    assert check(history, initial=0).ok


def test_one_true_and_one_int_are_different_values() -> None:
    history = sequence(("put", 0, ("x", True)), ("ok", 0, None), ("get", 1, "x"), ("ok", 1, 1))
    assert not linearizable(history)


def test_a_thousand_operation_history_checks() -> None:
    history = linearizable_history(
        random.Random(1), operations=1000, processes=5, keys=("x",), values=5, info_rate=0.03
    )
    assert len(history.operations()) == 1000
    assert check(history).ok


def test_a_malformed_history_is_refused() -> None:
    history = History()
    history.invoke(0, "get", "x")
    with pytest.raises(ValueError, match="already has an operation open"):
        history.invoke(0, "get", "x")
    with pytest.raises(ValueError, match="no operation open"):
        history.ok(1)
    assert [op.status for op in operations(history.events)] == ["info"]


# --- random histories --------------------------------------------------------------------------

RANDOM = settings(max_examples=300, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@RANDOM
@given(
    rng=st.randoms(use_true_random=False),
    size=st.integers(1, 60),
    processes=st.integers(1, 6),
    keys=st.sampled_from([("x",), ("x", "y"), ("x", "y", "z")]),
    values=st.integers(1, 4),
)
def test_histories_linearizable_by_construction_pass(
    rng: random.Random, size: int, processes: int, keys: tuple[str, ...], values: int
) -> None:
    history = linearizable_history(
        rng, operations=size, processes=processes, keys=keys, values=values, info_rate=0.1
    )
    result = check(history)
    assert result.ok, f"{result}\n{history}"


@st.composite
def small_histories(draw: st.DrawFn) -> History:
    """Any small history on one key, results drawn at random: often not linearizable."""
    history = History()
    open_ops: list[int] = []
    next_process = 0
    values = st.sampled_from([None, 0, 1])
    for _ in range(draw(st.integers(1, 12))):
        if open_ops and (len(open_ops) >= 3 or draw(st.booleans())):
            process = open_ops.pop(draw(st.integers(0, len(open_ops) - 1)))
            how = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
            invoked = next(e for e in reversed(history.events) if e.process == process)
            if how == "ok":
                result = draw(st.booleans()) if invoked.op == "cas" else draw(values)
                history.ok(process, None if invoked.op == "put" else result)
            elif how == "info":
                history.info(process)
            else:
                history.fail(process)
        else:
            op = draw(st.sampled_from(["get", "put", "cas"]))
            args = (
                () if op == "get" else tuple(draw(values) for _ in range(1 if op == "put" else 2))
            )
            history.invoke(next_process, op, "x", args)  # type: ignore[arg-type]
            open_ops.append(next_process)
            next_process += 1
    return history


@RANDOM
@given(history=small_histories())
def test_the_search_agrees_with_trying_every_order(history: History) -> None:
    ops = operations(history.events)
    expected = brute_force(ops)
    assert search(ops).ok == expected, str(history)
    result = check(history)
    assert result.ok == expected
    if not result.ok:
        # the witness is a piece of the history that fails by itself, from every start
        assert not brute_force(result.witness, result.starts), str(result)
        calls = {op.call for op in ops}
        assert {op.call for op in result.witness} <= calls
        assert len(result.witness) <= len([op for op in ops if op.status != "fail"])
