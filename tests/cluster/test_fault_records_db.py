"""Fault records and registrations of a scale-out fleet reach the headend's database
(DESIGN §7/§11/§14 over §15): the agent holds the fault or asset, the headend writes each
state or row as ``bess-sim run`` does."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.cluster.conftest import Cluster, asset_id
from tests.storage.conftest import fresh_database, server_url

pytestmark = pytest.mark.db
IDS = [asset_id(i) for i in range(1, 5)]


async def row_state(db: str, fault_id: str, want: str) -> asyncpg.Record:
    deadline = time.monotonic() + 20
    con = await asyncpg.connect(db)
    try:
        while True:
            row = await con.fetchrow("SELECT * FROM faults WHERE id = $1", fault_id)
            if row is not None and row["state"] == want:
                return row
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.2)
    finally:
        await con.close()


async def test_fault_records_in_the_headend_database(cluster: Cluster) -> None:
    async with (
        fresh_database(server_url()) as db,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as http,
    ):
        cluster.start(
            "headend", "headend", "--http-port", str(cluster.http_port), "--database-url", db
        )
        cluster.start_agent(0, 1)
        await cluster.wait_online(http, IDS)
        r = await http.post(
            "/faults", json={"kind": "derate", "asset_id": IDS[1], "params": {"discharge_pct": 50}}
        )
        assert r.status_code == 201, r.text
        fid = r.json()["id"]
        row = await row_state(db, fid, "active")
        assert (row["kind"], str(row["asset_id"])) == ("derate", IDS[1])
        r = await http.delete(f"/faults/{fid}")
        assert r.status_code == 200, r.text
        row = await row_state(db, fid, "ended")
        assert row["end_reason"] == "deleted"

        # Registration (§14) through the headend: stored in its database as by run, and
        # restored by a new headend (from the database; the agent from the KV bucket).
        site = "0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e09"
        r = await http.post("/sites", json={"id": site, "name": "S9", "location": "Lab"})
        assert r.status_code == 201, r.text
        new = asset_id(21)
        body = {
            "id": new, "site_id": site, "name": "N21", "location": "Lab", "capacity_mwhr": 10,
            "max_mw": 5, "min_mw": -5, "ramp_rate_mw_per_min": 600, "efficiency": 0.9,
            "modbus": {"port": cluster.modbus_ports[0], "unit_id": 2},
        }  # fmt: skip
        r = await http.post("/assets", json=body)
        assert r.status_code == 201, r.text
        con = await asyncpg.connect(db)
        try:
            origin = await con.fetchval("SELECT origin FROM assets WHERE id = $1", new)
        finally:
            await con.close()
        assert origin == "api"
        cluster.procs["headend"].terminate()
        cluster.procs["headend"].wait(timeout=30)
        cluster.start(
            "headend", "headend", "--http-port", str(cluster.http_port), "--database-url", db
        )
        await cluster.wait_online(http, [*IDS, new])
        assert (await http.get(f"/assets/{new}")).status_code == 200
        # 204, not the 409 of an assets.yaml asset: known as registered over the API.
        r = await http.delete(f"/assets/{new}")
        assert r.status_code == 204, r.text
