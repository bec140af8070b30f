"""Replaying a recording: the same views, folded up to the time the slider says."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raftoral_lab.dashboard.model import ReplayModel
from raftoral_lab.events.models import EventBase
from raftoral_lab.events.recording import load


def replay_model(source: str | Path | Any, *, title: str | None = None) -> ReplayModel:
    """A `ReplayModel` of a JSONL recording path, a loaded `Recording`, or events."""
    if isinstance(source, str | Path):
        recording = load(source)
        events: Sequence[EventBase] = list(recording.events)
        name = title or f"{Path(source).name} (cluster {recording.header.cluster!r})"
    elif hasattr(source, "events") and hasattr(source, "header"):
        events = list(source.events)
        name = title or f"recording of cluster {source.header.cluster!r}"
    else:
        events = list(source)
        name = title or "recording"
    return ReplayModel(events, title=name)
