# mypy: disable-error-code="no-untyped-call"
"""The topology: nodes as circles in their role colour, partition sides drawn apart.

Edges join the nodes that can reach each other; when message events arrive, each edge is
labelled with its message rate and drawn thicker the busier it is. No message events, no
rates: the view says so rather than invent traffic. `TopologyView` is the Panel `Viewer`;
`render_topology(model, group)` the pure SVG.
"""

from __future__ import annotations

import math
from html import escape

import param

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.panes import PictureView
from raftoral_lab.dashboard.roles import NodeLook, looks, sides

WIDTH = 700
HEIGHT = 560
CAPTION = 170
"""Width a node's caption needs (role, term and commit under the circle)."""


def radius_for(total: int) -> float:
    return 46.0 if total <= 5 else 38.0 if total <= 7 else 30.0


def _positions(
    groups: list[list[int]], r: float
) -> tuple[dict[int, tuple[float, float]], list[float]]:
    """Node centres and the x of the dividers between partition sides. A side wide enough
    gets a ring (an ellipse); a narrow one a column of nodes (two columns when long)."""
    total = sum(len(g) for g in groups) or 1
    positions: dict[int, tuple[float, float]] = {}
    dividers: list[float] = []
    x0 = 10.0
    gap = 60.0 if len(groups) > 1 else 0.0
    usable = WIDTH - 20.0 - gap * (len(groups) - 1)
    top = 40.0 if len(groups) > 1 else 0.0  # room for the side's name
    cy = top + (HEIGHT - top) / 2 - 16
    # every side gets room for one caption; what is left goes by the number of nodes
    least = CAPTION + 10
    k = len(groups)
    if least * k > usable or total == k:
        shares = [usable / k] * k
    else:
        spare = usable - least * k
        shares = [least + spare * (len(g) - 1) / (total - k) for g in groups]
    for gi, group in enumerate(groups):
        share = shares[gi]
        cx = x0 + share / 2
        n = len(group)
        if n == 1:
            positions[group[0]] = (cx, cy)
        elif share >= CAPTION * min(n, 3) + 20:
            rx = min(share / 2 - CAPTION / 2 - 4, 260.0)
            ry = (HEIGHT - top) / 2 - r - 62
            turn = math.pi / n if n % 2 == 0 else 0.0  # an even ring stands on a side
            for i, node in enumerate(group):
                angle = -math.pi / 2 + turn + 2 * math.pi * i / n
                positions[node] = (cx + rx * math.cos(angle), cy + ry * math.sin(angle))
        else:
            cols = 1 if n <= 3 else 2
            rows = math.ceil(n / cols)
            dy = min(2 * r + 70, (HEIGHT - top - 80) / rows)
            dx = min(share / cols, CAPTION)
            for i, node in enumerate(group):
                col, row = i % cols, i // cols
                x = cx + (col - (cols - 1) / 2) * dx
                y = (
                    cy
                    + (row - (rows - 1) / 2) * dy
                    + (dy / 2 if col else 0.0)
                    - (dy / 4 if cols > 1 else 0.0)
                )
                positions[node] = (x, y)
        x0 += share
        if gi < len(groups) - 1:
            dividers.append(x0 + gap / 2)
            x0 += gap
    return positions, dividers


def _rate_text(rate: float, unit: str) -> str:
    per = "/tick" if unit == "tick" else "/s"
    return f"{rate:.0f}{per}" if rate >= 10 else f"{rate:.1f}{per}"


def _node_svg(look: NodeLook, x: float, y: float, r: float, sends: str = "") -> str:
    color = theme.role_color(look.role)
    label = theme.ROLE_LABELS.get(look.role, look.role)
    big = r >= 40
    parts = [
        f'<g class="node" data-node="{look.node}" data-role="{look.role}" '
        f'data-status="{look.status}" data-leader="{str(look.is_leader).lower()}" '
        f'data-stale="{str(look.stale_leader).lower()}" data-term="{look.term}">'
    ]
    if look.is_leader:
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 11:.0f}" fill="none" '
            f'stroke="{color}" stroke-width="5" opacity=".45"/>'
        )
    if look.role == "removed":
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.0f}" fill="#FFFFFF" stroke="{color}" '
            'stroke-width="4" stroke-dasharray="8 6"/>'
        )
        ink = color
    else:
        dash = ' stroke-dasharray="9 6"' if look.stale_leader else ""
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.0f}" fill="{color}" '
            f'stroke="#1F2430" stroke-opacity=".35" stroke-width="3"{dash}/>'
        )
        ink = "#FFFFFF"
    parts.append(
        f'<text x="{x:.1f}" y="{y + r * 0.24:.1f}" text-anchor="middle" '
        f'font-size="{r * 0.7:.0f}" font-weight="800" fill="{ink}">n{look.node}</text>'
    )
    if look.is_leader or look.stale_leader:
        parts.append(
            f'<text x="{x:.1f}" y="{y - r - 8:.1f}" text-anchor="middle" font-size="30" '
            f'fill="{theme.ROLE_COLORS["leader"]}" stroke="#1F2430" stroke-width=".8">★</text>'
        )
    if look.role == "dead":
        d = r * 0.55
        parts.append(
            f'<path d="M{x - d:.1f},{y - d:.1f} L{x + d:.1f},{y + d:.1f} M{x + d:.1f},'
            f'{y - d:.1f} L{x - d:.1f},{y + d:.1f}" stroke="#FFFFFF" stroke-width="5" '
            'stroke-linecap="round" opacity=".55"/>'
        )
    caption = label + (" (stale)" if look.stale_leader else "")
    parts.append(
        f'<text x="{x:.1f}" y="{y + r + 24:.1f}" text-anchor="middle" '
        f'font-size="{20 if big else 17}" font-weight="700" fill="{theme.INK}">'
        f"{escape(caption)}</text>"
    )
    if look.role != "removed":
        sub = (
            f"term {look.term} · commit {look.commit_index}"
            if big
            else f"t{look.term} · c{look.commit_index}"
        )
        parts.append(
            f'<text x="{x:.1f}" y="{y + r + 45:.1f}" text-anchor="middle" '
            f'font-size="{16 if big else 14}" fill="{theme.MUTED}">{sub}</text>'
        )
        if sends:
            parts.append(
                f'<text x="{x:.1f}" y="{y + r + 64:.1f}" text-anchor="middle" '
                f'font-size="{15 if big else 13}" fill="{theme.MUTED}">{sends}</text>'
            )
    if look.broker_down:
        parts.append(
            f'<text x="{x:.1f}" y="{y - r - 38:.1f}" text-anchor="middle" font-size="16" '
            f'font-weight="700" fill="{theme.DANGER}">no broker</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def render_topology(model: Model, group: int = 0) -> str:
    view = model.view
    nodes = looks(view, group)
    if not nodes:
        return (
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="topology"><text x="{WIDTH / 2}" '
            f'y="{HEIGHT / 2}" text-anchor="middle" font-size="24" fill="{theme.MUTED}">'
            "waiting for the first events…</text></svg>"
        )
    by_id = {n.node: n for n in nodes}
    groups = sides(view, sorted(by_id))
    r = radius_for(len(nodes))
    positions, dividers = _positions(groups, r)
    out = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="topology" role="img" '
        f'aria-label="cluster topology" data-sides="{len(groups)}">'
    ]
    # partition sides: tinted regions and dashed cuts
    if len(groups) > 1:
        edges_x = [0.0, *dividers, float(WIDTH)]
        for i, group_nodes in enumerate(groups):
            left, right = edges_x[i] + 6, edges_x[i + 1] - 6
            out.append(
                f'<rect x="{left:.1f}" y="8" width="{right - left:.1f}" height="{HEIGHT - 16}" '
                'rx="18" fill="#F1F3F4"/>'
            )
            names = ", ".join(f"n{n}" for n in group_nodes)
            out.append(
                f'<text x="{(left + right) / 2:.1f}" y="34" text-anchor="middle" font-size="17" '
                f'font-weight="700" fill="{theme.MUTED}">side {chr(65 + i)}: {names}</text>'
            )
        for x in dividers:
            out.append(
                f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{HEIGHT - 14}" '
                f'stroke="{theme.DANGER}" stroke-width="4" stroke-dasharray="12 9"/>'
                f'<text x="{x:.1f}" y="{HEIGHT / 2:.1f}" text-anchor="middle" font-size="26" '
                f'fill="{theme.DANGER}" transform="rotate(-90 {x:.1f} {HEIGHT / 2:.1f})" '
                'dy="-8">partition</text>'
            )
    # edges between nodes that can reach each other
    rates = model.rates
    for group_nodes in groups:
        for i, a in enumerate(group_nodes):
            for b in group_nodes[i + 1 :]:
                (x1, y1), (x2, y2) = positions[a], positions[b]
                down = by_id[a].role in ("dead", "removed") or by_id[b].role in ("dead", "removed")
                rate = rates.get((a, b), 0.0) + rates.get((b, a), 0.0)
                width = 2.0 + (min(8.0, 2.2 * math.log1p(rate)) if rate else 0.0)
                style = ' stroke-dasharray="4 8"' if down else ""
                color = "#C4C7CC" if down else "#8A919C"
                out.append(
                    f'<line class="edge" data-a="{a}" data-b="{b}" x1="{x1:.1f}" y1="{y1:.1f}" '
                    f'x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" stroke-width="{width:.1f}"'
                    f'{style} stroke-linecap="round"/>'
                )
                if rate and not down and len(group_nodes) <= 3:
                    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
                    text = _rate_text(rate, model.time_unit)
                    out.append(
                        f'<rect x="{mx - 38:.1f}" y="{my - 14:.1f}" width="76" height="26" rx="8" '
                        'fill="#FFFFFF" stroke="#DADCE0"/>'
                        f'<text x="{mx:.1f}" y="{my + 5:.1f}" text-anchor="middle" '
                        f'font-size="15" font-weight="650" fill="{theme.INK}">{text}</text>'
                    )
    side_of = {node: group for group in groups for node in group}
    sending: dict[int, float] = {}
    for (src, _dst), rate in rates.items():
        sending[src] = sending.get(src, 0.0) + rate
    for look in nodes:
        x, y = positions[look.node]
        rate = sending.get(look.node, 0.0)
        sends = f"sends {_rate_text(rate, model.time_unit)}" if rate else ""
        sends = sends if len(side_of[look.node]) <= 4 else ""  # a crowded ring: edges only
        out.append(_node_svg(look, x, y, r, sends))
    if not model.message_events:
        out.append(
            f'<text x="{WIDTH - 12}" y="{HEIGHT - 10}" text-anchor="end" font-size="14" '
            f'fill="{theme.MUTED}">no message events from these nodes: no rates on the edges'
            "</text>"
        )
    out.append("</svg>")
    return "".join(out)


def render_legend() -> str:
    keys = ("leader", "follower", "candidate", "pre_candidate", "learner", "dead", "removed")
    chips = "".join(theme.chip(theme.ROLE_LABELS[k], theme.ROLE_COLORS[k]) for k in keys)
    return f'<div class="legend">{chips}</div>'


class TopologyView(PictureView):
    """The topology card of one Raft group: `pn.panel(TopologyView(model))` alone, or part
    of the dashboard, which calls `refresh()` when new events were folded."""

    title = "Topology"
    subtitle = "roles, partitions, message rates"
    pane_class = "topology-pane"
    group = param.Integer(default=0, bounds=(0, None), doc="The Raft group drawn.")

    def draw(self) -> str:
        return render_topology(self.model, self.group)

    def legend(self) -> str:
        return render_legend()
