"""The cross-site rule in a real browser (issue 9 item 14): a page on another origin of the
same machine tries to trip a battery with a form POST and with ``fetch(..., {mode:
"no-cors"})`` — both "simple requests" a browser sends without a CORS preflight — and the
battery stays untripped. The dashboard's own requests are covered by test_browser.py."""

from __future__ import annotations

import asyncio
import os

import pytest
from playwright.async_api import async_playwright

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium"),
]


def _evil_page(sim_port: int) -> bytes:
    base = f"http://127.0.0.1:{sim_port}"
    return f"""<!doctype html><html><body>
<form id="f" method="POST" action="{base}/assets/{ASSET_1}/trip"></form>
<script>
async function attack() {{
  await fetch("{base}/assets/{ASSET_1}/trip", {{method: "POST", mode: "no-cors"}});
  await fetch("{base}/dispatch", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": "text/plain"}},
    body: JSON.stringify({{asset_id: "{ASSET_1}", mw: 5}})}});
  return "sent";
}}
</script></body></html>""".encode()


async def _serve_page(page: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_page_on_another_origin_cannot_trip(runtime: Runtime) -> None:
    server = await _serve_page(_evil_page(runtime.http_port))
    evil_port = server.sockets[0].getsockname()[1]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking"],
            )  # fmt: skip
            try:
                page = await browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                await page.goto(f"http://127.0.0.1:{evil_port}/")
                assert await page.evaluate("attack()") == "sent"
                async with page.expect_navigation() as nav:
                    await page.evaluate("document.getElementById('f').submit()")
                response = await nav.value
                assert response is not None and response.status == 403
            finally:
                await browser.close()
    finally:
        server.close()
        await server.wait_closed()
    assert not runtime.fleet.control(ASSET_1).tripped
    assert runtime.fleet.dispatches() == []
