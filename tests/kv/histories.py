"""Histories for the checker tests: hand-written ones, linearizable ones by construction, and
a brute-force oracle for small ones."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftoral_lab.kv.checker import State, step
from raftoral_lab.kv.history import History, Operation
from raftoral_lab.kv.machine import OPS, Op, Value

Step = tuple[str, int, Any]


def sequence(*steps: Step) -> History:
    """A history from (what, process, detail) steps:
    ("put", p, (key, value)), ("get", p, key), ("cas", p, (key, expected, new)) invoke;
    ("ok", p, result), ("fail", p, None), ("info", p, None) complete."""
    history = History(clock=itertools.count().__next__)
    for what, process, detail in steps:
        if what == "get":
            history.invoke(process, "get", detail)
        elif what == "put":
            history.invoke(process, "put", detail[0], (detail[1],))
        elif what == "cas":
            history.invoke(process, "cas", detail[0], (detail[1], detail[2]))
        elif what == "ok":
            history.ok(process, detail)
        elif what == "fail":
            history.fail(process)
        else:
            history.info(process)
    return history


@dataclass
class _Running:
    process: int
    op: Op
    key: str
    args: tuple[Value, ...]
    done: bool = False  # linearized: its effect happened
    result: Value = None


def linearizable_history(
    rng: random.Random,
    *,
    operations: int,
    processes: int = 4,
    keys: Sequence[str] = ("x",),
    values: int = 3,
    info_rate: float = 0.05,
    fail_rate: float = 0.02,
) -> History:
    """A random concurrent history that is linearizable by construction: each operation takes
    effect on a model store at one random moment between its invocation and its completion.
    Some end `info` (taking effect before, later or never) and some `fail` (never)."""
    history = History(clock=itertools.count().__next__)
    store: dict[str, Value] = {}
    running: dict[int, _Running] = {}
    zombies: list[_Running] = []  # info ops that have not taken effect yet, and may
    idle = [history.new_process() for _ in range(processes)]
    started = 0

    def take_effect(op: _Running) -> None:
        current = store.get(op.key)
        if op.op == "get":
            op.result = current
        elif op.op == "put":
            store[op.key] = op.args[0]
        else:
            swaps = _same(current, op.args[0])
            if swaps:
                store[op.key] = op.args[1]
            op.result = swaps
        op.done = True

    while started < operations or running:
        moves = []
        if idle and started < operations:
            moves.append("invoke")
        if running:
            moves += ["advance", "advance"]
        if zombies:
            moves.append("zombie")
        move = rng.choice(moves)
        if move == "invoke":
            process = idle.pop(rng.randrange(len(idle)))
            name = rng.choice(OPS)
            key = rng.choice(list(keys))
            args: tuple[Value, ...] = ()
            if name == "put":
                args = (rng.randrange(values),)
            elif name == "cas":
                args = (rng.randrange(values), rng.randrange(values))
            running[process] = _Running(process, name, key, args)
            history.invoke(process, name, key, args)
            started += 1
        elif move == "zombie":
            zombie = zombies.pop(rng.randrange(len(zombies)))
            if rng.random() < 0.5:
                take_effect(zombie)
        else:
            process = rng.choice(sorted(running))
            op = running[process]
            if not op.done and rng.random() < 0.5:
                take_effect(op)
                continue
            del running[process]
            roll = rng.random()
            if roll < info_rate:
                history.info(process)
                if not op.done:
                    zombies.append(op)
                idle.append(history.new_process())
            elif not op.done and roll < info_rate + fail_rate:
                history.fail(process)
                idle.append(process)
            else:
                if not op.done:
                    take_effect(op)
                history.ok(process, op.result if op.op != "put" else None)
                idle.append(process)
    return history


def _same(a: Value, b: Value) -> bool:
    return a == b and type(a) is type(b)


def brute_force(ops: Sequence[Operation], starts: Sequence[Value] = (None,)) -> bool:
    """Try every order: the definition of linearizability, for a handful of operations."""
    ops = [op for op in ops if op.status != "fail"]
    for start in starts:
        for order in itertools.permutations(range(len(ops))):
            position = {i: n for n, i in enumerate(order)}
            if any(
                position[a] > position[b]
                for a, b in itertools.permutations(range(len(ops)), 2)
                if (ret := ops[a].ret) is not None and ret < ops[b].call
            ):
                continue
            state: State = (type(start).__name__, start)
            for i in order:
                fits, state = step(state, ops[i])
                if not fits:
                    break
            else:
                return True
    return False
