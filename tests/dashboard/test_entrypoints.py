"""Every way to open the dashboard serves a page: `panel serve dashboards/lab.py`,
`panel serve dashboards/observe.py`, `raftoral-lab dashboard`, and the commands' --help."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftoral_lab.cli.main import build_parser

from .support import ROOT, free_port, wait_http


class Process:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Process, str]]]:
    """A broker, and the three servers, all started side by side."""
    logs = tmp_path_factory.mktemp("logs")
    broker_port = free_port()
    broker_url = f"mqtt://127.0.0.1:{broker_port}"
    cli = [sys.executable, "-m", "raftoral_lab.cli.main"]
    panel = [sys.executable, "-m", "panel", "serve"]
    broker = Process([*cli, "broker", "--port", str(broker_port)], logs / "broker.log")
    ports = {name: free_port() for name in ("lab", "observe", "remote")}
    out: dict[str, tuple[Process, str]] = {
        "lab": (
            Process(
                [
                    *panel,
                    "dashboards/lab.py",
                    "--port",
                    str(ports["lab"]),
                    "--args",
                    "--broker",
                    "memory",
                ],
                logs / "lab.log",
            ),
            f"http://127.0.0.1:{ports['lab']}/lab",
        ),
        "observe": (
            Process(
                [
                    *panel,
                    "dashboards/observe.py",
                    "--port",
                    str(ports["observe"]),
                    "--args",
                    "--cluster",
                    "obs",
                    "--broker",
                    broker_url,
                ],
                logs / "observe.log",
            ),
            f"http://127.0.0.1:{ports['observe']}/observe",
        ),
        "remote": (
            Process(
                [
                    *cli,
                    "dashboard",
                    "--cluster",
                    "obs",
                    "--broker",
                    broker_url,
                    "--port",
                    str(ports["remote"]),
                ],
                logs / "remote.log",
            ),
            f"http://127.0.0.1:{ports['remote']}/",
        ),
    }
    try:
        yield out
    finally:
        for process, _url in out.values():
            process.stop()
        broker.stop()


@pytest.mark.parametrize("name", ["lab", "observe", "remote"])
def test_each_entry_point_serves_the_dashboard(
    started: dict[str, tuple[Process, str]], name: str
) -> None:
    process, url = started[name]
    try:
        wait_http(url, 60, process.proc)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{process.output()}") from None
    with urllib.request.urlopen(url, timeout=30) as reply:
        page = reply.read().decode()
    assert "raftoral-lab" in page
    if name == "lab":
        assert "?token=" in process.output()  # for pages from other machines


def test_the_commands_are_registered() -> None:
    parser = build_parser()
    demo = parser.parse_args(["demo", "--nodes", "5", "--port", "0", "--no-check-quorum"])
    assert demo.nodes == 5 and demo.no_check_quorum and demo.address == "127.0.0.1"
    remote = parser.parse_args(["dashboard", "--cluster", "c", "--broker", "mqtt://h:1"])
    assert remote.cluster == "c" and remote.port == 5006
    replay = parser.parse_args(["replay", "run.jsonl", "--address", "0.0.0.0"])
    assert replay.file == "run.jsonl" and replay.address == "0.0.0.0"
