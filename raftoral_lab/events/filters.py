"""One way to say "the events I want", shared by the bus, the event log and the recorder.

A filter is checked once per event per subscriber on the producer's path, so it is a handful of
set look-ups and nothing else. Kind names are checked when the filter is made: a typo such as
`kinds="role_change"` fails at once instead of silently matching nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from raftoral_lab.errors import EventSchemaError
from raftoral_lab.events.models import EVENT_KINDS, EventBase

Names: TypeAlias = str | Iterable[str] | None
"""One name (a kind, a workflow id), any iterable of names, or None (no constraint)."""
Ids: TypeAlias = int | Iterable[int] | None
"""One id (a node, a group), any iterable of ids, or None (no constraint)."""


def _names(value: Names) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


def _ids(value: Ids) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset((value,)) if isinstance(value, int) else frozenset(value)


def check_kinds(kinds: frozenset[str] | None) -> frozenset[str] | None:
    """Refuse kind names that do not exist, with the closest real one as a hint."""
    if kinds is None:
        return None
    for kind in sorted(kinds):
        if kind not in EVENT_KINDS:
            close = difflib.get_close_matches(kind, EVENT_KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise EventSchemaError(
                f"cannot filter on unknown event kind {kind!r}{hint}", kind=kind, fields=("kind",)
            )
    return kinds


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Match events by kind, emitting node, Raft group and workflow id (None: any).

    `workflows` matches only events that carry a `workflow_id` (the workflow kinds).
    """

    kinds: frozenset[str] | None = None
    nodes: frozenset[int] | None = None
    groups: frozenset[int] | None = None
    workflows: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        *,
        kinds: Names = None,
        nodes: Ids = None,
        groups: Ids = None,
        workflows: Names = None,
    ) -> EventFilter | None:
        """A filter from loose arguments (one value or many); None when nothing constrains."""
        f = cls(
            check_kinds(_names(kinds)),
            _ids(nodes),
            _ids(groups),
            _names(workflows),
        )
        return None if f.is_empty() else f

    def is_empty(self) -> bool:
        return (
            self.kinds is None
            and self.nodes is None
            and self.groups is None
            and (self.workflows is None)
        )

    def compile(self) -> Callable[[EventBase], bool]:
        """A predicate that checks only the constrained dimensions: the bus calls it once per
        event per subscriber, so a kinds-only filter costs one set look-up."""
        kinds, nodes, groups, workflows = self.kinds, self.nodes, self.groups, self.workflows
        if nodes is None and groups is None and workflows is None and kinds is not None:
            return lambda e: e.kind in kinds
        if kinds is None and groups is None and workflows is None and nodes is not None:
            return lambda e: e.node in nodes
        return self

    def __call__(self, event: EventBase) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.nodes is not None and event.node not in self.nodes:
            return False
        if self.groups is not None and event.group not in self.groups:
            return False
        return self.workflows is None or getattr(event, "workflow_id", None) in self.workflows
