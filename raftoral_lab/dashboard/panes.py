# mypy: disable-error-code="no-untyped-call"
"""The Panel pieces every view is built of: an HTML pane, a card, and an update that sends
only what changed.

The drawings are strings (SVG in HTML) made by the `render_*` functions; a view puts one in a
pane and, on `refresh()`, replaces it only when the string differs, so an unchanged picture
costs the browser nothing.
"""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn

from raftoral_lab.dashboard import theme

_extension_loaded = False


def ensure_extension() -> None:
    """Load Panel's extension once (Tabulator for the workflow table)."""
    global _extension_loaded
    if not _extension_loaded:
        pn.extension("tabulator", notifications=False, design="native")
        _extension_loaded = True


def html_pane(obj: str = "", **kwargs: Any) -> pn.pane.HTML:
    """A full-width HTML pane with the dashboard's type and colours."""
    return pn.pane.HTML(
        obj, sizing_mode="stretch_width", stylesheets=[theme.HTML_CSS], margin=(0, 4), **kwargs
    )


def card(title: str, *objects: Any, subtitle: str = "", **kwargs: Any) -> pn.Column:
    """A titled white card around `objects` (each view is one)."""
    sub = f'<span class="subtitle">{escape(subtitle)}</span>' if subtitle else ""
    return pn.Column(
        html_pane(f'<div class="title">{escape(title)}{sub}</div>'),
        *objects,
        sizing_mode="stretch_width",
        stylesheets=[theme.CARD_CSS],
        margin=(8, 8),
        **kwargs,
    )


def set_html(pane: pn.pane.HTML, html: str) -> None:
    """Show `html` in `pane`; nothing reaches the browser when it is already shown."""
    if pane.object != html:
        pane.object = html
