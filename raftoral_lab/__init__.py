"""raftoral_lab: see Raft consensus and durable workflows at work.

The names below are loaded on first use, so `import raftoral_lab.core` stays light (stdlib
only) while `from raftoral_lab import Lab` brings in the transports it needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from raftoral_lab.errors import RaftoralError

if TYPE_CHECKING:
    from raftoral_lab.lab import Lab
    from raftoral_lab.sim import Simulation
    from raftoral_lab.workflow import WorkflowApp, WorkflowContext

__version__ = "0.1.0"

__all__ = ["Lab", "RaftoralError", "Simulation", "WorkflowApp", "WorkflowContext", "__version__"]

_LAZY = {
    "Lab": "raftoral_lab.lab",
    "Simulation": "raftoral_lab.sim",
    "WorkflowApp": "raftoral_lab.workflow",
    "WorkflowContext": "raftoral_lab.workflow",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'raftoral_lab' has no attribute {name!r}")
