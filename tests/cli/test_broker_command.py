"""`raftoral-lab broker` runs until stopped, and a SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def test_the_broker_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "raftoral_lab.cli.main", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = proc.stdout.readline()
        while "listening on mqtt://" not in line:
            assert time.monotonic() < deadline and line, f"the broker did not start: {line!r}"
            line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "broker stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
