"""A real headless Chromium (Debian's, driven by Playwright with the system binary) opens
the app, asks a question, sees an answer with a citation, clicks it and sees the cited
span highlighted. The screenshot is kept in tests/artifacts/ as a CI artifact."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (scripts/setup.sh installs it)")
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.model
def test_browser_asks_and_opens_a_citation(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
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
