"""Dashboard in headless Chromium: the DESIGN §10 columns (MVAr, available limits,
temperature) and the grid-frequency control."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from playwright.async_api import expect

from bess_sim.runtime import Runtime
from bess_sim.sim import DispatchRequest
from tests.api.browser import BROWSER_MARKS, chromium, new_page
from tests.conftest import ASSET_1, ASSET_3, ROOT, fleet_data, two_free_tcp_ports
from tests.modbus.test_model_v2_points import V2_FIELDS

pytestmark = BROWSER_MARKS


@pytest.fixture
def assets_file(tmp_path: Path) -> Path:
    data = fleet_data(*two_free_tcp_ports())
    data["assets"][2].update(V2_FIELDS)
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_dashboard_shows_v2_values_and_sets_grid_frequency(runtime: Runtime) -> None:
    runtime.fleet.dispatch(DispatchRequest(ASSET_3, 0.0, mvar=1.5))
    await runtime.step(100)
    url = f"http://127.0.0.1:{runtime.http_port}/"
    async with chromium() as browser:
        page, errors = await new_page(browser, 1400, 800)
        await page.goto(url)
        await expect(page.locator("body[data-ready='1']")).to_have_count(1)
        row = page.locator(f"tr[data-asset-id='{ASSET_3}']")
        await runtime.step(1)  # a WebSocket push after the page is connected
        await expect(row.locator(".c-mvar")).to_have_text("1.50")
        # idle at 35 °C in 25 °C ambient for 101 s: 25 + 10·e^(−0.101) = 34.04 °C
        await expect(row.locator(".c-temp")).to_have_text("34.0")
        await expect(row.locator(".c-avail")).to_have_text("-5.0 … 2.5")
        plain = page.locator(f"tr[data-asset-id='{ASSET_1}']")
        await expect(plain.locator(".c-temp")).to_have_text("—")
        await expect(page.locator("#grid-hz")).to_have_value("50")
        await page.fill("#grid-hz", "49.8")
        await page.click("#grid-form button[type=submit]")
        await expect(page.locator("#global-error")).to_be_hidden()
        for _ in range(100):
            if runtime.fleet.grid.frequency_hz == 49.8:
                break
            await page.wait_for_timeout(50)
        assert runtime.fleet.grid.frequency_hz == 49.8
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        await page.screenshot(path=str(ROOT / "test-artifacts" / "dashboard-model-v2.png"))
        assert not errors, errors
