"""The public names of each package: written down here, so a change to them is deliberate.

When a name is added to (or removed from) an `__all__`, update the matching set below in the
same change.
"""

from __future__ import annotations

import importlib

import pytest

import raftoral_lab
import raftoral_lab.core
import raftoral_lab.sim

ROOT_ALL = {"Lab", "RaftoralError", "Simulation", "WorkflowApp", "WorkflowContext", "__version__"}

CORE_ALL = {
    "MESSAGE_KINDS",
    "MESSAGE_TYPES",
    "AppendEntries",
    "AppendResponse",
    "ConfChange",
    "ConfChangeOp",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "Message",
    "PeerStatus",
    "PersistentState",
    "RaftConfig",
    "RawNode",
    "Ready",
    "ReplicationState",
    "RequestVote",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "Status",
    "Storage",
    "TimeoutNow",
    "Trace",
    "VoteResponse",
    "bootstrap_state",
}

SIM_ALL = {"InvariantChecker", "SimNode", "Simulation", "StateMachine"}

PACKAGES = ["raftoral_lab", "raftoral_lab.core", "raftoral_lab.sim", "raftoral_lab.events"]


def _diff(actual: set[str], expected: set[str]) -> str:
    return f"added: {sorted(actual - expected)}, missing: {sorted(expected - actual)}"


def test_root_all_is_exactly_the_documented_set() -> None:
    actual = set(raftoral_lab.__all__)
    assert actual == ROOT_ALL, f"raftoral_lab.__all__ changed ({_diff(actual, ROOT_ALL)})"


def test_core_all_is_exactly_the_documented_set() -> None:
    actual = set(raftoral_lab.core.__all__)
    assert actual == CORE_ALL, f"raftoral_lab.core.__all__ changed ({_diff(actual, CORE_ALL)})"


def test_sim_all_is_exactly_the_documented_set() -> None:
    actual = set(raftoral_lab.sim.__all__)
    assert actual == SIM_ALL, f"raftoral_lab.sim.__all__ changed ({_diff(actual, SIM_ALL)})"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{package}.__all__ lists a name twice: {names}"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what the package does not define: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_star_import_gives_exactly_all(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(importlib.import_module(package).__all__)


def test_version_is_a_string() -> None:
    assert isinstance(raftoral_lab.__version__, str) and raftoral_lab.__version__


def test_every_event_model_is_exported_from_events() -> None:
    """Each kind of the event union can be matched on by its class, imported from `events`."""
    import raftoral_lab.events as events

    missing = sorted(
        cls.__name__ for cls in events.EVENT_TYPES.values() if cls.__name__ not in events.__all__
    )
    assert not missing, f"event models not in raftoral_lab.events.__all__: {missing}"


def test_workflow_io_errors_are_in_the_one_tree() -> None:
    """Both ends of a workflow's typed boundary have their own error, caught as ValueError too."""
    from raftoral_lab import errors

    for name in ("InvalidWorkflowInput", "InvalidWorkflowOutput"):
        error = getattr(errors, name, None)
        assert isinstance(error, type), f"raftoral_lab.errors.{name} is missing"
        assert issubclass(error, errors.WorkflowError) and issubclass(error, ValueError), name


DASHBOARD_ALL = {
    "ControlUnavailable",
    "Controller",
    "CountersView",
    "Dashboard",
    "FeedView",
    "GatedController",
    "LabController",
    "LogsView",
    "ObserverController",
    "SimulationController",
    "SimulatorControls",
    "TiersView",
    "TimelineView",
    "TopologyView",
    "WorkflowsView",
    "lab_dashboard",
    "replay_dashboard",
    "simulation_dashboard",
}


def test_dashboard_all_is_exactly_the_documented_set() -> None:
    """Its Panel classes (the page and one `Viewer` per picture) load lazily, with Panel."""
    import raftoral_lab.dashboard as dashboard

    actual = set(dashboard.__all__)
    assert actual == DASHBOARD_ALL, f"dashboard.__all__ changed ({_diff(actual, DASHBOARD_ALL)})"
    missing = [name for name in sorted(actual) if not hasattr(dashboard, name)]
    assert not missing, f"raftoral_lab.dashboard.__all__ names what it does not define: {missing}"
