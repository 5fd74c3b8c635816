"""The simulator with DATABASE_URL: wiring in Runtime, and restart continuity of a real
``bess-sim run`` process killed with SIGKILL (no clean shutdown, no final flush)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from bess_sim.sim import DispatchRequest, HistoryQuery

from .conftest import server_mode
from .helpers import ASSET_1, START, eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_runtime_wires_storage(
    make_settings: Callable[..., Settings], db_url: str, sql
) -> None:
    settings = make_settings(database_url=db_url)
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    async with rt:
        assert rt.db_status == "ok"
        assert rt.storage is not None
        rt.fleet.dispatch(DispatchRequest(ASSET_1, 10.0))
        await rt.step(120)
        rows = await rt.history(HistoryQuery(ASSET_1, limit=5))
        assert rows[0].timestamp == START + timedelta(seconds=120)
        buckets = await rt.history(HistoryQuery(ASSET_1, limit=100, bucket_s=60))
        assert [b.timestamp for b in buckets] == [
            START + timedelta(seconds=s) for s in (120, 60, 0)
        ]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as client:
            health = (await client.get("/health")).json()
            assert health["db"] == "ok"
    count = await sql("SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_1)
    assert count[0]["n"] == 120
    rec = await sql("SELECT status, source FROM dispatches WHERE asset_id = $1", ASSET_1)
    assert rec == [{"status": "accepted", "source": "rest"}]


def test_in_memory_history_buckets(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    for _ in range(150):
        rt.tick(1.0)
    out = rt.memory_history(HistoryQuery(ASSET_1, limit=10, bucket_s=60))
    assert [b.timestamp for b in out] == [START + timedelta(seconds=s) for s in (120, 60, 0)]


@asynccontextmanager
async def simulator(assets: Path, db_url: str, log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """``bess-sim run --clock manual`` as a subprocess; yields a client once /health answers.
    Leaving the block SIGKILLs it (the abrupt stop under test)."""
    sock_port = _free_port()
    cmd = [
        sys.executable, "-m", "bess_sim", "run", "--clock", "manual",
        "--assets", str(assets), "--register-map", str(ROOT / "register_map.yaml"),
        "--http-port", str(sock_port), "--start-time", START.isoformat(), "--tick-interval", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RESET_DB", "BESS_API_TOKEN")}
    env["DATABASE_URL"] = db_url
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock_port}", timeout=60) as c:

            async def up() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"simulator exited (exit {proc.returncode}); see {log}")
                try:
                    return (await c.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, what="the simulator to answer /health")
            yield c
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _telemetry(c: httpx.AsyncClient, asset: str) -> dict[str, Any]:
    r = await c.get(f"/telemetry/{asset}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.timeout(300)
async def test_restart_after_sigkill_restores_state_and_dispatch(
    assets_file: Path, db_url: str, sql, tmp_path: Path
) -> None:
    log = tmp_path / "sim.log"

    async def latest_row() -> dict[str, Any] | None:
        rows = await sql(
            "SELECT ts, soc_mwhr, current_mw, setpoint_mw FROM telemetry WHERE asset_id = $1 "
            "ORDER BY ts DESC LIMIT 1",
            ASSET_1,
        )
        return rows[0] if rows else None

    # Run 1: dispatch 20 MW for an hour, step 2 minutes, wait until persisted, SIGKILL.
    async with simulator(assets_file, db_url, log) as c:
        r = await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": 20, "duration_s": 3600})
        assert r.status_code == 201, r.text
        dispatch_id = r.json()["id"]
        assert (await c.post("/sim/step", json={"seconds": 120})).status_code == 200
        before = await _telemetry(c, ASSET_1)

        async def persisted() -> bool:
            row = await latest_row()
            return row is not None and row["ts"] == START + timedelta(seconds=120)

        await eventually(persisted, what="tick 120 to be persisted")

    # Run 2: state, setpoint and the dispatch (3600 − 120 s left) are back.
    async with simulator(assets_file, db_url, log) as c:
        after = await _telemetry(c, ASSET_1)
        assert after["timestamp"] == before["timestamp"]
        assert after["soc_mwhr"] == pytest.approx(before["soc_mwhr"], abs=1e-9)
        assert after["current_mw"] == pytest.approx(before["current_mw"], abs=1e-9)
        assert after["setpoint_mw"] == 20.0
        await c.post("/sim/step", json={"seconds": 3479})
        assert (await _telemetry(c, ASSET_1))["setpoint_mw"] == 20.0
        await c.post("/sim/step", json={"seconds": 2})
        assert (await _telemetry(c, ASSET_1))["setpoint_mw"] == 0.0

        async def completed() -> bool:
            rows = await sql("SELECT status, ended_at FROM dispatches WHERE id = $1", dispatch_id)
            return rows == [{"status": "completed", "ended_at": START + timedelta(seconds=3600)}]

        await eventually(completed, what="the completion to be persisted")
        # Killed right after a step: part of it may still be buffered, and is lost.
        await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": -10})
        await c.post("/sim/step", json={"seconds": 600})

    # Run 3: resumes exactly from whatever was persisted last — consistent, no collisions.
    row = await latest_row()
    assert row is not None
    async with simulator(assets_file, db_url, log) as c:
        now = await _telemetry(c, ASSET_1)
        assert now["timestamp"] == row["ts"].isoformat().replace("+00:00", "Z")
        assert now["soc_mwhr"] == pytest.approx(row["soc_mwhr"], abs=1e-9)
        assert now["current_mw"] == pytest.approx(row["current_mw"], abs=1e-9)
        # The setpoint is the dispatch still in effect when its record was persisted (the kill
        # can land after the -10 MW record was written but before a telemetry row showing it),
        # else the one of the latest row.
        in_effect = await sql(
            "SELECT mw FROM dispatches WHERE asset_id = $1 AND status = 'accepted'", ASSET_1
        )
        expected = in_effect[0]["mw"] if in_effect else row["setpoint_mw"]
        assert now["setpoint_mw"] == expected
        await c.post("/sim/step", json={"seconds": 5})

        async def moved_on() -> bool:
            latest = await latest_row()
            return latest is not None and latest["ts"] == row["ts"] + timedelta(seconds=5)

        await eventually(moved_on, what="the resumed run's ticks to be persisted")
    counts = await sql(
        "SELECT count(*) AS n, count(DISTINCT ts) AS d FROM telemetry WHERE asset_id = $1", ASSET_1
    )
    assert counts[0]["n"] == counts[0]["d"]
    assert f"database: {await server_mode(db_url)} at " in log.read_text()
    assert "besspassword" not in log.read_text()
