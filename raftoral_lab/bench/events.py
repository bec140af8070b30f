"""The price of watching: commit throughput with every event published versus none.

Three 3-node Labs on the same broker run the same workload, many proposals in flight:

- `off`: no message-level events and nothing published, the nodes as other benchmarks run them;
- `kept`: every event, message-level ones (sent, delivered, dropped) included, emitted and kept
  in the Lab, none published;
- `on`: every event published on `events/{id}`, message-level ones included and not sampled
  (`message_events=True`, `sample_messages=1.0`): what a remote dashboard gets at full detail.

Issue 6's target compares `on` with `off`, the whole price of being watched (making the events
and publishing them): with everything published, at least 0.8 of the throughput with events
off. `kept` splits that price into making the events and sending them. The rounds alternate
the setups, so a noisy neighbour hurts them alike, and the medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from raftoral_lab.lab import MEMORY, Lab

TARGET_RATIO = 0.8
"""Throughput with every event published over throughput with events off, at least."""


@dataclass(frozen=True, slots=True)
class Setup:
    name: str
    message_events: bool
    publish: bool
    label: str


SETUPS = (
    Setup("off", False, False, "events off: no message events, nothing published"),
    Setup("kept", True, False, "every event made and kept in the lab, none published"),
    Setup("on", True, True, "every event published, message events too, no sampling"),
)


@dataclass(frozen=True, slots=True)
class Sample:
    per_s: float
    emitted: int
    """Events the nodes emitted (warm-up included)."""
    published: int
    """Events handed to the broker by the publishers."""
    skipped: int
    """Events the publishers left out (sampling); 0 when everything is published."""


@dataclass(frozen=True, slots=True)
class EventsResult:
    broker: str
    samples: dict[str, list[Sample]]
    """Setup name -> one sample per round."""

    def median(self, setup: str) -> Sample:
        ordered = sorted(self.samples[setup], key=lambda s: s.per_s)
        return ordered[len(ordered) // 2]

    @property
    def ratio(self) -> float:
        """Commits/s with every event published over commits/s with events off (medians)."""
        off = self.median("off").per_s
        return self.median("on").per_s / off if off else 0.0

    @property
    def met(self) -> bool:
        return self.ratio >= TARGET_RATIO


async def _throughput(broker: str | None, setup: Setup, proposals: int, in_flight: int) -> Sample:
    lab = Lab(
        nodes=3,
        broker=broker,
        publish_events=setup.publish,
        message_events=setup.message_events,
        sample_messages=1.0,
    )
    async with lab:
        leader = lab.node(await lab.wait_for_leader())
        for _ in range(50):  # warm the path before timing it
            await leader.propose(b"warm-up")
        gate = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with gate:
                await leader.propose(b"p%d" % i, timeout=60)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(proposals)))
        elapsed = time.perf_counter() - started
        publishers = list(lab._publishers.values())
        for publisher in publishers:
            publisher.flush()
        return Sample(
            per_s=proposals / elapsed,
            emitted=len(lab.events),
            published=sum(p.published for p in publishers),
            skipped=sum(p.skipped for p in publishers),
        )


async def run(
    broker: str | None, *, proposals: int = 5000, in_flight: int = 500, rounds: int = 3
) -> EventsResult:
    """`broker`: a URL, None for the Lab's embedded broker, "memory" for no broker at all.
    Rounds alternate the setups; medians are compared."""
    samples: dict[str, list[Sample]] = {setup.name: [] for setup in SETUPS}
    for n in range(rounds):
        for setup in SETUPS:
            print(f"bench events: round {n + 1}/{rounds}, {setup.name}", file=sys.stderr)
            samples[setup.name].append(await _throughput(broker, setup, proposals, in_flight))
    return EventsResult(broker or "embedded", samples)


def rows(result: EventsResult) -> list[tuple[str, object, str]]:
    """One row per setup (median commits/s and what the events came to), then the ratios."""
    out: list[tuple[str, object, str]] = []
    for setup in SETUPS:
        sample = result.median(setup.name)
        note = f"{sample.emitted:,} events made"
        if setup.publish:
            note += f", {sample.published:,} published, {sample.skipped:,} left out"
        out.append((f"commits/s, {setup.label}", sample.per_s, note))
    off, kept = result.median("off").per_s, result.median("kept").per_s
    out.append(("ratio kept / off (making the events)", kept / off if off else 0.0, ""))
    out.append(
        ("ratio on / off (making and publishing)", result.ratio, f"target >= {TARGET_RATIO}")
    )
    return out


def verdict(result: EventsResult) -> str:
    """The last line of the output: the target of issue 6 and whether it is met."""
    met = "OK" if result.met else "BELOW TARGET"
    if result.broker != "mosquitto":
        met += " (the target is set for Mosquitto)"
    return (
        f"verdict: {met}: with every event published, {result.ratio:.2f} of the throughput "
        f"with events off (target >= {TARGET_RATIO})"
    )


def add_parser(which: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from raftoral_lab.cli.common import positive_int

    p = which.add_parser("events", help="commit throughput with every event published vs none")
    p.add_argument(
        "--broker",
        default="mosquitto",
        help="mosquitto (start a private one), embedded (the Lab's amqtt broker, in this "
        "process), memory (no broker: a quick check, not the figure) or the URL of a running "
        "broker (default mosquitto)",
    )
    p.add_argument("--proposals", type=positive_int, default=5000, help="proposals per round")
    p.add_argument("--in-flight", type=positive_int, default=500, help="proposals in flight (500)")
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds of the setups (3)")
    p.set_defaults(run=run_cli)


@contextlib.asynccontextmanager
async def _broker(spec: str) -> AsyncIterator[str | None]:
    """What `Lab(broker=...)` gets for a `--broker` value."""
    if spec == "mosquitto":
        from raftoral_lab.transport.mosquitto import running_mosquitto

        async with running_mosquitto() as broker:
            yield broker.url
    elif spec == "embedded":
        yield None
    elif spec == MEMORY:
        yield MEMORY
    else:
        yield spec


def run_cli(args: argparse.Namespace) -> int:
    from raftoral_lab.bench.table import render
    from raftoral_lab.errors import ConfigError
    from raftoral_lab.transport.mosquitto import find_mosquitto
    from raftoral_lab.transport.mqtt import parse_broker_url

    if args.broker not in ("mosquitto", "embedded", MEMORY):
        try:
            parse_broker_url(args.broker)
        except ConfigError as error:
            print(f"raftoral-lab bench events: --broker: {error}", file=sys.stderr)
            return 2
    if args.broker == "mosquitto" and find_mosquitto() is None:
        print(
            "raftoral-lab bench events: mosquitto is not installed (`apt-get install "
            "mosquitto`); or run with --broker embedded",
            file=sys.stderr,
        )
        return 2

    async def main() -> EventsResult:
        async with _broker(args.broker) as url:
            result = await run(
                url, proposals=args.proposals, in_flight=args.in_flight, rounds=args.rounds
            )
        return EventsResult(args.broker, result.samples)

    result = asyncio.run(main())
    rounds = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    print(
        f"bench events: 3 nodes in 1 process, broker {result.broker}; {args.proposals:,} "
        f"proposals per round, {args.in_flight:,} in flight, {rounds}"
    )
    print(render("", ("measure", "value", "note"), rows(result)))
    print(
        "on / off is the honest comparison: the baseline nodes neither make message events nor\n"
        "publish; on publishes every event, message events included and not sampled (to the\n"
        "broker, no subscriber)"
    )
    print(verdict(result))
    return 0
