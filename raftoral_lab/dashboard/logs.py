# mypy: disable-error-code="no-untyped-call"
"""Each node's log: one row per node, entries coloured by term, commit and applied marked.

The window shows the newest entries (indexes line up across rows, so divergent logs are
plain to see). Committed entries are solid, uncommitted ones pale with a dashed border, and
entries a later leader overwrote are drawn struck out under the index they lost (the lesson of
the Raft paper's Figure 8). A strip under each row shows the whole log by term.
`LogsView` is the Panel `Viewer`; `render_logs(model, group)` the pure SVG.
"""

from __future__ import annotations

import param

from raftoral_lab.dashboard import theme
from raftoral_lab.dashboard.model import Model
from raftoral_lab.dashboard.panes import PictureView
from raftoral_lab.dashboard.roles import looks, replica_of

WIDTH = 1400
LABEL = 190
TOP = 34
ROW = 92
CELL_H = 44
GHOST_H = 20
DEFAULT_WINDOW = 30
MIN_WINDOW = 16
FADED = ' opacity="0.55"'


def _strip(runs: list[tuple[int, int, int]], scale: float) -> list[tuple[int, int, int]]:
    """The runs of the whole-log strip, at most about one per pixel: neighbours of one term
    merge, and a run thinner than a pixel joins the one before it."""
    merged: list[tuple[int, int, int]] = []
    for first, last, term in runs:
        if merged:
            p_first, p_last, p_term = merged[-1]
            if p_term == term or (last - p_last) * scale < 1.0:
                merged[-1] = (p_first, last, p_term)
                continue
        merged.append((first, last, term))
    return merged


def render_logs(model: Model, group: int = 0, *, window: int = DEFAULT_WINDOW) -> str:
    view = model.view
    nodes = [look for look in looks(view, group) if replica_of(view, look.node, group)]
    if not nodes:
        return (
            f'<svg viewBox="0 0 {WIDTH} 120" class="logs"><text x="{WIDTH / 2}" y="64" '
            f'text-anchor="middle" font-size="22" fill="{theme.MUTED}">no log events yet</text>'
            "</svg>"
        )
    replicas = {look.node: replica_of(view, look.node, group) for look in nodes}
    hi = max((r.log.last_index for r in replicas.values() if r), default=0)
    for r in replicas.values():
        if r is not None:
            for o in r.log.overwritten:
                hi = max(hi, o.last)
    hi = max(hi, 1)
    window = min(window, max(MIN_WINDOW, hi))  # a short log gets wide cells
    lo = max(1, hi - window + 1)
    count = hi - lo + 1
    cell_w = (WIDTH - LABEL - 16) / window
    height = TOP + ROW * len(nodes) + 8
    out = [
        f'<svg viewBox="0 0 {WIDTH} {height}" class="logs" role="img" aria-label="logs" '
        f'data-first="{lo}" data-last="{hi}">'
    ]
    # index axis
    digits = len(str(hi))
    step = 1 if cell_w >= 9 * digits else 2 if cell_w * 2 >= 9 * digits else 5
    for k in range(count):
        index = lo + k
        if (hi - index) % step:  # counted from the newest, which always has its number
            continue
        x = LABEL + k * cell_w + cell_w / 2
        size = 15 if index < 1000 else 12
        out.append(
            f'<text x="{x:.1f}" y="{TOP - 12}" text-anchor="middle" font-size="{size}" '
            f'fill="{theme.MUTED}" font-weight="600">{index}</text>'
        )
    out.append(
        f'<text x="8" y="{TOP - 12}" font-size="15" fill="{theme.MUTED}" font-weight="700">'
        "INDEX</text>"
    )
    for row, look in enumerate(nodes):
        r = replicas[look.node]
        assert r is not None
        log = r.log
        y = TOP + row * ROW
        runs = [(run.first, run.last, run.term) for run in log.runs]
        dead = look.role in ("dead", "removed")
        overwritten = sum(o.last - o.first + 1 for o in log.overwritten)
        out.append(
            f'<g class="logrow" data-node="{look.node}" data-last="{log.last_index}" '
            f'data-commit="{r.commit_index}" data-applied="{r.applied_index}" '
            f'data-tail="{log.last_index}:{log.last_term}" data-overwritten="{overwritten}" '
            f'data-role="{look.role}"{FADED if dead else ""}>'
        )
        color = theme.role_color(look.role)
        out.append(
            f'<rect x="6" y="{y + 4}" width="64" height="{CELL_H - 4}" rx="10" fill="{color}"/>'
            f'<text x="38" y="{y + 33}" text-anchor="middle" font-size="24" font-weight="800" '
            f'fill="#FFFFFF">n{look.node}</text>'
        )
        if look.is_leader or look.stale_leader:
            out.append(
                f'<text x="82" y="{y + 31}" font-size="24" fill="{theme.ROLE_COLORS["leader"]}" '
                'stroke="#1F2430" stroke-width=".7">★</text>'
            )
        out.append(
            f'<text x="8" y="{y + CELL_H + 20}" font-size="14.5" fill="{theme.MUTED}">'
            f"last {log.last_index} · commit {r.commit_index} · applied {r.applied_index}</text>"
        )
        # cells
        snap = log.snapshot_index
        for k in range(count):
            index = lo + k
            x = LABEL + k * cell_w
            if index <= snap:
                out.append(
                    f'<rect x="{x + 1.5:.1f}" y="{y + 2}" width="{cell_w - 3:.1f}" '
                    f'height="{CELL_H}" rx="6" fill="#E8EAED" stroke="#BDC1C6" '
                    'stroke-dasharray="3 3"/>'
                )
                if index == snap or k == 0:
                    out.append(
                        f'<text x="{x + cell_w / 2:.1f}" y="{y + 29}" text-anchor="middle" '
                        f'font-size="12" fill="{theme.MUTED}">snap</text>'
                    )
                continue
            term = log.term_at(index) if index <= log.last_index else None
            if term is None:
                continue
            fill = theme.term_color(term)
            committed = index <= r.commit_index
            if committed:
                out.append(
                    f'<rect class="entry committed" x="{x + 1.5:.1f}" y="{y + 2}" '
                    f'width="{cell_w - 3:.1f}" height="{CELL_H}" rx="6" fill="{fill}" '
                    'stroke="#1F2430" stroke-opacity=".25"/>'
                )
            else:
                out.append(
                    f'<rect class="entry uncommitted" x="{x + 1.5:.1f}" y="{y + 2}" '
                    f'width="{cell_w - 3:.1f}" height="{CELL_H}" rx="6" fill="{fill}" '
                    f'fill-opacity=".35" stroke="{theme.INK}" stroke-width="2" '
                    'stroke-dasharray="5 4"/>'
                )
            out.append(
                f'<text x="{x + cell_w / 2:.1f}" y="{y + 31}" text-anchor="middle" '
                f'font-size="{19 if cell_w >= 40 else 14}" font-weight="750" '
                f'fill="{theme.INK}">{term}</text>'
            )
            if index <= r.applied_index:
                out.append(
                    f'<rect x="{x + 5:.1f}" y="{y + CELL_H - 4}" width="{cell_w - 10:.1f}" '
                    f'height="4" rx="2" fill="{theme.INK}" opacity=".55"/>'
                )
        # commit marker
        if lo <= r.commit_index <= hi:
            cx = LABEL + (r.commit_index - lo + 1) * cell_w
            out.append(
                f'<line x1="{cx:.1f}" y1="{y - 3}" x2="{cx:.1f}" y2="{y + CELL_H + 7}" '
                f'stroke="{theme.INK}" stroke-width="3.5"/>'
                f'<text x="{cx + 4 if cx < WIDTH - 60 else cx - 4:.1f}" y="{y + CELL_H + 7}" '
                f'text-anchor="{"start" if cx < WIDTH - 60 else "end"}" font-size="12" '
                f'font-weight="700" fill="{theme.INK}">commit</text>'
            )
        # overwritten entries, struck out, under the index they lost
        ghosts: dict[int, int] = {}
        for o in log.overwritten:
            for index in range(max(o.first, lo), min(o.last, hi) + 1):
                lane = ghosts.get(index, 0)
                if lane >= 1:
                    continue
                ghosts[index] = lane + 1
                x = LABEL + (index - lo) * cell_w
                gy = y + CELL_H + 10 + lane * (GHOST_H + 2)
                out.append(
                    f'<g class="overwritten" data-index="{index}" data-term="{o.term}">'
                    f'<rect x="{x + 4:.1f}" y="{gy}" width="{cell_w - 8:.1f}" height="{GHOST_H}" '
                    f'rx="4" fill="{theme.term_color(o.term)}" opacity=".75"/>'
                    f'<text x="{x + cell_w / 2:.1f}" y="{gy + 14}" text-anchor="middle" '
                    f'font-size="13" font-weight="700" fill="{theme.INK}">{o.term}</text>'
                    f'<line x1="{x + 3:.1f}" y1="{gy + GHOST_H - 2}" x2="{x + cell_w - 3:.1f}" '
                    f'y2="{gy + 2}" stroke="{theme.DANGER}" stroke-width="3"/></g>'
                )
        # the whole log, by term, when it is longer than the window
        total_hi = hi
        if lo > 1 and total_hi > 1:
            strip_y = y + CELL_H + 32
            scale = (WIDTH - LABEL - 16) / total_hi
            if snap:
                out.append(
                    f'<rect x="{LABEL}" y="{strip_y}" width="{snap * scale:.1f}" height="8" '
                    'fill="#BDC1C6"/>'
                )
            for first, last, term in _strip(runs, scale):
                out.append(
                    f'<rect x="{LABEL + (first - 1) * scale:.1f}" y="{strip_y}" '
                    f'width="{max((last - first + 1) * scale, 1.0):.1f}" height="8" '
                    f'fill="{theme.term_color(term)}"/>'
                )
            out.append(
                f'<rect x="{LABEL + (lo - 1) * scale:.1f}" y="{strip_y - 2}" '
                f'width="{max(count * scale, 2.0):.1f}" height="12" fill="none" '
                f'stroke="{theme.INK}" stroke-width="1.5"/>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def render_log_legend() -> str:
    sample = theme.term_color(2)
    return (
        '<div class="legend note">'
        f'<svg viewBox="0 0 780 34" style="max-width:780px">'
        f'<rect x="2" y="5" width="34" height="24" rx="5" fill="{sample}" stroke="#1F2430" '
        'stroke-opacity=".25"/><text x="19" y="23" text-anchor="middle" font-size="15" '
        'font-weight="700">2</text>'
        f'<text x="44" y="23" font-size="16" fill="{theme.MUTED}">committed (number: term)</text>'
        f'<rect x="250" y="5" width="34" height="24" rx="5" fill="{sample}" fill-opacity=".35" '
        f'stroke="{theme.INK}" stroke-width="2" stroke-dasharray="5 4"/>'
        f'<text x="292" y="23" font-size="16" fill="{theme.MUTED}">uncommitted</text>'
        f'<rect x="410" y="9" width="30" height="16" rx="4" fill="{sample}" opacity=".75"/>'
        f'<line x1="409" y1="24" x2="441" y2="10" stroke="{theme.DANGER}" stroke-width="3"/>'
        f'<text x="448" y="23" font-size="16" fill="{theme.MUTED}">overwritten</text>'
        f'<rect x="568" y="22" width="26" height="4" rx="2" fill="{theme.INK}" opacity=".55"/>'
        f'<text x="602" y="23" font-size="16" fill="{theme.MUTED}">applied</text>'
        f'<line x1="690" y1="4" x2="690" y2="30" stroke="{theme.INK}" stroke-width="3.5"/>'
        f'<text x="698" y="23" font-size="16" fill="{theme.MUTED}">commit</text>'
        "</svg></div>"
    )


class LogsView(PictureView):
    """The logs card of one Raft group, one row per node; `refresh()` redraws it."""

    title = "Logs"
    subtitle = "one row per node; the number in an entry is its term"
    pane_class = "logs-pane"
    group = param.Integer(default=0, bounds=(0, None), doc="The Raft group drawn.")

    def draw(self) -> str:
        return render_logs(self.model, self.group)

    def legend(self) -> str:
        return render_log_legend()
