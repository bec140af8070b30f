"""A real Chromium for the dashboard tests: one browser per test module, a fresh page per test.

Not pytest-playwright: its sync fixtures break later pytest-asyncio tests in the same session
(DESIGN.md section 8), so the module-scoped `sync_playwright()` below is closed before the
next module runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .support import CHROMIUM_ARGS, VIEWPORT, require_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()
