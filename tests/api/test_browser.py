"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

Loads ``/``, sees every asset, dispatches one and sees the setpoint change after a tick,
submits an out-of-range dispatch and sees the reason, opens the history and sees the charts
drawn. Screenshots go to ``test-artifacts/`` (gitignored) for a human to look at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3, ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium"),
]


async def painted_pixels(page: Page, selector: str) -> int:
    """Pixels of the canvas that are not blank (alpha > 0 and not white)."""
    return int(
        await page.eval_on_selector(
            selector,
            """c => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i + 3] > 0 && !(d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245)) n++;
                }
                return n;
            }""",
        )
    )


async def test_dashboard_end_to_end(runtime: Runtime) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{runtime.http_port}/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            external: list[str] = []
            page.on(
                "request",
                lambda req: (
                    None
                    if req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:"))
                    else external.append(req.url)
                ),
            )
            await page.goto(url)
            await expect(page.locator("body")).to_have_attribute("data-ready", "1")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "live")

            # Every asset is listed, with its live SOC.
            expected = [(ASSET_1, "BESS-1", "50.0 %"), (ASSET_2, "BESS-2", "80.0 %"),
                        (ASSET_3, "BESS-3", "20.0 %")]  # fmt: skip
            for asset_id, name, soc in expected:
                row = page.locator(f'tr[data-asset-id="{asset_id}"]')
                await expect(row.locator("td.name")).to_contain_text(name)
                await expect(row.locator(".c-soc")).to_have_text(soc)

            # A valid dispatch: accepted, and the setpoint shows once the clock ticks.
            row = page.locator(f'tr[data-asset-id="{ASSET_1}"]')
            msg = page.locator(f'tr[data-msg-for="{ASSET_1}"] td')
            await row.locator('input[name="mw"]').fill("12.5")
            await row.locator('button[type="submit"]').click()
            await expect(msg).to_contain_text("accepted")
            await runtime.step(1)
            await expect(row.locator(".c-setpoint")).to_have_text("12.50")
            await expect(row.locator(".c-status")).to_have_text("discharging")

            # An out-of-range dispatch: the reason is shown, the setpoint stays.
            await row.locator('input[name="mw"]').fill("999")
            await row.locator('button[type="submit"]').click()
            await expect(msg).to_contain_text("outside [-50, 50] MW")
            await expect(msg).to_have_class("c-msg rejected")
            await expect(page.locator("#log-body")).to_contain_text("rejected")
            await expect(page.locator("#log-body")).to_contain_text("outside [-50, 50] MW")

            # History: open it for BESS-1, let time run, see both charts drawn and the table.
            await row.locator("button.c-history").click()
            await expect(page.locator("#history-title")).to_contain_text("BESS-1")
            for _ in range(30):
                await runtime.step(2)
            await page.locator("#history-refresh").click()
            await expect(page.locator("#history-body tr").first).to_be_visible()
            soc_canvas = page.locator("#chart-soc")
            await expect(soc_canvas).not_to_have_attribute("data-points", "0")
            await page.wait_for_function(
                "Number(document.querySelector('#chart-mw').dataset.points) >= 40"
            )
            assert await painted_pixels(page, "#chart-soc") > 500
            assert await painted_pixels(page, "#chart-mw") > 500

            # The history table sorts by a clicked column.
            await page.locator('#history-table th[data-key="current_mw"]').click()
            await expect(
                page.locator('#history-table th[data-key="current_mw"]')
            ).to_have_attribute("aria-sort", "ascending")
            cells = await page.locator("#history-body tr td:nth-child(4)").all_text_contents()
            values = [float(c) for c in cells]
            assert values == sorted(values) and values[0] < values[-1]

            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

            # Narrow screen: every dispatch form stays inside the viewport.
            await page.set_viewport_size({"width": 390, "height": 844})
            box = await row.locator('button[type="submit"]').bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390
            await page.screenshot(path=str(ARTIFACTS / "dashboard-narrow.png"), full_page=True)

            assert errors == []
            assert external == []  # air-gapped: nothing but the simulator itself
        finally:
            await browser.close()


async def test_api_docs_render_offline(runtime: Runtime) -> None:
    """Swagger UI renders from assets the simulator serves itself (air-gapped)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            external: list[str] = []
            page.on(
                "request",
                lambda req: (
                    None
                    if req.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    else external.append(req.url)
                ),
            )
            await page.goto(f"http://127.0.0.1:{runtime.http_port}/docs")
            await expect(page.locator(".opblock-summary-path").first).to_be_visible()
            await expect(page.get_by_text("/dispatch").first).to_be_visible()
            assert external == []
        finally:
            await browser.close()


def test_screenshot_path_is_gitignored() -> None:
    assert "test-artifacts/" in Path(ROOT / ".gitignore").read_text().split()


async def test_dashboard_with_api_token(start_runtime: Any) -> None:
    """With BESS_API_TOKEN the first dispatch says a token is needed and shows the token
    field; once the token is saved (sessionStorage) the dispatch goes through."""
    async with start_runtime(api_token="s3cret") as rt, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"http://127.0.0.1:{rt.http_port}/")
            await expect(page.locator("body")).to_have_attribute("data-ready", "1")
            await expect(page.locator("#token-form")).to_be_hidden()
            row = page.locator(f'tr[data-asset-id="{ASSET_2}"]')
            msg = page.locator(f'tr[data-msg-for="{ASSET_2}"] td')
            await row.locator('input[name="mw"]').fill("-3")
            await row.locator('button[type="submit"]').click()
            await expect(msg).to_contain_text("token is required")
            await expect(page.locator("#token-form")).to_be_visible()
            await page.locator("#token-input").fill("s3cret")
            await page.locator("#token-form button").click()
            await row.locator('button[type="submit"]').click()
            await expect(msg).to_contain_text("accepted")
            stored = await page.evaluate("sessionStorage.getItem('bess-sim-token')")
            assert stored == "s3cret"
            assert [d.asset_id for d in rt.fleet.dispatches()] == [ASSET_2]
        finally:
            await browser.close()
