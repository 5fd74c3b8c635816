"""Registered assets with a real PostgreSQL (DESIGN §14): stored with origin 'api', restored
at the next start with their state, never pruned by reconcile; a delete removes their rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.conftest import free_tcp_port
from tests.registry_helpers import NEW_ASSET, asset_body, http

OTHER = "bbbbbbbb-0000-4000-8000-000000000002"
SITE_NEW = "33333333-3333-4333-8333-333333333333"


def start(settings: Settings) -> Runtime:
    return Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))


async def test_registered_asset_survives_a_restart(
    make_settings: Callable[..., Settings], db_url: str, sql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(database_url=db_url)
    port = free_tcp_port()
    async with start(settings) as rt, http(rt) as c:
        site = await c.post("/sites", json={"id": SITE_NEW, "name": "Depot"})
        assert site.status_code == 201, site.text
        body = asset_body(port, 4, site_id=SITE_NEW)
        assert (await c.post("/assets", json=body)).status_code == 201
        other = asset_body(free_tcp_port(), id=OTHER, name="SHORT-LIVED")
        assert (await c.post("/assets", json=other)).status_code == 201
        d = await c.post("/dispatch", json={"asset_id": NEW_ASSET, "mw": -4.0})
        assert d.status_code == 201
        await c.post("/dispatch", json={"asset_id": OTHER, "mw": 2.0})
        await c.post("/sim/step", json={"seconds": 90})
        soc = (await c.get(f"/telemetry/{NEW_ASSET}")).json()["soc_mwhr"]
        assert rt.storage is not None and await rt.storage.flush(10)
        assert await sql("SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", OTHER)
        assert (await c.delete(f"/assets/{OTHER}")).status_code == 204
    # The delete removed every row of the other asset, like a prune.
    for table, col in (("telemetry", "asset_id"), ("dispatches", "asset_id"), ("assets", "id")):
        rows = await sql(f"SELECT count(*) AS n FROM {table} WHERE {col} = $1", OTHER)
        assert rows[0]["n"] == 0, table
    stored = await sql("SELECT origin, spec, modbus_port FROM assets WHERE id = $1", NEW_ASSET)
    assert stored[0]["origin"] == "api" and stored[0]["modbus_port"] == port
    sites = await sql("SELECT origin FROM sites WHERE id = $1", SITE_NEW)
    assert sites == [{"origin": "api"}]

    # Restart: reconcile keeps it (not in assets.yaml, origin api); state and dispatch return.
    caplog.set_level("INFO")
    async with start(settings) as rt, http(rt) as c:
        a = await c.get(f"/assets/{NEW_ASSET}")
        assert a.status_code == 200 and a.json()["site_id"] == SITE_NEW
        t = (await c.get(f"/telemetry/{NEW_ASSET}")).json()
        assert t["soc_mwhr"] == pytest.approx(soc) and t["setpoint_mw"] == -4.0
        assert (await c.get(f"/assets/{OTHER}")).status_code == 404
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
        assert await client.connect()
        try:
            rr = await client.read_input_registers(0, count=1, device_id=4)
            assert not rr.isError() and rr.registers == [1]  # charging
        finally:
            client.close()
        # Still a registered asset: it can be deleted (a file asset could not).
        assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 204
        assert (await c.delete(f"/sites/{SITE_NEW}")).status_code == 204
    assert "registration: restored 1 registered assets" in caplog.text
    assert await sql("SELECT id FROM assets WHERE origin = 'api'") == []
    assert await sql("SELECT id FROM sites WHERE origin = 'api'") == []


def move_bess3(assets_file: Path, port: int) -> None:
    data = yaml.safe_load(assets_file.read_text())
    data["assets"][2]["modbus"] = {"port": port, "unit_id": 1}
    assets_file.write_text(yaml.safe_dump(data))


async def test_file_wins_over_a_registered_asset_that_clashes(
    make_settings: Callable[..., Settings],
    db_url: str,
    sql: Any,
    assets_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(database_url=db_url)
    port = free_tcp_port()
    async with start(settings) as rt, http(rt) as c:
        assert (await c.post("/assets", json=asset_body(port, 1))).status_code == 201
    # The operator now puts a file asset on the same (port, unit).
    move_bess3(assets_file, port)
    caplog.set_level("INFO")
    async with start(settings) as rt:
        assert not rt.fleet.has_asset(NEW_ASSET)
    assert f"asset {NEW_ASSET} not restored" in caplog.text
    assert "is already used by asset 'BESS-3'" in caplog.text
    # Left untouched in the database (not pruned), for the operator to resolve.
    rows = await sql("SELECT origin FROM assets WHERE id = $1", NEW_ASSET)
    assert rows == [{"origin": "api"}]


async def test_refused_while_the_database_is_down(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    settings = make_settings(database_url=db_url)
    async with start(settings) as rt, http(rt) as c:
        assert rt.storage is not None
        rt.storage._status = "down"  # as the writer sets it when the server goes away
        before = (await c.get("/assets")).json()
        r = await c.post("/assets", json=asset_body(free_tcp_port()))
        assert r.status_code == 503 and "not changed" in r.json()["detail"]
        assert (await c.get("/assets")).json() == before
        rt.storage._status = "ok"
