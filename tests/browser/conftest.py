"""Browser fixtures: Debian's chromium driven headless by Playwright, and one hub per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.scenario import chromium_or_reason, sign_in
from tests.support.databases import REQUIRE_ENV
from tests.support.hub import RunningHub, make_settings, running_hub

TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path, reason = chromium_or_reason()
    if path is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def console_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A hub with its sandboxes on loopback; three attempts before a webhook is dead."""
    path: Path = tmp_path_factory.mktemp("console") / "storebridge.db"
    with running_hub(make_settings(f"sqlite+aiosqlite:///{path}", webhook_max_attempts=3)) as running:
        yield running


@pytest.fixture
def page(browser: Browser, console_hub: RunningHub) -> Iterator[Page]:
    """A fresh browser context (no cookies), signed in to the console."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    try:
        sign_in(opened, console_hub.base_url)
        yield opened
    finally:
        context.close()
