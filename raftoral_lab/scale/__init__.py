"""Scaling out (the seed's multi-cluster design): a management group and execution clusters.

Group 0 holds only who belongs to which execution cluster; each workflow runs, and each of
its checkpoints is replicated, inside one small execution cluster, so adding nodes adds
clusters instead of making every checkpoint travel to every node.
"""

from raftoral_lab.scale.placement import ClusterPolicy, RoundRobin, WorkflowPlacement
from raftoral_lab.scale.runtime import RemoteRun, ScaledRuntime
from raftoral_lab.scale.state import (
    ExecutionCluster,
    ManagementState,
    Plan,
    workflow_cluster,
)

__all__ = [
    "ClusterPolicy",
    "ExecutionCluster",
    "ManagementState",
    "Plan",
    "RemoteRun",
    "RoundRobin",
    "ScaledRuntime",
    "WorkflowPlacement",
    "workflow_cluster",
]
