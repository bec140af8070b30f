"""The price of watching: commit throughput with every event published versus none.

Two 3-node Labs on the same broker run the same workload, many proposals in flight, one with
each node publishing all its events on `events/{id}` (no sampling), one with publishing off.
Issue 6's target: with events on, at least 0.8 of the throughput with events off.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from raftoral_lab.lab import Lab


@dataclass(frozen=True, slots=True)
class EventsResult:
    off_per_s: float
    on_per_s: float
    published: int

    @property
    def ratio(self) -> float:
        return self.on_per_s / self.off_per_s if self.off_per_s else 0.0


async def _throughput(
    broker: str, publish: bool, proposals: int, in_flight: int
) -> tuple[float, int]:
    lab = Lab(nodes=3, broker=broker, publish_events=publish, message_events=False)
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
        published = sum(p.published for p in lab._publishers.values())
        return proposals / elapsed, published


async def run(
    broker: str, *, proposals: int = 5000, in_flight: int = 500, rounds: int = 3
) -> EventsResult:
    """Alternate off/on rounds (so a noisy neighbour hurts both alike); medians."""
    off: list[float] = []
    on: list[float] = []
    published = 0
    for _ in range(rounds):
        off.append((await _throughput(broker, False, proposals, in_flight))[0])
        rate, published = await _throughput(broker, True, proposals, in_flight)
        on.append(rate)
    return EventsResult(sorted(off)[len(off) // 2], sorted(on)[len(on) // 2], published)


def add_parser(which: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from raftoral_lab.cli.common import positive_int

    p = which.add_parser("events", help="commit throughput with every event published vs none")
    p.add_argument("--proposals", type=positive_int, default=5000, help="proposals per round")
    p.add_argument("--in-flight", type=positive_int, default=500, help="proposals in flight (500)")
    p.add_argument("--rounds", type=positive_int, default=3, help="off/on rounds; medians (3)")
    p.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from raftoral_lab.bench.table import render
    from raftoral_lab.transport.mosquitto import running_mosquitto

    async def main() -> EventsResult:
        async with running_mosquitto() as broker:
            return await run(
                broker.url, proposals=args.proposals, in_flight=args.in_flight, rounds=args.rounds
            )

    result = asyncio.run(main())
    rows = [
        ("commits/s, events off (3 nodes in 1 process, Mosquitto)", result.off_per_s, ""),
        ("commits/s, every event published", result.on_per_s, f"{result.published:,} events"),
        ("ratio on / off", result.ratio, "target >= 0.8"),
    ]
    print(render("bench events", ("measure", "value", "note"), rows))
    return 0
