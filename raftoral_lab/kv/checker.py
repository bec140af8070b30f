"""Is a key-value history linearizable? A Wing-Gong search with memoization, key by key.

Linearizable means: each operation can be given one instant between its invocation and its
completion such that, taken in the order of those instants, the operations are a correct
sequential run of the store (every get returns the last value put, every cas swaps exactly when
the value equals its expected one).

Linearizability is *compositional* (Herlihy & Wing): a history is linearizable iff its
sub-history on each key is, so each key is checked alone as one register, a far smaller search.

The search (Wing & Gong 1993, with the cache of Lowe 2017, as in Porcupine) builds an order
one operation at a time, depth first. The operations that may come next are those invoked
before the earliest completion still pending (that operation must be placed before anything
invoked after it returned). Try each: apply it to the register; if its result fits, place it
and go deeper; if none fits, undo the last placement and try its next alternative. The
history is linearizable once every completed operation is placed. A cache of configurations
(operations placed, register value) skips a state reached before by another order: its
future is the same, and it failed.

Unknown outcomes (`info`) complete after everything else, so they can be placed anywhere after
their invocation, or last, which is the same as "it never happened" (as in Knossos and
Porcupine); their results are not checked. The search tries them only after the completed
operations, counts a configuration with more of them placed as no better than one with fewer,
and tries only the first of several alike. They can still make it exponential, so a search
has a budget and may answer "undecided". `fail`ed operations did not happen: left out.

A failure comes with a witness: a few operations that by themselves have no valid order,
found by cutting the history down only in ways that keep it wrong (see `shrink`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from raftoral_lab.kv.history import History, HistoryEvent, Operation, operations
from raftoral_lab.kv.machine import Value

State = tuple[str, Value]
"""A register value tagged with its type, so that 1, 1.0 and True stay different states."""


def _state(value: Value) -> State:
    return (type(value).__name__, value)


def step(state: State, op: Operation) -> tuple[bool, State]:
    """Apply `op` to a register holding `state`: (its observed result fits, new state)."""
    known = op.status == "ok"
    if op.op == "get":
        return (not known or _state(op.result) == state), state
    if op.op == "put":
        return True, _state(op.args[0])
    expected, new = op.args
    swaps = _state(expected) == state
    if known and op.result is not swaps:
        return False, state
    return True, (_state(new) if swaps else state)


@dataclass(frozen=True)
class Search:
    """One register's search: `ok`, or the longest order found and the operation that could
    not be placed after it."""

    ok: bool
    gave_up: bool = False
    """The search met its budget before an answer: `ok` is False but nothing is proven."""
    configurations: int = 0
    start: Value = None
    """The value the longest order starts from."""
    longest: tuple[Operation, ...] = ()
    value: Value = None
    """The register after `longest`."""
    stuck: Operation | None = None


DEFAULT_BUDGET = 100_000
"""Configurations one search may visit before it gives up (a few seconds). Operations of
unknown outcome make the search exponential in the worst case, as in Knossos and Porcupine:
each may or may not have happened, at any time after its invocation."""


def search(
    ops: Sequence[Operation],
    starts: Iterable[Value] = (None,),
    *,
    budget: int | None = DEFAULT_BUDGET,
) -> Search:
    """The Wing-Gong-Lowe search on the operations of one register: is there an order from
    one of the `starts` values? (A whole history starts from one value; a window cut out of
    it may start from any value the register could hold there.) After `budget`
    configurations it gives up (`gave_up`); None: no limit."""
    # Unknown gets, and unknown cas that would write what they expect, change nothing and
    # return nothing checked: they fit anywhere.
    ops = [op for op in ops if op.status != "fail" and (op.status == "ok" or op.changes)]
    end = max((op.ret or op.call for op in ops), default=0) + 1
    # The events as a doubly linked list: entry 0 is the head, then calls and returns in
    # real-time order; unknown completions go after everything, in any order.
    order = sorted(
        [(op.call, True, i) for i, op in enumerate(ops)]
        + [(end + i if op.ret is None else op.ret, False, i) for i, op in enumerate(ops)]
    )
    is_call = [False] + [call for _, call, _ in order]
    op_of = [-1] + [i for _, _, i in order]
    nxt = [*range(1, len(order) + 1), -1]
    prv = list(range(-1, len(order)))
    call_entry, ret_entry = [0] * len(ops), [0] * len(ops)
    for entry, (_, call, i) in enumerate(order, start=1):
        (call_entry if call else ret_entry)[i] = entry
    known = [op.status == "ok" for op in ops]
    # Unknown operations alike (same op, same arguments) can swap places: try the first only.
    kind = [(op.op, tuple(_state(a) for a in op.args)) for op in ops]

    def lift(i: int) -> None:  # take ops[i]'s call and return out of the list
        for e in (call_entry[i], ret_entry[i]):
            nxt[prv[e]] = nxt[e]
            if nxt[e] != -1:
                prv[nxt[e]] = prv[e]

    def unlift(i: int) -> None:  # put them back (in reverse order: dancing links)
        for e in (ret_entry[i], call_entry[i]):
            nxt[prv[e]] = e
            if nxt[e] != -1:
                prv[nxt[e]] = e

    def candidates() -> tuple[list[int], int]:
        """Operations that may come next (invoked before the first pending completion),
        known ones first, and the operation of that completion."""
        first, later, alike = [], [], set()
        entry = nxt[0]
        while entry != -1 and is_call[entry]:
            i = op_of[entry]
            if known[i]:
                first.append(i)
            elif kind[i] not in alike:
                alike.add(kind[i])
                later.append(i)
            entry = nxt[entry]
        return first + later, op_of[entry] if entry != -1 else -1

    # Configurations that failed (or are being explored): (known placed, value) -> the sets
    # of unknown operations placed. Having placed more unknowns never helps (an unknown can
    # always go last), so a configuration with a superset of a failed one fails too.
    failed: dict[tuple[int, State], list[int]] = {}
    visited = 0

    def new_configuration(placed: int, unknown: int, value: State) -> bool:
        nonlocal visited
        sets = failed.setdefault((placed, value), [])
        if any(earlier & ~unknown == 0 for earlier in sets):
            return False
        sets.append(unknown)
        visited += 1
        return True

    to_place = sum(known)
    longest: tuple[State, list[int], State, int] | None = None
    for start in dict.fromkeys(_state(value) for value in starts):
        if not new_configuration(0, 0, start):
            continue
        state, placed, unknown, left = start, 0, 0, to_place
        path: list[tuple[int, State]] = []  # (op placed, register before it)
        frames = [(*candidates(), 0)]  # (candidates, the op that must come, next to try)
        while frames:
            if left == 0:  # every known operation placed; unknown ones can go last
                return Search(True, configurations=visited)
            if budget is not None and visited > budget:
                return Search(False, gave_up=True, configurations=visited)
            options, due, tried = frames[-1]
            if tried == len(options):  # nothing fits here: undo the last placement
                if longest is None or len(path) > len(longest[1]):
                    longest = (start, [i for i, _ in path], state, due)
                frames.pop()
                if path:
                    i, state = path.pop()
                    unlift(i)
                    if known[i]:
                        placed &= ~(1 << i)
                        left += 1
                    else:
                        unknown &= ~(1 << i)
                continue
            frames[-1] = (options, due, tried + 1)
            i = options[tried]
            fits, after = step(state, ops[i])
            now_placed = placed | 1 << i if known[i] else placed
            now_unknown = unknown if known[i] else unknown | 1 << i
            if fits and new_configuration(now_placed, now_unknown, after):
                path.append((i, state))
                state, placed, unknown = after, now_placed, now_unknown
                left -= known[i]
                lift(i)
                frames.append((*candidates(), 0))
    if longest is None:
        return Search(False, configurations=visited)
    start, done, value, stuck = longest
    return Search(
        False, False, visited, start[1], tuple(ops[j] for j in done), value[1], ops[stuck]
    )


@dataclass(frozen=True)
class CheckResult:
    """`ok`; or the key that breaks linearizability, with a small witness of why; or, when a
    search ran out of budget and no key was proven wrong, the keys left `undecided`."""

    ok: bool
    operations: int
    keys: int
    key: str | None = None
    witness: tuple[Operation, ...] = ()
    """A few operations of that key that have no valid order by themselves (see `shrink`)."""
    starts: tuple[Value, ...] = ()
    """The values the key may hold where the witness begins."""
    prefix_end: int | None = None
    """The event after which the history first stopped being linearizable."""
    explanation: Search | None = None
    undecided: tuple[str, ...] = ()
    """Keys whose search gave up (see `DEFAULT_BUDGET`)."""

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable: {self.operations} operations on {self.keys} keys"
        if self.key is None:
            return (
                f"UNDECIDED: the search gave up on key(s) {', '.join(map(repr, self.undecided))}"
                " within its budget; no key was proven wrong. Operations of unknown outcome "
                "make it exponential: check a shorter history, or raise `budget`."
            )
        if not self.witness:  # checked without `minimize`
            lines = [f"NOT linearizable: key {self.key!r} (minimize=True gives a witness)."]
        else:
            if len(self.starts) == 1:
                start = f"with {self.key!r} starting as {self.starts[0]!r}"
            else:
                them = "them" if len(self.witness) > 1 else "it"
                values = ", ".join(map(repr, self.starts))
                start = f"whatever {self.key!r} held before {them} ({values})"
            lines = [
                f"NOT linearizable: key {self.key!r}, first at event #{self.prefix_end}. "
                + (
                    f"This operation, {start}, cannot return what it returned:"
                    if len(self.witness) == 1
                    else f"These {len(self.witness)} operations, {start}, have no order that "
                    "respects real time (an operation that completed before another was "
                    "invoked comes first) and gives every operation the result it returned:"
                ),
                *(f"  {op}" for op in self.witness),
            ]
        search = self.explanation
        if search is not None and search.stuck is not None:
            done = ", ".join(_short(op) for op in search.longest) or "nothing"
            lines.append(
                f"The longest order found, from {search.start!r}: {done}, leaving "
                f"{search.value!r}; then {_short(search.stuck)} cannot be placed."
            )
        return "\n".join(lines)


def _short(op: Operation) -> str:
    return str(op).split("  [", 1)[0]


def check(
    history: History | Sequence[HistoryEvent],
    *,
    initial: Value = None,
    minimize: bool = True,
    budget: int | None = DEFAULT_BUDGET,
) -> CheckResult:
    """Check every key of `history` (keys start as `initial`, None: absent). With `minimize`,
    a failure comes with a small witness (a few more searches, on the failing key only).
    `budget` bounds each search (None: no limit)."""
    events = history.events if isinstance(history, History) else list(history)
    ops = operations(events)
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    undecided: list[str] = []
    for key in sorted(by_key):
        impossible = _read_from_nowhere(by_key[key], initial)
        if impossible is not None:
            witness = Witness(*impossible)
            return CheckResult(
                False,
                len(ops),
                len(by_key),
                key,
                tuple(witness.ops),
                witness.starts,
                witness.prefix_end,
                search(witness.ops, witness.starts),
            )
        result = search(by_key[key], (initial,), budget=budget)
        if result.ok:
            continue
        if result.gave_up:
            undecided.append(key)
            continue
        if not minimize:
            return CheckResult(False, len(ops), len(by_key), key, explanation=result)
        witness = shrink(by_key[key], initial, budget=budget)
        return CheckResult(
            False,
            len(ops),
            len(by_key),
            key,
            tuple(witness.ops),
            witness.starts,
            witness.prefix_end,
            search(witness.ops, witness.starts, budget=budget),
        )
    return CheckResult(not undecided, len(ops), len(by_key), undecided=tuple(undecided))


def linearizable(history: History | Sequence[HistoryEvent], *, initial: Value = None) -> bool:
    """True or False, searching as long as it takes."""
    return check(history, initial=initial, minimize=False, budget=None).ok


# --- a small counter-example ---------------------------------------------------------------


@dataclass(frozen=True)
class Witness:
    ops: list[Operation]
    starts: tuple[Value, ...]
    prefix_end: int


def _unknown(op: Operation) -> Operation:
    return Operation(
        op.process, op.op, op.key, op.args, "info", None, op.call, None, op.call_time, None
    )


def before(ops: Sequence[Operation], position: int) -> list[Operation]:
    """The history as it stood just after event `position`: later invocations are gone, and
    operations still open then have an unknown outcome."""
    return [
        op if op.ret is None or op.ret <= position else _unknown(op)
        for op in ops
        if op.call <= position
    ]


def since(
    ops: Sequence[Operation], position: int, initial: Value
) -> tuple[list[Operation], tuple[Value, ...]]:
    """The history from a quiet `position` on (no known operation open across it): the
    operations invoked from there, the unknown ones invoked before, and the values the
    register may hold there (the initial one, or one written before)."""
    kept = [op for op in ops if op.call >= position or op.ret is None]
    starts = [initial] + [op.args[-1] for op in ops if op.call < position and op.op != "get"]
    return kept, tuple(dict.fromkeys(starts))


def shrink(
    ops: Sequence[Operation], initial: Value = None, *, budget: int | None = DEFAULT_BUDGET
) -> Witness:
    """A small non-linearizable piece of one key's non-linearizable `ops`.

    Each step keeps a piece only if the whole history could not be linearizable with it:
    1. end at the first completion after which no order exists (each prefix of a
       linearizable history is linearizable, pending operations counting as unknown);
    2. begin at the latest quiet point (no known operation open across it) from which, for
       every value the register may hold there, there is still no order: an order of the
       whole would give one from the value it held at that point;
    3. drop operations that change nothing (gets, failed cas) while the rest still fails:
       an order of more operations orders fewer;
    4. drop writes whose value nobody in the piece observed (no get returned it, no cas
       expected it) while the rest still fails, if no failed cas is left that might have.
    A search that gives up counts as "not shown to fail": the witness is always proven.
    """
    ops = [op for op in ops if op.status != "fail"]
    ends = sorted(op.ret for op in ops if op.ret is not None)
    low, high = 0, len(ends) - 1
    while low < high:  # the first end at which the history fails
        middle = (low + high) // 2
        if not _fails(before(ops, ends[middle]), (initial,), budget):
            low = middle + 1
        else:
            high = middle
    prefix_end = ends[low]
    prefix = before(ops, prefix_end)
    quiet = _quiet_points(prefix)
    low, high = 0, len(quiet) - 1
    while low < high:  # the last quiet point from which the history still fails
        middle = (low + high + 1) // 2
        if not _fails(*since(prefix, quiet[middle], initial), budget):
            high = middle - 1
        else:
            low = middle
    witness, starts = since(prefix, quiet[low], initial)
    witness = [op for op in witness if not (op.op == "get" and op.status == "info")]

    def fails_without(op: Operation) -> bool:
        return _fails([o for o in witness if o is not op], starts, budget)

    changed = True
    while changed:
        changed = False
        for op in reversed(list(witness)):
            if not op.mutates and fails_without(op):
                witness.remove(op)
                changed = True
        if any(op.op == "cas" and not op.mutates for op in witness):
            continue  # a failed cas is left: it may have seen any write
        for op in reversed(list(witness)):
            if op.mutates and not _observed(op, witness) and fails_without(op):
                witness.remove(op)
                changed = True
    return Witness(witness, starts, prefix_end)


def _read_from_nowhere(
    ops: Sequence[Operation], initial: Value
) -> tuple[list[Operation], tuple[Value, ...], int] | None:
    """A get that returned a value no operation invoked before its return could have
    written: no search needed (and none of unknown outcome can make it right)."""
    writes = sorted((op.call, op.args[-1]) for op in ops if op.op != "get")
    gets = sorted(
        (op.ret, op) for op in ops if op.op == "get" and op.status == "ok" and op.ret is not None
    )
    possible, index = {_state(initial): initial}, 0
    for ret, get in gets:
        while index < len(writes) and writes[index][0] < ret:
            possible.setdefault(_state(writes[index][1]), writes[index][1])
            index += 1
        if _state(get.result) not in possible:
            return [get], tuple(possible.values()), ret
    return None


def _fails(ops: Sequence[Operation], starts: Iterable[Value], budget: int | None) -> bool:
    """Proven not linearizable (a search that gave up proves nothing)."""
    result = search(ops, starts, budget=budget)
    return not result.ok and not result.gave_up


def _quiet_points(ops: Sequence[Operation]) -> list[int]:
    """0 and every position just after a completion that left no known operation open."""
    bounds = sorted(
        [(op.call, 1) for op in ops if op.ret is not None]
        + [(op.ret, -1) for op in ops if op.ret is not None]
    )
    points, open_ops = [0], 0
    for position, change in bounds:
        open_ops += change
        if open_ops == 0:
            points.append(position + 1)
    return points


def _observed(write: Operation, ops: Sequence[Operation]) -> bool:
    value = _state(write.args[-1])
    for op in ops:
        if op is write:
            continue
        if op.op == "get" and op.status == "ok" and _state(op.result) == value:
            return True
        if op.op == "cas" and _state(op.args[0]) == value:
            return True
    return False
