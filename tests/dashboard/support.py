"""Helpers of the dashboard tests: a real Chromium, servers in subprocesses, screenshots.

Chromium is Debian's, driven by the `playwright` package (`playwright install` cannot
download here). A missing browser skips the browser tests, unless RAFTORAL_REQUIRE_BROWSER=1
(set by CI) makes that a failure. Each test keeps a screenshot in
`$RAFTORAL_ARTIFACTS/screenshots/` (default `artifacts/screenshots/` at the repository root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "RAFTORAL_REQUIRE_BROWSER"
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1920, "height": 1080}


def artifacts_dir() -> Path:
    base = Path(os.environ.get("RAFTORAL_ARTIFACTS", ROOT / "artifacts"))
    path = base / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_chromium() -> str | None:
    configured = os.environ.get("RAFTORAL_CHROMIUM")
    for candidate in (configured, *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def require_browser() -> str:
    """Chromium's path; skips without it (playwright too), or fails when CI requires it."""
    binary = find_chromium()
    problem = None
    if binary is None:
        problem = "Chromium not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install playwright)"
    if problem is None:
        assert binary is not None
        return binary
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{problem}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.1)


class Server:
    """`raftoral-lab ARGS --port P` in a subprocess, started at once; `with server:` waits
    until it serves (so several can start side by side) and stops it (SIGTERM) at the end."""

    def __init__(self, *args: str, timeout: float = 60.0, host: str = "127.0.0.1") -> None:
        self.args = args
        self.timeout = timeout
        self.port = free_port()
        self.url = f"http://{host}:{self.port}/"
        logs = artifacts_dir().parent / "server-logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / f"{args[0]}-{self.port}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "raftoral_lab.cli.main", *args, "--port", str(self.port)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def __enter__(self) -> Server:
        try:
            wait_http(self.url, self.timeout, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def cli_server(*args: str, timeout: float = 60.0) -> Server:
    return Server(*args, timeout=timeout)


class ServerPool:
    """Servers a module needs, in the order its tests use them: taking one starts the next
    `ahead` too, so that a server imports and starts while the test before it runs."""

    def __init__(self, specs: dict[str, tuple[str, ...]], *, ahead: int = 2) -> None:
        self.specs = specs
        self.order = list(specs)
        self.ahead = ahead
        self.started: dict[str, Server] = {}

    def _start(self, name: str) -> Server:
        server = self.started.get(name)
        if server is None:
            server = self.started[name] = Server(*self.specs[name])
        return server

    def __getitem__(self, name: str) -> Server:
        server = self._start(name)
        position = self.order.index(name)
        for later in self.order[position + 1 : position + 1 + self.ahead]:
            self._start(later)
        return server

    def close(self) -> None:
        for server in self.started.values():
            server.stop()


def shot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def eventually(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.2) -> Any:
    """Call `check` until it returns a truthy value (returned) or the time is up."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s (last: {last!r})")
        time.sleep(every)


class DashboardPage:
    """What a dashboard page shows, read from its SVG data attributes (the page's own DOM:
    the topology's nodes, the log rows, the header), and its buttons."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def _attrs(self, selector: str, names: tuple[str, ...]) -> list[dict[str, str]]:
        script = (
            "(els, names) => els.map(e => Object.fromEntries("
            "names.map(n => [n, e.getAttribute('data-' + n)])))"
        )
        return list(self.page.locator(selector).evaluate_all(script, list(names)))

    def nodes(self) -> dict[int, dict[str, str]]:
        rows = self._attrs("svg.topology g.node", ("node", "role", "status", "leader", "stale"))
        return {int(r["node"]): r for r in rows}

    def leaders(self) -> list[int]:
        """Nodes the page marks as the cluster's leader (one at most when all is well)."""
        return sorted(n for n, r in self.nodes().items() if r["leader"] == "true")

    def leader(self) -> int | None:
        leaders = self.leaders()
        return leaders[0] if len(leaders) == 1 else None

    def role(self, node: int) -> str | None:
        row = self.nodes().get(node)
        return row["role"] if row else None

    def logs(self) -> dict[int, dict[str, int | str]]:
        rows = self._attrs(
            "svg.logs g.logrow",
            ("node", "last", "commit", "applied", "tail", "overwritten", "role"),
        )
        out: dict[int, dict[str, int | str]] = {}
        for r in rows:
            out[int(r["node"])] = {
                "last": int(r["last"]),
                "commit": int(r["commit"]),
                "applied": int(r["applied"]),
                "overwritten": int(r["overwritten"]),
                "tail": r["tail"],
                "role": r["role"],
            }
        return out

    def header_leader(self) -> int | None:
        value = self.page.locator(".header [data-leader]").first.get_attribute("data-leader")
        return int(value) if value else None

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def click(self, name: str) -> None:
        self.button(name).click()

    def status(self) -> str:
        return str(self.page.locator(".control-status [data-status]").first.inner_text())

    def wait_loaded(self, nodes: int, timeout: float = 20.0) -> None:
        eventually(lambda: len(self.nodes()) == nodes and self.leader() is not None, timeout)
