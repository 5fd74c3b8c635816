"""Fault records of a scale-out fleet reach the headend's database (DESIGN §7/§11 over §15):
the agent holds the fault, the headend's mirror writes each state as ``bess-sim run``
does."""

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
