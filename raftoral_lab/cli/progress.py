"""Progress on long work: a redrawn line on a terminal, a line per tenth elsewhere (CI logs)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_tenth = -1

    def update(self, done: int, note: str = "") -> None:
        text = f"{self.label} {done}/{self.total} {note}".rstrip()
        if self.tty:
            self.stream.write("\r" + text.ljust(70))
            if done >= self.total:
                self.stream.write("\n")
        else:
            tenth = done * 10 // self.total
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(text + "\n")
        self.stream.flush()


def progress_by_label() -> Callable[[str, int, int], None]:
    """A `progress(label, done, total)` callback that keeps one `Progress` line per label
    (what the benchmarks report their phases through)."""
    bars: dict[str, Progress] = {}

    def progress(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = Progress(total, f"  {label}")
        bar.update(done)

    return progress
