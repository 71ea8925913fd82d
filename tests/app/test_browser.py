"""A real headless Chromium (Debian's, driven by Playwright with the system binary) opens
the app, asks a question, sees an answer with a citation, clicks it and sees the cited
span highlighted. The screenshot is kept in tests/artifacts/ as a CI artifact."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")


def _launch(pw):
    """Debian's Chromium, headless, with the flags this closed network needs."""
    return pw.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (scripts/setup.sh installs it)")
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.model
def test_browser_asks_and_opens_a_citation(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url, wait_until="load")  # the status timer keeps the network busy: no "networkidle"
            page.locator("#question textarea").wait_for(timeout=60_000)
            page.locator("#question textarea").fill("临沭县2021年上半年一般公共预算收入是多少？")
            page.locator("#send").click()
            page.get_by_text("引用来源").wait_for(timeout=900_000)
            bot = page.locator("#chat").inner_text()
            assert "[1]" in bot and "10.1" in bot
            page.locator("#citations label").first.click()
            mark = page.locator("#passage mark")
            mark.wait_for(timeout=30_000)
            assert "10.1" in mark.inner_text()
            page.screenshot(path=str(ARTIFACTS / "browser_citation.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "browser_citation.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (scripts/setup.sh installs it)")
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.model
def test_browser_progress_view_lists_behind_tasks_and_marks_the_basis(app_url):
    """The 进度 tab: tasks behind and on track with their basis; picking one marks its
    figures and period words in the source."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(app_url, wait_until="load")
            page.get_by_role("tab", name="进度").click()
            page.locator("#progress-show").click()
            table = page.locator("#progress-table table")
            table.wait_for(timeout=60_000)
            text = table.inner_text()
            assert "滞后" in text and "符合进度" in text and "序时进度" in text
            page.locator("#progress-pick input").click()
            page.get_by_role("option").first.click()
            mark = page.locator("#progress-basis mark").first
            mark.wait_for(timeout=30_000)
            assert mark.inner_text().strip()
            page.screenshot(path=str(ARTIFACTS / "browser_progress.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "browser_progress.png").stat().st_size > 10_000
