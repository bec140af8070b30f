"""Fixtures of the key-value tests: a Lab whose nodes run the key-value state machine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from raftoral_lab.kv import KVStateMachine
from raftoral_lab.lab import Lab

KVLab = Callable[..., contextlib.AbstractAsyncContextManager[Lab]]


@pytest.fixture
def kv_lab() -> KVLab:
    """`async with kv_lab(nodes=3, ...) as lab`: a started Lab of KVStateMachine nodes (a
    restarted or joining node gets a fresh one, rebuilt from the snapshot and the log)."""

    @contextlib.asynccontextmanager
    async def start(**kwargs: Any) -> AsyncIterator[Lab]:
        async with Lab(state_machine=lambda _node_id: KVStateMachine(), **kwargs) as lab:
            yield lab

    return start
