"""The operator dashboard in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import LiveHub
from tests.test_operations import G22, H41, admin_get, scripted_exchange

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.process,  # a browser
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs Debian's chromium (make test installs it: scripts/system-deps.sh)",
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Root in a container, no GPU, and no calls home (this machine has no network).
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_dashboard_after_login(hub: LiveHub, browser: Browser, tmp_path: Path) -> None:
    await scripted_exchange(hub)
    context = await browser.new_context(viewport={"width": 1280, "height": 1600})
    page = await context.new_page()
    await page.goto(hub.running.admin_url + "/dashboard")
    assert page.url.endswith("/login")  # no session: the page is refused

    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    assert "not this hub's admin token" in await page.inner_text("[role=alert]")

    await page.fill("#token", hub.data.admin_token.read_text().strip())
    await page.click("button[type=submit]")
    await page.wait_for_url("**/dashboard")
    total = page.locator('[data-total="documents"] .n')
    await total.filter(has_text="4").wait_for(timeout=15_000)
    cards = {
        label: await page.inner_text(f'[data-total="{label}"] .n')
        for label in ("documents", "statuses", "deliveries", "acknowledged", "recalled",
                      "sent + received (as the axis counts)")
    }  # fmt: skip
    assert cards == {
        "sent + received (as the axis counts)": "9",
        "documents": "4",
        "statuses": "4",
        "deliveries": "5",
        "acknowledged": "2",
        "recalled": "1",
    }
    bars = page.locator("#chart rect.bar-documents")
    assert await bars.count() == 1
    assert float(await bars.first.get_attribute("height") or 0) > 0
    agencies = await page.inner_text("#agencies")
    assert G22 in agencies and "Văn phòng Chính phủ" in agencies
    assert "received" in await page.inner_text("#log")
    await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    cookies = await context.cookies()
    session = next(c for c in cookies if c["name"] == "axis_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"

    # It refreshes itself: a new document shows up without a reload.
    await hub.client(G22).send([H41], "Văn bản mới")
    await total.filter(has_text="5").wait_for(timeout=15_000)

    # Its data is refused without the login.
    assert (await admin_get(hub, "/v1/dashboard", token=None)).status == 403
    await page.click("text=Sign out")
    await page.wait_for_url("**/login")
    await page.goto(hub.running.admin_url + "/dashboard")
    assert page.url.endswith("/login")
    await context.close()
