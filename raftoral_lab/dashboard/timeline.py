# mypy: disable-error-code="no-untyped-call"
"""Terms and leaders over time: who led when, and every election, per node.

A bar on a node's row is a leadership (its term written in it); a diamond is an election
(a real vote), a small circle a pre-vote; filled when won, hollow when lost or still open.
`TimelineView` is the Panel `Viewer` (one timeline per Raft group); `render_timeline(model,
group)` the pure SVG.
"""

from __future__ import annotations

import math
import time
from typing import Any

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model, ReplayModel
from raftoral_lab.dashboard.panes import PictureView
from raftoral_lab.dashboard.roles import looks

WIDTH = 820
LABEL = 70
TOP = 44
ROW = 46
CLOSED = ' opacity="0.8"'
LIVE_SPAN = {"s": 60.0, "tick": 400.0}
"""How far back a live timeline reaches (seconds, or ticks in a simulation)."""


def _nice_step(span: float) -> float:
    raw = span / 7
    if raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def render_timeline(model: Model, group: int = 0) -> str:
    view = model.view
    nodes = [look.node for look in looks(view, group)]
    now = model.now
    if not nodes or now is None or model.t0 is None:
        return (
            f'<svg viewBox="0 0 {WIDTH} 100" class="timeline"><text x="{WIDTH / 2}" y="56" '
            f'text-anchor="middle" font-size="22" fill="{theme.MUTED}">no elections yet</text>'
            "</svg>"
        )
    unit = model.time_unit
    origin = model.t0
    if isinstance(model, ReplayModel):
        start, end, cursor = model.start, max(model.end, model.start + 1e-9), model.cursor
    else:
        end = max(now, origin + 1e-9)
        start = max(origin, end - LIVE_SPAN.get(unit, 60.0))
        cursor = None
    span = end - start or 1.0
    plot_w = WIDTH - LABEL - 20

    def x_of(t: float) -> float:
        return LABEL + (min(max(t, start), end) - start) / span * plot_w

    height = TOP + ROW * len(nodes) + 34
    row_of = {n: i for i, n in enumerate(nodes)}
    out = [
        f'<svg viewBox="0 0 {WIDTH} {height}" class="timeline" role="img" '
        f'aria-label="leader timeline">'
        '<defs><pattern id="down-hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#ECEFF1"/>'
        f'<line x1="0" y1="0" x2="0" y2="8" stroke="{theme.ROLE_COLORS["dead"]}" '
        'stroke-width="3"/></pattern></defs>'
    ]
    # grid and axis
    step = _nice_step(span)
    first = math.ceil((start - origin) / step) * step
    tick = first
    while origin + tick <= end + 1e-9:
        x = x_of(origin + tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 30}" '
            f'stroke="{theme.FAINT}" stroke-width="1"/>'
        )
        label = f"{tick:g} s" if unit == "s" else f"tick {origin + tick:g}"
        out.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="15" '
            f'fill="{theme.MUTED}">{label}</text>'
        )
        tick += step
    for node, i in row_of.items():
        y = TOP + i * ROW
        out.append(
            f'<rect x="{LABEL}" y="{y + 4}" width="{plot_w}" height="{ROW - 8}" rx="6" '
            'fill="#F8F9FA"/>'
            f'<text x="{LABEL - 14}" y="{y + ROW / 2 + 8}" text-anchor="end" font-size="22" '
            f'font-weight="800" fill="{theme.INK}">n{node}</text>'
        )
    # when each node was down (crashed or removed), as the lab events said
    for node, changes in model.status_changes.items():
        if node not in row_of:
            continue
        y = TOP + row_of[node] * ROW
        down_since: float | None = None
        intervals: list[tuple[float, float, str]] = []
        why = ""
        for ts, status in changes:
            if status != "alive" and down_since is None:
                down_since, why = ts, status
            elif status == "alive" and down_since is not None:
                intervals.append((down_since, ts, why))
                down_since = None
        if down_since is not None:
            intervals.append((down_since, now if cursor is not None else end, why))
        for since, until, why in intervals:
            if until < start:
                continue
            x1, x2 = x_of(since), x_of(until)
            out.append(
                f'<rect class="down" data-node="{node}" x="{x1:.1f}" y="{y + 6}" '
                f'width="{max(x2 - x1, 2):.1f}" height="{ROW - 12}" rx="5" '
                f'fill="url(#down-hatch)" stroke="{theme.ROLE_COLORS["dead"]}" '
                'stroke-width="1.5"/>'
            )
            if x2 - x1 > 70:
                out.append(
                    f'<text x="{x1 + 8:.1f}" y="{y + ROW / 2 + 6}" font-size="15" '
                    f'font-weight="700" fill="{theme.MUTED}">{why}</text>'
                )
    # leaderships
    leader_color = theme.ROLE_COLORS["leader"]
    terms_drawn: set[int] = set()
    for span_ in view.leaders(group):
        if span_.node not in row_of:
            continue
        until = span_.until if span_.until is not None else (now if cursor is not None else end)
        if until < start:
            continue
        x1, x2 = x_of(span_.since), x_of(until)
        y = TOP + row_of[span_.node] * ROW
        open_ = span_.until is None
        out.append(
            f'<rect class="leadership" data-node="{span_.node}" data-term="{span_.term}" '
            f'x="{x1:.1f}" y="{y + 8}" width="{max(x2 - x1, 3):.1f}" height="{ROW - 16}" rx="6" '
            f'fill="{leader_color}" stroke="#1F2430" stroke-opacity=".3"'
            f"{'' if open_ else CLOSED}/>"
        )
        if x2 - x1 > 62:
            out.append(
                f'<text x="{x1 + 8:.1f}" y="{y + ROW / 2 + 6}" font-size="17" font-weight="750" '
                f'fill="#1F2430">term {span_.term}</text>'
            )
        elif x2 - x1 > 22:
            out.append(
                f'<text x="{x1 + 4:.1f}" y="{y + ROW / 2 + 6}" font-size="15" font-weight="750" '
                f'fill="#1F2430">{span_.term}</text>'
            )
        if span_.term not in terms_drawn and span_.since >= start:
            terms_drawn.add(span_.term)
            out.append(
                f'<line x1="{x1:.1f}" y1="{TOP - 8}" x2="{x1:.1f}" y2="{height - 30}" '
                f'stroke="{leader_color}" stroke-width="2" stroke-dasharray="4 4"/>'
                f'<text x="{x1:.1f}" y="{TOP - 14}" text-anchor="middle" font-size="15" '
                f'font-weight="700" fill="{theme.INK}">t{span_.term}</text>'
            )
    # elections
    for e in view.elections(group):
        if e.node not in row_of or e.started < start:
            continue
        x = x_of(e.started)
        cy = TOP + row_of[e.node] * ROW + ROW / 2
        won = e.outcome == "won"
        if e.pre_vote:
            color = theme.ROLE_COLORS["pre_candidate"]
            fill = color if won else "#FFFFFF"
            out.append(
                f'<circle class="election prevote" cx="{x:.1f}" cy="{cy:.1f}" r="6" '
                f'fill="{fill}" stroke="{color}" stroke-width="2.5"/>'
            )
        else:
            color = theme.ROLE_COLORS["candidate"]
            fill = color if won else "#FFFFFF"
            d = 10
            out.append(
                f'<path class="election vote" data-term="{e.term}" d="M{x:.1f},{cy - d:.1f} '
                f'L{x + d:.1f},{cy:.1f} L{x:.1f},{cy + d:.1f} L{x - d:.1f},{cy:.1f} Z" '
                f'fill="{fill}" stroke="{color}" stroke-width="3"/>'
            )
    if cursor is not None:
        x = x_of(cursor)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP - 10}" x2="{x:.1f}" y2="{height - 28}" '
            f'stroke="{theme.DANGER}" stroke-width="3"/>'
        )
    out.append("</svg>")
    return "".join(out)


def render_timeline_legend() -> str:
    lead = theme.ROLE_COLORS["leader"]
    cand = theme.ROLE_COLORS["candidate"]
    pre = theme.ROLE_COLORS["pre_candidate"]
    return (
        '<svg viewBox="0 0 820 30" style="max-width:820px">'
        '<defs><pattern id="down-hatch-legend" width="8" height="8" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="8" height="8" fill="#ECEFF1"/><line x1="0" y1="0" x2="0" y2="8" '
        f'stroke="{theme.ROLE_COLORS["dead"]}" stroke-width="3"/></pattern></defs>'
        f'<rect x="2" y="6" width="46" height="20" rx="5" fill="{lead}"/>'
        f'<text x="56" y="22" font-size="16" fill="{theme.MUTED}">leadership (term)</text>'
        f'<path d="M232,6 L242,16 L232,26 L222,16 Z" fill="{cand}" stroke="{cand}" '
        'stroke-width="3"/>'
        f'<text x="252" y="22" font-size="16" fill="{theme.MUTED}">election won</text>'
        f'<path d="M390,6 L400,16 L390,26 L380,16 Z" fill="#fff" stroke="{cand}" '
        'stroke-width="3"/>'
        f'<text x="410" y="22" font-size="16" fill="{theme.MUTED}">election lost / open</text>'
        f'<circle cx="602" cy="16" r="6" fill="{pre}" stroke="{pre}" stroke-width="2.5"/>'
        f'<text x="616" y="22" font-size="16" fill="{theme.MUTED}">pre-vote</text>'
        '<rect x="700" y="6" width="40" height="20" rx="5" fill="url(#down-hatch-legend)" '
        f'stroke="{theme.ROLE_COLORS["dead"]}"/>'
        f'<text x="748" y="22" font-size="16" fill="{theme.MUTED}">down</text>'
        "</svg>"
    )


class TimelineView(PictureView):
    """The terms-and-leaders card: one timeline per Raft group (a management group and
    execution groups each elect their own leaders). `refresh()` redraws it; live, the
    dashboard also calls it about once a second between events, as time goes on."""

    title = "Terms and leaders"
    subtitle = "who led when; elections marked"
    pane_class = "timeline-pane"

    def __init__(self, model: Model, **params: Any) -> None:
        self.drawn_at = 0.0
        """`time.monotonic()` of the last redraw."""
        super().__init__(model, **params)

    def draw(self) -> str:
        self.drawn_at = time.monotonic()
        groups = self.model.view.groups() or [0]
        if len(groups) == 1:
            return render_timeline(self.model, groups[0])
        return "".join(
            f'<div class="note" style="font-weight:700;margin-top:6px">group {g}</div>'
            + render_timeline(self.model, g)
            for g in groups
        )

    def legend(self) -> str:
        return render_timeline_legend()
