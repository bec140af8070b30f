"""Load shapes shared by every phase: one operation at a time (latency), or a fixed number of
operations in flight (throughput); plus the ping-pong that is the baseline of them all."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from raftoral_lab.bench.measure import Latency, Throughput
from raftoral_lab.transport.base import Transport

Operation = Callable[[], Awaitable[object]]
Progress = Callable[[int, int], None]
"""`progress(done, total)`, called a few dozen times per phase (never inside a timed call)."""

PAYLOAD = b"0123456789abcdef"
"""The 16-byte command of every proposal (as in `bench core`)."""

PING_TOPIC = "bench/ping"
PONG_TOPIC = "bench/pong"


def warmup_count(samples: int) -> int:
    """Operations done first and not timed: connections, caches and the JIT-less interpreter's
    first-call costs settle in them."""
    return min(200, max(5, samples // 10))


async def sequential(op: Operation, samples: int, progress: Progress | None = None) -> Latency:
    """Time `samples` operations awaited one after the other (after a warm-up)."""
    for _ in range(warmup_count(samples)):
        await op()
    every = max(1, samples // 50)
    timings: list[float] = []
    clock = time.perf_counter
    for n in range(samples):
        started = clock()
        await op()
        timings.append(clock() - started)
        if progress is not None and (n + 1) % every == 0:
            progress(n + 1, samples)
    return Latency.of(timings)


async def windowed(
    op: Operation, total: int, in_flight: int, progress: Progress | None = None
) -> Throughput:
    """Run `total` operations with `in_flight` of them outstanding at any time."""
    in_flight = max(1, min(in_flight, total))
    issued = itertools.count()
    done = 0
    every = max(1, total // 50)

    async def lane() -> None:
        nonlocal done
        while next(issued) < total:
            await op()
            done += 1
            if progress is not None and done % every == 0:
                progress(done, total)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return Throughput(total, time.perf_counter() - started, in_flight)


class Pinger:
    """One side of the baseline: publish a numbered ping, wait for the same number back.

    Both sides use `MqttTransport.publish_nowait` with QoS 0 and `subscribe`: the same client
    library, writer task and broker as the Raft traffic (which is also QoS 0).
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._seq = itertools.count(1)
        self._waiting: dict[bytes, asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self.transport.subscribe(PONG_TOPIC, self._on_pong, qos=0)

    def _on_pong(self, _topic: str, payload: bytes) -> None:
        future = self._waiting.pop(payload[:8], None)
        if future is not None and not future.done():
            future.set_result(None)

    async def round_trip(self, timeout: float = 5.0) -> None:
        key = next(self._seq).to_bytes(8, "big")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        self.transport.publish_nowait(PING_TOPIC, key + PAYLOAD, qos=0)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._waiting.pop(key, None)
            raise

    async def wait_for_echo(self, timeout: float = 10.0) -> None:
        """Ping until the echo answers (its subscription may still be on its way)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.round_trip(timeout=0.2)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


async def start_echo(transport: Transport) -> None:
    """The other side: send every ping straight back."""

    def echo(_topic: str, payload: bytes) -> None:
        transport.publish_nowait(PONG_TOPIC, payload, qos=0)

    await transport.subscribe(PING_TOPIC, echo, qos=0)
