# mypy: disable-error-code="no-untyped-call"
"""Serving the dashboard: one model for the server, one `Dashboard` per browser session.

Each session gets the controller wrapped in a `GatedController` whose rights come from the
`AccessPolicy` (the session's address and its `?token=`), so a page opened without rights
shows locked controls and any control request it sends changes nothing.

`serve_async` runs the Bokeh server on the running asyncio loop, the loop the `Lab` runs on:
the controls' coroutines then run next to the nodes they drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import panel as pn

from raftoral_lab.dashboard.access import NO_RIGHTS, AccessPolicy, is_local_address, token_from_args
from raftoral_lab.dashboard.app import Dashboard
from raftoral_lab.dashboard.controller import Controller, GatedController, ObserverController
from raftoral_lab.dashboard.controls import Workload
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.panes import ensure_extension


def current_request() -> Any:
    """The HTTP request behind the current Panel session (None in a notebook)."""
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None) if doc is not None else None
    return getattr(context, "request", None) if context is not None else None


def request_rights(policy: AccessPolicy, request: Any) -> bool:
    """Whether a session opened by `request` (its `?token=` and address) may control."""
    if request is None:
        # no HTTP request behind this document: a notebook output (the kernel's own user)
        return policy.allows(token=None, remote_ip=None, in_notebook=True)
    token = token_from_args(getattr(request, "arguments", None))
    remote_ip = getattr(request, "remote_ip", None)
    return policy.allows(token=token, remote_ip=remote_ip)


def make_dashboard(
    model: Model,
    controller: Controller | None,
    allowed: bool,
    *,
    workload: Workload | None = None,
    group: int = 0,
) -> Dashboard:
    """One session's page: the controller behind a gate that is open only if `allowed`."""
    inner = controller or ObserverController()
    gated = GatedController(inner, lambda: allowed, NO_RIGHTS)
    return Dashboard(model, gated, workload=workload, group=group)


def session_factory(
    model: Model,
    controller: Controller | None,
    policy: AccessPolicy,
    *,
    workload: Workload | None = None,
    group: int = 0,
) -> Callable[[], Dashboard]:
    """What `pn.serve` calls for each new session."""
    shared_workload = workload or Workload()

    def make() -> Dashboard:
        allowed = request_rights(policy, current_request())
        return make_dashboard(model, controller, allowed, workload=shared_workload, group=group)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    factory: Callable[[], Any],
    *,
    port: int = 5006,
    address: str | None = "127.0.0.1",
    show: bool = False,
    title: str = "raftoral-lab",
) -> Any:
    """Start a Bokeh server for `factory` on the current event loop; returns it (listening)."""
    from tornado.ioloop import IOLoop

    ensure_extension()
    origins: list[str] | None = None
    if not is_local_address(address):
        origins = ["*"]  # anyone may watch; controls still need the token
    server = pn.serve(
        {"/": factory},
        port=port,
        address=address,
        websocket_origin=origins,
        loop=IOLoop.current(),
        show=False,
        start=False,
        title=title,
        verbose=False,
        warm=True,  # build one page before serving: the first visitor does not wait for it
    )
    server.start()
    if show:
        with contextlib.suppress(Exception):
            server.show("/")
    return server


def urls(port: int, address: str | None, policy: AccessPolicy) -> list[str]:
    """The URLs to print: the local one, and the one with the token for other machines."""
    host = "127.0.0.1" if address in (None, "", "0.0.0.0", "::") else address
    base = f"http://{host if ':' not in str(host) else f'[{host}]'}:{port}/"
    if policy.token is None:
        return [base]
    shown = socket.gethostname() if address in ("0.0.0.0", "::") else host
    return [base, policy.url(f"http://{shown}:{port}/")]


async def serve_until_cancelled(server: Any) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            server.stop()
