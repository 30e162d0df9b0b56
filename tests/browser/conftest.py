"""Headless Chromium (Debian's package, driven by Playwright) against the console, a real
broker and real running groups. Skipped, saying why, when the browser cannot start."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """One browser, with a fresh profile; each test clears its cookies.

    Module-scoped, and all browser tests are in one module, so it starts once per
    session; and it stops before other tests run, because Playwright's sync API keeps
    an asyncio loop running in this thread while it is up (asyncio.run() would fail)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser tests need Python Playwright (pip install playwright): {exc}")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} "
                    "(ops/tools/install-browser.sh installs it)")
    profile = tempfile.mkdtemp(prefix="tidings-chromium-")
    manager = sync_playwright().start()
    try:
        try:
            context = manager.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 860})
        except Error as exc:
            pytest.skip(f"chromium did not start: {str(exc).splitlines()[0]}")
        context.set_default_timeout(30_000)
        yield context
        context.close()
    finally:
        manager.stop()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def page(browser_context: Any) -> Iterator[Any]:
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    yield tab
    tab.close()
