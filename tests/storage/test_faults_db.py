"""Fault records in the real PostgreSQL (DESIGN §11: table ``faults``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings

from .helpers import ASSET_1


def _runtime(settings: Settings) -> Runtime:
    return Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))


async def test_faults_are_persisted_with_each_state_change(
    make_settings: Callable[..., Settings], db_url: str, sql: Callable[..., Any]
) -> None:
    settings = make_settings(database_url=db_url)
    async with _runtime(settings) as rt:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
            r = await c.post("/faults", json={
                "kind": "value_override", "asset_id": ASSET_1, "start_in_s": 5,
                "duration_s": 10, "params": {"field": "soc_pct", "value": "NaN"}})  # fmt: skip
            assert r.status_code == 201
            ended_id = r.json()["id"]
            r = await c.post("/faults", json={"kind": "stuck", "asset_id": ASSET_1})
            open_id = r.json()["id"]
        assert rt.fault_store is not None
        assert await rt.fault_store.wait_written(10)
        rows = await sql("SELECT state FROM faults WHERE id = $1", ended_id)
        assert rows == [{"state": "scheduled"}]
        await rt.step(20)
        assert await rt.fault_store.wait_written(10)
        rows = await sql(
            "SELECT kind, state, params->>'value' AS value, end_reason, started_at, ended_at "
            "FROM faults WHERE id = $1",
            ended_id,
        )
        assert rows[0]["state"] == "ended" and rows[0]["end_reason"] == "elapsed"
        assert rows[0]["value"] == "NaN" and rows[0]["kind"] == "value_override"
        assert (rows[0]["ended_at"] - rows[0]["started_at"]).total_seconds() == 10
        rows = await sql("SELECT state FROM faults WHERE id = $1", open_id)
        assert rows == [{"state": "active"}]
    # the next run closes what this one left open
    async with _runtime(settings) as rt2:
        assert rt2.fault_store is not None
        assert await rt2.fault_store.wait_written(10)
        rows = await sql("SELECT state, end_reason FROM faults WHERE id = $1", open_id)
        assert rows == [{"state": "ended", "end_reason": "simulator stopped"}]


async def test_reset_db_truncates_faults(
    make_settings: Callable[..., Settings], db_url: str, sql: Callable[..., Any]
) -> None:
    async with _runtime(make_settings(database_url=db_url)) as rt:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
            r = await c.post("/faults", json={"kind": "trip", "asset_id": ASSET_1})
            assert r.status_code == 201
        assert rt.fault_store is not None and await rt.fault_store.wait_written(10)
    assert (await sql("SELECT count(*) AS n FROM faults"))[0]["n"] == 1
    async with _runtime(make_settings(database_url=db_url, reset_db=True)) as rt2:
        assert rt2.fault_store is not None and await rt2.fault_store.wait_written(10)
    assert (await sql("SELECT count(*) AS n FROM faults"))[0]["n"] == 0
