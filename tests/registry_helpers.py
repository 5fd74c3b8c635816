"""Bodies and clients for the registration tests (DESIGN §14)."""

from __future__ import annotations

from typing import Any

import httpx

from bess_sim.runtime import Runtime
from tests.conftest import SITE_A

NEW_ASSET = "bbbbbbbb-0000-4000-8000-000000000001"


def asset_body(port: int, unit: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": NEW_ASSET,
        "site_id": SITE_A,
        "name": "BESS-NEW",
        "location": "bay 9",
        "capacity_mwhr": 20.0,
        "max_mw": 10.0,
        "min_mw": -8.0,
        "ramp_rate_mw_per_min": 600.0,
        "efficiency": 0.9,
        "initial_soc_pct": 40,
        "modbus": {"port": port, "unit_id": unit},
    }
    body.update(overrides)
    return body


def http(rt: Runtime, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{rt.http_port}", timeout=30, headers=headers
    )


async def fleet_state(c: httpx.AsyncClient) -> tuple[Any, Any, str]:
    """What must not change after a refused request: assets, sites and the exported fleet."""
    assets = (await c.get("/assets")).json()
    sites = (await c.get("/sites")).json()
    text = (await c.get("/fleet.yaml")).text
    return assets, sites, text.split("\n", 2)[2]  # without the header (it holds the time)
