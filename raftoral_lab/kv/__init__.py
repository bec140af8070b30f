"""A linearizable key-value store on the same Raft, and the tools to check that it is.

- `KVStateMachine`: get, put and compare-and-set, applied from the log (reads too), with a
  per-client session table so a retried command takes effect once;
- `KVClient`: async get/put/cas through a `Lab` or a `Node`, recording a `History`;
- `check(history)`: a linearizability checker (Wing-Gong search with memoization, per key);
- `KVSimDriver` and `Nemesis`: the same clients on the deterministic simulator, under faults.
"""

from raftoral_lab.kv.checker import CheckResult, check, linearizable
from raftoral_lab.kv.client import CommandRefused, KVClient, OutcomeUnknown
from raftoral_lab.kv.history import History, HistoryEvent, Operation
from raftoral_lab.kv.machine import Command, KVStateMachine, Value
from raftoral_lab.kv.simdriver import KVSimDriver, Nemesis

__all__ = [
    "CheckResult",
    "Command",
    "CommandRefused",
    "History",
    "HistoryEvent",
    "KVClient",
    "KVSimDriver",
    "KVStateMachine",
    "Nemesis",
    "Operation",
    "OutcomeUnknown",
    "Value",
    "check",
    "linearizable",
]
