"""A deterministic simulator of a Raft cluster: virtual ticks, seeded faults, invariants."""

from raftoral_lab.sim.invariants import InvariantChecker
from raftoral_lab.sim.simulation import SimNode, Simulation, StateMachine

__all__ = ["InvariantChecker", "SimNode", "Simulation", "StateMachine"]
