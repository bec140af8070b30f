"""The async node: drives a Raft core with a transport, storage and a state machine."""

from raftoral_lab.node.node import Node
from raftoral_lab.node.state_machine import CommandLog, StateMachine

__all__ = ["CommandLog", "Node", "StateMachine"]
