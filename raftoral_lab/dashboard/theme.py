"""Colours, type and CSS: one palette for every view, chosen for a projector.

Role colours follow the Okabe-Ito palette (told apart with the common colour-vision
deficiencies) and are always paired with a word or a symbol, never colour alone. Terms get
their own cycle of hues, lighter than the role colours, so a log cell is never mistaken for
a node.
"""

from __future__ import annotations

from html import escape
from typing import Final

ROLE_COLORS: Final[dict[str, str]] = {
    "leader": "#E69F00",  # amber: the one everybody looks at
    "follower": "#0072B2",  # blue
    "candidate": "#D55E00",  # vermilion
    "pre_candidate": "#CC79A7",  # reddish purple
    "learner": "#009E73",  # bluish green
    "dead": "#9AA0A6",  # grey: crashed
    "removed": "#5F6368",  # dark grey: left the cluster
    "unknown": "#BDC1C6",
}

ROLE_LABELS: Final[dict[str, str]] = {
    "leader": "leader",
    "follower": "follower",
    "candidate": "candidate",
    "pre_candidate": "pre-candidate",
    "learner": "learner",
    "dead": "crashed",
    "removed": "removed",
    "unknown": "unknown",
}

TERM_COLORS: Final[tuple[str, ...]] = (
    "#8ECAE6",  # sky
    "#FFB703",  # saffron
    "#90BE6D",  # green
    "#F28482",  # coral
    "#B8A1E3",  # lavender
    "#4CC9F0",  # cyan
    "#F9C74F",  # yellow
    "#43AA8B",  # teal
    "#F8961E",  # orange
    "#E5989B",  # rose
)

STATUS_COLORS: Final[dict[str, str]] = {
    "running": "#0072B2",
    "sleeping": "#56B4E9",
    "completed": "#009E73",
    "failed": "#D55E00",
    "cancelled": "#5F6368",
}

CATEGORY_COLORS: Final[dict[str, str]] = {
    "roles": "#E69F00",
    "log": "#0072B2",
    "messages": "#9AA0A6",
    "lab": "#D55E00",
    "workflows": "#009E73",
    "other": "#5F6368",
}

INK = "#1F2430"
MUTED = "#5F6368"
FAINT = "#DADCE0"
PAPER = "#FFFFFF"
BACKGROUND = "#F4F5F7"
DANGER = "#C62828"
FONT = (
    "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, 'DejaVu Sans', "
    "'Liberation Sans', sans-serif"
)
MONO = "'JetBrains Mono', 'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace"


def term_color(term: int) -> str:
    return TERM_COLORS[term % len(TERM_COLORS)] if term > 0 else "#E8EAED"


def role_color(role: str) -> str:
    return ROLE_COLORS.get(role, ROLE_COLORS["unknown"])


def chip(text: str, color: str, *, ink: str = "#FFFFFF", cls: str = "chip") -> str:
    """A rounded label (HTML) in `color`."""
    return f'<span class="{cls}" style="background:{color};color:{ink}">{escape(text)}</span>'


# --- CSS ---------------------------------------------------------------------------------------

PAGE_CSS = f"""
:host, body {{
  font-family: {FONT};
  color: {INK};
}}
body {{ background: {BACKGROUND}; }}
"""

CARD_CSS = f"""
:host {{
  background: {PAPER};
  border-radius: 14px;
  box-shadow: 0 1px 3px rgba(0,0,0,.12), 0 1px 2px rgba(0,0,0,.06);
  padding: 10px 16px 14px 16px;
  font-family: {FONT};
  color: {INK};
}}
"""

HTML_CSS = f"""
:host {{ font-family: {FONT}; color: {INK}; width: 100%; }}
.title {{ font-size: 26px; font-weight: 750; margin: 2px 0 6px 0; letter-spacing: .2px; }}
.subtitle {{ font-size: 17px; color: {MUTED}; font-weight: 500; margin-left: 10px; }}
.note {{ font-size: 17px; color: {MUTED}; margin: 4px 0; }}
.warn {{ font-size: 18px; color: {DANGER}; font-weight: 600; margin: 4px 0; }}
.chip {{ display: inline-block; border-radius: 999px; padding: 3px 12px; margin: 2px 4px 2px 0;
        font-size: 17px; font-weight: 650; white-space: nowrap; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }}
svg {{ width: 100%; height: auto; display: block; font-family: {FONT}; }}
svg text {{ font-family: {FONT}; }}
table.grid {{ border-collapse: collapse; width: 100%; font-size: 16px; }}
table.grid th {{ text-align: left; color: {MUTED}; font-weight: 650; font-size: 15px;
                text-transform: uppercase; letter-spacing: .6px; padding: 4px 8px;
                border-bottom: 2px solid {FAINT}; }}
table.grid td {{ padding: 5px 8px; border-bottom: 1px solid #EEF0F2; vertical-align: top; }}
table.grid td.num {{ text-align: right; font-variant-numeric: tabular-nums;
                     white-space: nowrap; }}
table.feed {{ font-size: 16px; }}
table.compact th {{ letter-spacing: .2px; padding: 4px 5px; }}
table.compact td {{ padding: 4px 5px; }}
table.feed td.mono {{ font-family: {MONO}; font-size: 14.5px; color: #3C4043;
                     word-break: break-word; }}
.kind {{ display: inline-block; border-radius: 6px; padding: 1px 8px; color: #fff;
         font-weight: 650; font-size: 14.5px; white-space: nowrap; }}
.big {{ font-size: 30px; font-weight: 800; font-variant-numeric: tabular-nums; }}
.stat {{ display: inline-block; margin: 0 22px 4px 0; vertical-align: top; }}
.stat .label {{ font-size: 14px; color: {MUTED}; text-transform: uppercase;
               letter-spacing: .8px; font-weight: 650; }}
"""

HEADER_CSS = f"""
:host {{
  background: linear-gradient(90deg, #1F2430 0%, #2B3445 100%);
  color: #FFFFFF;
  border-radius: 14px;
  padding: 8px 20px;
  font-family: {FONT};
}}
"""

CONTROL_CSS = f"""
:host {{ font-family: {FONT}; }}
.bk-btn {{ font-size: 17px !important; font-weight: 650; }}
label, .bk-input-group label {{ font-size: 16px !important; }}
"""


def html_style() -> str:
    """The <style> block every HTML pane embeds (each pane lives in its own shadow root)."""
    return f"<style>{HTML_CSS}</style>"
