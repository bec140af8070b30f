"""Key-value clients on the deterministic simulator, under faults, with a recorded history.

```python
sim = Simulation(nodes=5, seed=7, compact_every=30)
driver, nemesis = KVSimDriver(sim, clients=4, seed=7), Nemesis(sim, seed=7)
driver.run(3000, nemesis=nemesis)     # partitions, crashes, restarts, drops, heals
nemesis.calm()                        # heal, restart every crashed node
driver.finish()                       # let the open operations finish or time out
print(check(driver.history))          # linearizable: 2... operations on 2 keys
```

Each client is a step function called once per tick: it invokes an operation, proposes it to
the leader (`sim.propose`), proposes it again with the *same* request number when no answer
came for a while, notices the answer, or gives up. The simulator's nodes apply opaque bytes;
the driver feeds the committed sequence (the longest `commands` of any node: every node's is
a prefix of the same sequence, which the simulator's invariants check) into one
`KVStateMachine`, whose answers are the answers every replica computes for those entries. An
operation completes in the tick its command is first applied by some node, so after it
committed. This module imports no simulator code: any object shaped like `Simulation` works.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from raftoral_lab.kv.history import Args, History
from raftoral_lab.kv.machine import OPS, Answer, Command, KVStateMachine, Value


class AppliedNode(Protocol):
    @property
    def alive(self) -> bool: ...

    @property
    def commands(self) -> Sequence[bytes]: ...


class SimulationLike(Protocol):
    """The part of `raftoral_lab.sim.Simulation` the driver uses."""

    @property
    def tick(self) -> int: ...

    @property
    def nodes(self) -> Mapping[int, AppliedNode]: ...

    def step(self) -> None: ...

    def propose(self, data: bytes, node: int | None = None) -> int | None: ...


class FaultySimulation(SimulationLike, Protocol):
    def leader(self) -> int | None: ...

    def partition(self, *sides: Iterable[int]) -> None: ...

    def heal(self) -> None: ...

    def crash(self, node_id: int) -> None: ...

    def restart(self, node_id: int) -> None: ...

    def set_drop_rate(self, rate: float) -> None: ...


@dataclass
class _Open:
    """A client's open operation."""

    command: Command
    process: int
    invoked: int  # tick
    proposed: bool = False  # a leader accepted it at least once: it may be in a log
    next_try: int = 0  # tick of the next (re)proposal


class KVSimDriver:
    def __init__(
        self,
        sim: SimulationLike,
        *,
        clients: int = 3,
        keys: Sequence[str] = ("x", "y"),
        values: int = 5,
        seed: int = 0,
        retry_ticks: int = 30,
        timeout_ticks: int = 300,
        think_ticks: int = 5,
        machine: Callable[[], KVStateMachine] = KVStateMachine,
    ) -> None:
        """`values`: puts and cas write values from range(values) (few values: more cas
        successes and more ways to go wrong). `retry_ticks`: propose again after this long
        without an answer; `timeout_ticks`: give up (info, or fail if no leader ever took it).
        `think_ticks`: a client waits up to this long between operations. `machine` makes
        the store that follows the log (a broken one shows what the checker catches)."""
        if clients < 1 or not keys or values < 1:
            raise ValueError("need at least one client, one key and one value")
        self.sim = sim
        self.keys = list(keys)
        self.values = values
        self.retry_ticks = retry_ticks
        self.timeout_ticks = timeout_ticks
        self.think_ticks = think_ticks
        self.rng = random.Random(f"kv-clients/{seed}")
        self.history = History(clock=lambda: float(sim.tick))
        self.replica = machine()
        """Follows the committed sequence; its answers are every node's answers."""
        self.answers: dict[tuple[str, int], Answer] = {}
        self._fed: list[bytes] = []
        self._names = [f"c{n}" for n in range(clients)]
        self._request = dict.fromkeys(self._names, 0)
        self._process = {name: self.history.new_process() for name in self._names}
        self._open: dict[str, _Open] = {}
        self._wake = dict.fromkeys(self._names, 0)
        self.proposals = 0

    # --- running -------------------------------------------------------------------------------

    def step(self, *, invoke: bool = True) -> None:
        """One tick: clients act, the simulation steps, clients see what was applied."""
        now = self.sim.tick
        for name in self._names:
            pending = self._open.get(name)
            if pending is None:
                if invoke and now >= self._wake[name]:
                    self._invoke(name, now)
            elif now - pending.invoked > self.timeout_ticks:
                self._give_up(name, pending)
            elif now >= pending.next_try:
                self._propose(pending, now)
        self.sim.step()
        self._observe()

    def run(self, ticks: int, *, nemesis: Nemesis | None = None) -> None:
        for _ in range(ticks):
            if nemesis is not None:
                nemesis.step()
            self.step()

    def finish(self, max_ticks: int | None = None) -> None:
        """Stop invoking and run until every open operation is answered or given up."""
        limit = max_ticks if max_ticks is not None else self.timeout_ticks + 1
        for _ in range(limit):
            if not self._open:
                return
            self.step(invoke=False)

    @property
    def open_operations(self) -> int:
        return len(self._open)

    # --- one client ------------------------------------------------------------------------------

    def _invoke(self, name: str, now: int) -> None:
        rng = self.rng
        op = rng.choice(OPS)
        key = rng.choice(self.keys)
        args: Args = ()
        if op == "put":
            args = (rng.randrange(self.values),)
        elif op == "cas":
            args = (rng.randrange(self.values), rng.randrange(self.values))
        self._request[name] += 1
        value: Value = args[-1] if args else None
        expected: Value = args[0] if op == "cas" else None
        command = Command(op, key, name, self._request[name], value, expected)
        pending = _Open(command, self._process[name], now, next_try=now)
        self._open[name] = pending
        self.history.invoke(pending.process, op, key, args)
        self._propose(pending, now)

    def _propose(self, pending: _Open, now: int) -> None:
        index = self.sim.propose(pending.command.encode())
        self.proposals += 1
        if index is None:  # no leader right now: try again soon
            pending.next_try = now + 1 + self.rng.randrange(3)
        else:
            pending.proposed = True
            pending.next_try = now + self.retry_ticks

    def _give_up(self, name: str, pending: _Open) -> None:
        del self._open[name]
        if pending.proposed:
            self.history.info(pending.process)  # it may still commit, or have committed
            self._process[name] = self.history.new_process()
        else:
            self.history.fail(pending.process)  # no leader ever took it: it never happened
        self._wake[name] = self.sim.tick + self.rng.randrange(self.think_ticks + 1)

    def _observe(self) -> None:
        self._feed()
        now = self.sim.tick
        for name, pending in list(self._open.items()):
            command = pending.command
            answer = self.answers.get((command.client, command.request))
            if answer is None:
                continue
            del self._open[name]
            self._wake[name] = now + self.rng.randrange(self.think_ticks + 1)
            if "error" in answer:
                self.history.fail(pending.process)
            elif command.op == "get":
                self.history.ok(pending.process, answer["value"])
            elif command.op == "cas":
                self.history.ok(pending.process, answer["swapped"])
            else:
                self.history.ok(pending.process, None)

    def _feed(self) -> None:
        """Apply to the replica what the most advanced node applied beyond what it has."""
        longest = max((node.commands for node in self.sim.nodes.values()), key=len)
        fed = self._fed
        if len(longest) <= len(fed):
            return
        if fed and longest[len(fed) - 1] != fed[-1]:
            raise AssertionError(
                f"tick {self.sim.tick}: nodes applied different commands at position {len(fed)}"
            )
        for data in longest[len(fed) :]:
            command = Command.decode(data)
            answer = self.replica.execute(command)
            self.answers.setdefault((command.client, command.request), answer)
            fed.append(data)


class Nemesis:
    """Random faults on a schedule: every `every` ticks (on average) one of partition into two
    sides, isolate the leader, heal, crash a node (a minority at most is down), restart one,
    start or stop dropping messages."""

    def __init__(
        self, sim: FaultySimulation, *, seed: int = 0, every: int = 40, drop_rate: float = 0.1
    ) -> None:
        self.sim = sim
        self.every = every
        self.drop_rate = drop_rate
        self.rng = random.Random(f"kv-nemesis/{seed}")
        self.crashed: set[int] = set()
        self.log: list[tuple[int, str]] = []
        """(tick, what was done): print it when a seed fails."""

    def step(self) -> None:
        if self.rng.randrange(self.every) == 0:
            self.strike()

    def strike(self) -> None:
        sim, rng = self.sim, self.rng
        ids = sorted(sim.nodes)
        minority = (len(ids) - 1) // 2
        choices = ["partition", "isolate_leader", "heal", "drop", "no_drop"]
        if len(self.crashed) < minority:
            choices += ["crash", "crash_leader"]
        if self.crashed:
            choices += ["restart", "restart"]
        what = rng.choice(choices)
        leader = sim.leader()
        if what == "partition":
            shuffled = rng.sample(ids, len(ids))
            cut = rng.randrange(1, len(ids))
            sim.partition(shuffled[:cut], shuffled[cut:])
            what += f" {sorted(shuffled[:cut])} | {sorted(shuffled[cut:])}"
        elif what == "isolate_leader" and leader is not None:
            sim.partition([leader], [n for n in ids if n != leader])
            what += f" {leader}"
        elif what == "heal":
            sim.heal()
        elif what == "drop":
            sim.set_drop_rate(self.drop_rate)
        elif what == "no_drop":
            sim.set_drop_rate(0.0)
        elif what.startswith("crash"):
            alive = [n for n in ids if n not in self.crashed]
            victim = leader if what == "crash_leader" and leader is not None else rng.choice(alive)
            sim.crash(victim)
            self.crashed.add(victim)
            what = f"crash {victim}"
        elif what == "restart":
            back = rng.choice(sorted(self.crashed))
            sim.restart(back)
            self.crashed.discard(back)
            what += f" {back}"
        else:
            return
        self.log.append((sim.tick, what))

    def calm(self) -> None:
        """Heal the network, stop drops and restart every crashed node."""
        self.sim.heal()
        self.sim.set_drop_rate(0.0)
        for node_id in sorted(self.crashed):
            self.sim.restart(node_id)
        self.crashed.clear()
        self.log.append((self.sim.tick, "calm"))
