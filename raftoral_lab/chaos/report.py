"""What a chaos run did and found: the faults it injected, the workflows it ran, the checks
it made, and the summary it prints.

A run passes only when it made every check and every check found nothing: a check that could
not be made is recorded as failed, with the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

MAX_PROBLEMS_SHOWN = 12


class FaultType(StrEnum):
    KILL_LEADER = "kill -9 of the leader"
    KILL_FOLLOWER = "kill -9 of a follower"
    RESTART = "restart"
    PARTITION = "partition"
    HEAL = "heal"
    BROKER_RESTART = "broker restart"


FAULT_TYPES: tuple[FaultType, ...] = tuple(FaultType)


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    """Seconds since the workload started."""
    type: FaultType
    nodes: tuple[int, ...] = ()
    note: str = ""

    def describe(self) -> str:
        who = f" node(s) {', '.join(map(str, self.nodes))}" if self.nodes else ""
        return f"{self.type.value}{who}" + (f" ({self.note})" if self.note else "")


@dataclass(slots=True)
class Check:
    name: str
    problems: list[str]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class ChaosReport:
    seed: int
    nodes: int
    duration: float
    rate: float
    broker: str
    """`mosquitto` (our own, restartable) or the URL of a broker that is not ours."""
    data_dir: str
    faults: list[Fault] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Planned faults that were not injected, by reason."""
    checks: list[Check] = field(default_factory=list)
    workflows_attempted: int = 0
    workflows_started: int = 0
    """Starts the cluster acknowledged."""
    client_outcomes: Counter[str] = field(default_factory=Counter)
    """What the client was told at the end: completed, failed, no answer, error."""
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def counts(self) -> Counter[FaultType]:
        return Counter(f.type for f in self.faults)

    def add_check(self, name: str, problems: list[str], detail: str = "") -> Check:
        check = Check(name, list(problems), detail)
        self.checks.append(check)
        return check

    def reproduce(self) -> str:
        broker = "" if self.broker == "mosquitto" else f" --broker {self.broker}"
        return (
            f"raftoral-lab chaos --seed {self.seed} --nodes {self.nodes} "
            f"--duration {self.duration:g} --rate {self.rate:g}{broker}"
        )

    def summary(self) -> str:
        lines = ["", "=== chaos summary ==="]
        lines.append(
            f"seed {self.seed}, {self.nodes} nodes, {self.duration:g} s of faults, "
            f"{self.rate:g} workflows/s, {self.elapsed:.0f} s in all"
        )
        lines.append(f"reproduce: {self.reproduce()}")
        lines.append(f"data: {self.data_dir}")
        counts = self.counts()
        lines.append("faults injected:")
        width = max(len(t.value) for t in FAULT_TYPES)
        for fault_type in FAULT_TYPES:
            lines.append(f"  {fault_type.value:<{width}}  {counts.get(fault_type, 0)}")
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped: {count} x {reason}")
        outcomes = ", ".join(f"{n} {what}" for what, n in sorted(self.client_outcomes.items()))
        lines.append(
            f"workflows: {self.workflows_attempted} attempted, {self.workflows_started} started"
            + (f"; the client saw: {outcomes}" if outcomes else "")
        )
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append("checks:")
        for check in self.checks:
            mark = "PASS" if check.ok else "FAIL"
            lines.append(f"  {mark}  {check.name}" + (f": {check.detail}" if check.detail else ""))
            for problem in check.problems[:MAX_PROBLEMS_SHOWN]:
                lines.append(f"          - {problem}")
            if len(check.problems) > MAX_PROBLEMS_SHOWN:
                lines.append(f"          ... and {len(check.problems) - MAX_PROBLEMS_SHOWN} more")
        if not self.checks:
            lines.append("  FAIL  no check was made")
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(
            f"result: {verdict} (seed {self.seed}"
            + ("" if self.ok else f"; reproduce with: {self.reproduce()}")
            + ")"
        )
        return "\n".join(lines)
