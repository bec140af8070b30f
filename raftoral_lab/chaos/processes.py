"""The node processes of a chaos run: real `raftoral-lab node` children, one data directory
each, killed with SIGKILL and started again with the same command (which then restarts the
node from its directory).

Children run in their own session, so a Ctrl-C in the terminal reaches only the chaos run,
which stops them; on Linux the kernel also kills them if the run itself dies
(PR_SET_PDEATHSIG). Each child's output goes to `<name>.log` beside its data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from raftoral_lab.bench.procs import parent_death_signal

APP = "raftoral_lab.samples:app"


_PREEXEC = parent_death_signal()


class NodeProcess:
    """One founding node of the chaos cluster as a child process."""

    def __init__(
        self,
        node_id: int,
        *,
        cluster: str,
        broker_url: str,
        voters: Sequence[int],
        data_dir: Path,
        tick: float,
        election_ticks: int,
        compact_every: int | None,
    ) -> None:
        self.id = node_id
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"node{node_id}.log"
        self.argv = [
            sys.executable, "-m", "raftoral_lab.cli.main", "node",
            "--cluster", cluster, "--broker", broker_url,
            "--bootstrap", "--id", str(node_id), "--voters", ",".join(map(str, voters)),
            "--data-dir", str(data_dir), "--tick", repr(tick),
            "--election-ticks", str(election_ticks), "--app", APP, "--events", "off",
        ]  # fmt: skip
        if compact_every is not None:
            self.argv += ["--compact-every", str(compact_every)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.expected_exit = True
        """False while the node runs and nobody meant it to stop: an exit then is a failure."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> None:
        """Start the node (the same command every time: after the first run the node
        restarts from its data directory)."""
        if self.alive:
            raise RuntimeError(f"node {self.id} is running already")
        self.starts += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_PREEXEC,
            )
        self.expected_exit = False

    def kill9(self) -> None:
        """SIGKILL: a crash (whatever is durable in the data directory survives)."""
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    async def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM (the node stops without leaving the cluster) and wait; SIGKILL after
        `timeout`. True when it stopped by itself with exit status 0."""
        self.expected_exit = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc is not None and proc.returncode == 0
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            self.kill9()
            return False
        return proc.returncode == 0

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
