"""A real Chromium for the dashboard tests: one browser per test module, a fresh page per test.

Not pytest-playwright: its sync fixtures break later pytest-asyncio tests in the same session
(DESIGN.md section 8), so the module-scoped `sync_playwright()` below is closed before the
next module runs. A test that fails keeps a screenshot of its page as it was then
(`FAILED-<test>.png` beside the others), so a failure in CI can be seen, not only read.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .support import CHROMIUM_ARGS, VIEWPORT, require_browser, shot

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the report of the test's call, for the `page` fixture to see whether it failed."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


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
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        report = request.node.stash.get(_CALL_REPORT, None)
        if report is not None and report.failed:
            with contextlib.suppress(Exception):  # a dead page must not hide the failure
                shot(page, "FAILED-" + re.sub(r"[^\w.-]+", "_", request.node.name))
        context.close()
