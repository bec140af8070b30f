"""Chaos runs over real node processes (`raftoral-lab chaos`): a seeded fault plan
(`schedule`), a workload of sample workflows with their fault-free outcomes (`workload`), the
driver (`runner`), the checks on the nodes' durable state (`checks`) and the summary
(`report`)."""

from raftoral_lab.chaos.config import ChaosConfig
from raftoral_lab.chaos.report import ChaosReport, FaultType
from raftoral_lab.chaos.runner import ChaosRunner, run_chaos
from raftoral_lab.chaos.schedule import EpisodeKind, Plan, make_plan

__all__ = [
    "ChaosConfig",
    "ChaosReport",
    "ChaosRunner",
    "EpisodeKind",
    "FaultType",
    "Plan",
    "make_plan",
    "run_chaos",
]
