"""Child processes of a benchmark: started in their own session, read line by line, and
always stopped (SIGTERM, then SIGKILL) when the benchmark ends, fails or is interrupted.

Each child runs in a new session, so a Ctrl-C in the terminal reaches only the benchmark,
which then stops its children in order; on Linux a child is also killed by the kernel if the
benchmark dies without cleaning up (PR_SET_PDEATHSIG). Every line a child prints goes to a
log file; a child's failure is reported with the tail of that log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from raftoral_lab.errors import RaftoralError


class BenchError(RaftoralError):
    """A benchmark could not run (a child failed, a broker is missing, a phase hung)."""


def parent_death_signal() -> Callable[[], None] | None:
    """A preexec function that asks Linux to SIGKILL the child when its parent dies (the
    benchmark, a chaos run), so no node process outlives a crashed runner.

    libc is loaded here, in the parent: nothing may be imported between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the forked child
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


_PREEXEC = parent_death_signal()


class Child:
    """One child process whose stdout lines are queued (and logged) as they arrive."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._log: BinaryIO | None = None

    async def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            preexec_fn=_PREEXEC,
        )
        self._reader = asyncio.create_task(self._read(), name=f"bench-child-{self.name}")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line longer than the limit
                raw = await stream.read(1 << 20)
            if not raw:
                break
            if self._log is not None:
                self._log.write(raw)
                self._log.flush()
            self.lines.put_nowait(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put_nowait(None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> BenchError:
        code = self.proc.returncode if self.proc is not None else None
        state = f"exited with {code}" if code is not None else "still running"
        tail = self.log_tail()
        return BenchError(
            f"{self.name} {what} ({state}); its output ends with:\n{tail or '(nothing)'}"
        )

    async def expect(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line for which `match` is true; BenchError on timeout or exit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._failure(f"did not {what} within {timeout:g} s")
            try:
                line = await asyncio.wait_for(self.lines.get(), remaining)
            except TimeoutError:
                raise self._failure(f"did not {what} within {timeout:g} s") from None
            if line is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait() if self.proc else asyncio.sleep(0), 2)
                raise self._failure(f"stopped before it could {what}")
            if match(line):
                return line

    async def expect_json(
        self,
        key: str,
        timeout: float,
        what: str,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The first JSON object line holding `key`; `progress` lines go to `on_progress`;
        an `error` line becomes a BenchError."""
        found: dict[str, Any] = {}

        def match(line: str) -> bool:
            if not line.startswith("{"):
                return False
            try:
                doc = json.loads(line)
            except ValueError:
                return False
            if not isinstance(doc, dict):
                return False
            if "error" in doc:
                raise BenchError(f"{self.name}: {doc['error']}")
            if "progress" in doc and on_progress is not None:
                on_progress(doc)
            if key in doc:
                found.update(doc)
                return True
            return False

        await self.expect(match, timeout, what)
        return found

    async def send(self, doc: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None or not self.running:
            raise self._failure("cannot take a command")
        self.proc.stdin.write((json.dumps(doc) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM (and stdin closed), then SIGKILL after `grace` seconds."""
        proc = self.proc
        try:
            if proc is not None and proc.returncode is None:
                if proc.stdin is not None:
                    with contextlib.suppress(Exception):
                        proc.stdin.close()
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if self._reader is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(self._reader, 1.0)
        finally:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            if self._log is not None:
                self._log.close()
                self._log = None


class Children:
    """The children of one phase; `async with` stops them all, whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    async def spawn(self, name: str, argv: Sequence[str]) -> Child:
        safe = "".join(c if c.isalnum() else "-" for c in name)
        child = Child(name, argv, self.workdir / f"{safe}.log")
        self.children.append(child)
        await child.start()
        return child

    async def stop_all(self) -> None:
        children, self.children = self.children, []
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)

    async def __aenter__(self) -> Children:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()


def python_argv(module: str, *args: str) -> list[str]:
    """Run one of our modules with this interpreter (the venv's, whatever is on PATH)."""
    return [sys.executable, "-m", module, *args]
