"""Render the pictures of the lessons into docs/images/ (lesson-NN-NAME.png).

    python docs/render_pictures.py              # every notebook in notebooks/
    python docs/render_pictures.py 01 09        # only lessons 01 and 09

Each notebook runs top to bottom in a fresh kernel, as in CI (tests/test_notebooks.py), with
one cell put in front of it: that cell wraps Bokeh's `show` so every picture the lesson shows is
also saved as a standalone HTML page. Chromium (Debian's `chromium`, driven by playwright) then
screenshots each page, and the PNG is reduced to a palette so it stays small. The notebooks
themselves are not changed, and their outputs are not kept.

This lives beside the pictures it makes rather than in the package or in tests/: it is a tool
for whoever updates the docs, it needs a browser, and nothing imports it.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
IMAGES = ROOT / "docs" / "images"
MAX_BYTES = 200_000
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")

CAPTURE = """\
# added by docs/render_pictures.py: keep every picture the lesson shows
import bokeh.io as _bio
import bokeh.plotting as _bplt
from bokeh.embed import file_html as _file_html
from bokeh.resources import INLINE as _INLINE

_shown_pictures = []
_bokeh_show = _bio.show

def _show_and_keep(obj, *args, **kwargs):
    result = _bokeh_show(obj, *args, **kwargs)
    _shown_pictures.append(obj)
    path = {out!r} + f"/{{len(_shown_pictures)}}.html"
    with open(path, "w") as f:
        f.write(_file_html(obj, _INLINE, title="picture"))
    return result

_bio.show = _bplt.show = _show_and_keep
"""


def lesson_notebooks(selected: list[str]) -> list[Path]:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if selected:
        found = [p for p in found if p.name[:2] in {s.zfill(2) for s in selected}]
    return found


def run_notebook(path: Path, out: Path) -> list[Path]:
    """Execute `path` with the capture cell in front; the HTML pages of its pictures."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(CAPTURE.format(out=str(out))))
    started = time.monotonic()
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    print(f"{path.name}: ran in {time.monotonic() - started:.1f} s", flush=True)
    return sorted(out.glob("*.html"), key=lambda p: int(p.stem))


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or next(
        (c for c in CHROMIUM_CANDIDATES if Path(c).exists()), None
    )
    if found is None:
        sys.exit("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    return found


def small_png(png: bytes) -> bytes:
    """The screenshot with its white margin cut and its colours reduced to a palette."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    box = ImageChops.difference(image, background).getbbox()
    if box is not None:
        left, top, right, bottom = box
        image = image.crop((max(0, left - 8), max(0, top - 8), right + 8, bottom + 8))
    for colours in (256, 128, 64):
        buffer = io.BytesIO()
        image.quantize(colours, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            break
    return buffer.getvalue()


def screenshot(pages: list[tuple[Path, Path]]) -> list[str]:
    """Screenshot each page into its PNG; the pictures that did not draw, with BokehJS's error."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    failed: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium())
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            for html, png in pages:
                errors.clear()
                page.goto(html.as_uri())
                try:
                    page.wait_for_selector("canvas", state="attached", timeout=10_000)
                except PlaywrightError:
                    failed.append(f"{png.name}: nothing drawn ({'; '.join(errors) or 'no error'})")
                    continue
                page.wait_for_timeout(1500)  # let BokehJS finish drawing
                png.write_bytes(small_png(page.screenshot(full_page=True)))
                print(f"  {png.relative_to(ROOT)}: {png.stat().st_size // 1000} KB", flush=True)
        finally:
            browser.close()
    return failed


def slug(path: Path) -> str:
    number, _, name = path.stem.partition("_")
    return f"lesson-{number}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="raftoral-pictures-") as tmp:
        pages: list[tuple[Path, Path]] = []
        for path in lesson_notebooks(args.lessons):
            out = Path(tmp) / path.stem
            out.mkdir()
            shown = run_notebook(path, out)
            if not shown:
                print(f"  {path.name} shows no picture", flush=True)
            for old in IMAGES.glob(f"{slug(path)}*.png"):
                old.unlink()
            for number, html in enumerate(shown, start=1):
                suffix = f"-{number}" if len(shown) > 1 else ""
                pages.append((html, IMAGES / f"{slug(path)}{suffix}.png"))
        failed = screenshot(pages) if pages else []
    if failed:
        sys.exit("pictures that did not draw in Chromium:\n" + "\n".join(failed))


if __name__ == "__main__":
    main()
