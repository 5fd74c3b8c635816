"""The dashboard's fault panel in headless Debian Chromium (Playwright): a 422 naming the
field, injecting a fault that shows in the panel and on the fleet table, ending it."""

from __future__ import annotations

from playwright.async_api import expect

from bess_sim.runtime import Runtime
from tests.api.browser import BROWSER_MARKS, chromium, new_page
from tests.conftest import ASSET_3, ROOT

pytestmark = BROWSER_MARKS


async def test_inject_and_end_a_fault_from_the_dashboard(runtime: Runtime) -> None:
    url = f"http://127.0.0.1:{runtime.http_port}/"
    async with chromium() as browser:
        page, errors = await new_page(browser, 1280, 1400)
        await page.goto(url)
        await expect(page.locator("body")).to_have_attribute("data-faults-ready", "1")
        form = page.locator("#fault-form")
        await form.locator("#fault-asset").select_option(ASSET_3)
        await form.locator("#fault-kind").select_option("modbus_latency")
        await expect(form.locator("#fault-params")).to_have_value(
            '{"delay_ms":500,"jitter_ms":100}'
        )
        await form.locator("#fault-params").fill('{"delay_ms": -5}')
        await form.locator('button[type="submit"]').click()
        await expect(page.locator("#fault-error")).to_contain_text("delay_ms")
        assert runtime.faults.list() == []  # nothing scheduled

        # A SOC bias: the panel lists it, the fleet table shows the biased SOC.
        await form.locator("#fault-kind").select_option("soc_bias")
        await form.locator("#fault-params").fill('{"offset_pct": 10}')
        await form.locator('button[type="submit"]').click()
        await expect(page.locator("#fault-status")).to_contain_text("soc_bias active")
        row = page.locator("#fault-body tr").filter(has_text="soc_bias")
        await expect(row.locator(".c-state")).to_have_text("active")
        await runtime.step(1)
        fleet_row = page.locator(f'#fleet-body tr[data-asset-id="{ASSET_3}"]')
        await expect(fleet_row.locator(".c-soc")).to_have_text("30.0 %")
        await page.screenshot(path=str(ROOT / "test-artifacts" / "faults.png"))

        # End it from the panel.
        await row.locator("button.fault-end").click()
        await expect(row.locator(".c-state")).to_contain_text("ended (deleted)")
        assert runtime.faults.list(state="active") == []
        await runtime.step(1)
        await expect(fleet_row.locator(".c-soc")).to_have_text("20.0 %")
        assert errors == []
