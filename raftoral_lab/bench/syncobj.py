"""The PySyncObj side of `bench commit`: the same workload on a pure-Python Raft over TCP.

PySyncObj (https://github.com/bakwc/PySyncObj) is optional (`pip install raftoral-lab[bench]`).
Each member runs in its own process (`python -m raftoral_lab.bench.worker syncobj`) with a
replicated counter that takes the same 16-byte command; the member that leads generates the
load with PySyncObj's own calls: `sync=True` one at a time for latency, callbacks with a
bounded number in flight for throughput.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

from raftoral_lab.bench.load import PAYLOAD, warmup_count
from raftoral_lab.bench.measure import Latency, Throughput


def pysyncobj_version() -> str | None:
    """The installed PySyncObj version, or None when it is not installed."""
    try:
        return metadata.version("pysyncobj")
    except metadata.PackageNotFoundError:
        return None


class Member(Protocol):
    def append(self, data: bytes, **kwargs: Any) -> object: ...

    def leader(self) -> str | None: ...

    def is_leader(self) -> bool: ...

    def destroy(self) -> None: ...


def make_member(self_address: str, partners: list[str], *, batch: bool = False) -> Member:
    """A PySyncObj member with a replicated counter.

    `batch=False` is PySyncObj's documented low-latency setting (`appendEntriesUseBatch`:
    "Disabled - improve single request speed"; it also wakes the tick thread through a pipe
    on each call instead of waiting for its next poll timeout); everything else is default.
    """
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        def __init__(self) -> None:
            super().__init__(self_address, partners, SyncObjConf(appendEntriesUseBatch=batch))
            self.count = 0

        @replicated
        def append(self, data: bytes) -> int:
            self.count += 1
            return self.count

        def leader(self) -> str | None:
            found = self._getLeader()
            return None if found is None else str(found)

        def is_leader(self) -> bool:
            return bool(self._isLeader())

    member: Member = Counter()
    return member


def syncobj_latency(
    member: Member, samples: int, progress: Callable[[int, int], None] | None = None
) -> Latency:
    """`samples` calls awaited one at a time (`sync=True`), after a warm-up."""
    for _ in range(warmup_count(samples)):
        member.append(PAYLOAD, sync=True, timeout=10)
    every = max(1, samples // 50)
    timings: list[float] = []
    clock = time.perf_counter
    for n in range(samples):
        started = clock()
        member.append(PAYLOAD, sync=True, timeout=10)
        timings.append(clock() - started)
        if progress is not None and (n + 1) % every == 0:
            progress(n + 1, samples)
    return Latency.of(timings)


def syncobj_throughput(
    member: Member,
    total: int,
    in_flight: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    timeout: float = 300.0,
) -> Throughput:
    """`total` calls with at most `in_flight` unanswered, answered through callbacks."""
    window = threading.BoundedSemaphore(max(1, min(in_flight, total)))
    finished = threading.Event()
    lock = threading.Lock()
    state = {"done": 0, "failed": 0}
    every = max(1, total // 50)

    def answered(_result: object, error: int) -> None:
        with lock:
            state["done"] += 1
            if error != 0:
                state["failed"] += 1
            done = state["done"]
        window.release()
        if progress is not None and done % every == 0:
            progress(done, total)
        if done == total:
            finished.set()

    started = time.perf_counter()
    for _ in range(total):
        if not window.acquire(timeout=timeout):
            raise TimeoutError(f"PySyncObj answered no call within {timeout:g} s")
        member.append(PAYLOAD, callback=answered)
    if not finished.wait(timeout):
        raise TimeoutError(f"PySyncObj answered {state['done']} of {total} calls in {timeout:g} s")
    elapsed = time.perf_counter() - started
    if state["failed"]:
        raise RuntimeError(f"PySyncObj failed {state['failed']} of {total} calls")
    return Throughput(total, elapsed, in_flight)
