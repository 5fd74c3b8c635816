"""The dashboard's registration form in headless Debian Chromium (Playwright): inline field
errors from a 422, a registration that shows up in the fleet table, the 409 of a file asset,
and a delete."""

from __future__ import annotations

from playwright.async_api import expect

from bess_sim.runtime import Runtime
from tests.api.browser import BROWSER_MARKS, chromium, new_page
from tests.conftest import ASSET_1, ROOT, SITE_B, free_tcp_port

pytestmark = BROWSER_MARKS


async def test_register_and_delete_from_the_dashboard(runtime: Runtime) -> None:
    url = f"http://127.0.0.1:{runtime.http_port}/"
    port = free_tcp_port()
    async with chromium() as browser:
        page, errors = await new_page(browser, 1280, 1000)
        await page.goto(url)
        await expect(page.locator("body")).to_have_attribute("data-registration-ready", "1")
        form = page.locator("#register-form")
        await form.locator('select[name="site_id"]').select_option(SITE_B)
        values = {
            "name": "DASH-1", "capacity_mwhr": "12", "max_mw": "6", "min_mw": "-6",
            "ramp_rate_mw_per_min": "60", "efficiency": "1.5", "modbus.port": str(port),
            "modbus.unit_id": "3",
        }  # fmt: skip
        for name, value in values.items():
            await form.locator(f'input[name="{name}"]').fill(value)
        await form.locator('button[type="submit"]').click()
        # The 422 lands next to the field it names; nothing was registered.
        err = form.locator('.field-error[data-field="efficiency"]')
        await expect(err).to_contain_text("must be in (0, 1]")
        await expect(form.locator('input[name="efficiency"]')).to_have_attribute(
            "aria-invalid", "true"
        )
        assert len(runtime.fleet.specs) == 3
        await form.locator('input[name="efficiency"]').fill("0.9")
        await form.locator('button[type="submit"]').click()
        await expect(page.locator("#register-status")).to_contain_text("registered DASH-1")
        # The page reloads: the new asset is in the fleet table with its live telemetry.
        row = page.locator("#fleet-body tr[data-asset-id]").filter(has_text="DASH-1")
        await expect(row).to_be_visible()
        await expect(row.locator(".c-soc")).to_have_text("50.0 %")
        new_id = next(a.id for a in runtime.fleet.specs if a.name == "DASH-1")
        assert runtime.fleet.spec(new_id).modbus.port == port
        await page.screenshot(path=str(ROOT / "test-artifacts" / "registration.png"))

        # A file asset cannot be deleted: the message names assets.yaml.
        await expect(page.locator("body")).to_have_attribute("data-registration-ready", "1")
        remove = page.locator("#remove-form")
        await remove.locator("select").select_option(ASSET_1)
        await remove.locator("button").click()
        await expect(page.locator("#register-error")).to_contain_text("assets.yaml")
        # The registered one can.
        await remove.locator("select").select_option(new_id)
        await remove.locator("button").click()
        await expect(page.locator("#register-status")).to_contain_text("deleted DASH-1")
        await expect(page.locator("#fleet-body")).not_to_contain_text("DASH-1")
        assert not runtime.fleet.has_asset(new_id)
        assert errors == []
