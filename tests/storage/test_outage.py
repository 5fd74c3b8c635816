"""Database outages while the simulator keeps ticking: nothing inside the buffer bound is lost,
nothing is duplicated, overflow is counted; a database down at start-up is picked up later."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from bess_sim.config import load_assets
from bess_sim.metrics import Metrics
from bess_sim.sim import FleetConfig, HistoryBuffer, HistoryQuery

from .conftest import TcpProxy
from .helpers import START, dropped, eventually, make_storage, new_fleet, tick

# Short timeouts so the tests recover quickly; backoff capped at 1 s.
FAST = {
    "retry_initial_s": 0.1,
    "retry_max_s": 1.0,
    "connect_timeout_s": 2.0,
    "command_timeout_s": 3.0,
}


@pytest.fixture
def config(assets_file: Path) -> FleetConfig:
    return load_assets(assets_file)


async def _ticks_per_asset(sql) -> dict[str, list[int]]:
    rows = await sql("SELECT asset_id, ts FROM telemetry ORDER BY asset_id, ts")
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(str(r["asset_id"]), []).append(int((r["ts"] - START).total_seconds()))
    return out


async def test_outage_every_tick_stored_exactly_once(
    proxied_url: str, proxy: TcpProxy, sql, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    statuses: list[str] = []
    metrics = Metrics()
    async with make_storage(proxied_url, fleet, statuses=statuses, metrics=metrics, **FAST) as st:
        tick(fleet, st, 5)
        assert await st.flush(30)
        await proxy.cut()
        # Ticks go on (10 per wall second) until the writer noticed, then for 3 s more.
        while st.status != "down":
            tick(fleet, st)
            await asyncio.sleep(0.1)
        for _ in range(30):
            tick(fleet, st)
            await asyncio.sleep(0.1)
        assert st.pending_rows > 0
        await proxy.restore()
        tick(fleet, st, 5)
        assert await st.flush(60)
        assert st.status == "ok"
    total = fleet.tick_count
    stored = await _ticks_per_asset(sql)
    assert set(stored) == {a.id for a in config.assets}
    for ticks in stored.values():
        assert ticks == list(range(1, total + 1))  # each tick once, none missing
    assert statuses == ["ok", "down", "ok"]
    assert dropped(metrics) == 0


async def test_lost_commit_acknowledgement_is_not_duplicated(
    proxied_url: str, proxy: TcpProxy, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    fleet = new_fleet(config)
    async with make_storage(proxied_url, fleet, **FAST) as st:
        tick(fleet, st, 3)
        assert await st.flush(30)
        proxy.blackhole_after_commit()  # the batch commits; we never hear back
        tick(fleet, st, 2)

        async def committed() -> bool:
            return len((await _ticks_per_asset(sql)).get(config.assets[0].id, [])) == 5

        await eventually(committed, what="the blackholed batch to commit on the server")
        await eventually(lambda: st.status == "down", what="the writer to time out")
        assert st.pending_rows == 2 * len(config.assets)  # still buffered: not acknowledged
        await proxy.cut()
        await proxy.restore()
        tick(fleet, st, 2)
        assert await st.flush(60)
    stored = await _ticks_per_asset(sql)
    for ticks in stored.values():
        assert ticks == [1, 2, 3, 4, 5, 6, 7]
    assert "were already stored" in caplog.text


async def test_buffer_bound_smaller_than_outage(
    proxied_url: str, proxy: TcpProxy, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    n_assets = len(config.assets)
    bound_ticks = 5
    metrics = Metrics()
    fleet = new_fleet(config)
    async with make_storage(
        proxied_url, fleet, metrics=metrics, buffer_rows=bound_ticks * n_assets, **FAST
    ) as st:
        tick(fleet, st, 3)
        assert await st.flush(30)
        await proxy.cut()
        for _ in range(20):  # 20 ticks while down; the writer gets a chance after each
            tick(fleet, st)
            await asyncio.sleep(0.05)
        assert st.pending_rows == bound_ticks * n_assets
        await proxy.restore()
        assert await st.flush(60)
        tick(fleet, st, 2)
        assert await st.flush(60)
    assert dropped(metrics) == 15 * n_assets
    assert metrics.registry.get_sample_value("bess_db_written_rows_total") == 10 * n_assets
    stored = await _ticks_per_asset(sql)
    for ticks in stored.values():
        # Kept: the ticks before the outage, the first 5 of it, the ticks after it.
        assert ticks == [1, 2, 3, 4, 5, 6, 7, 8, 24, 25]
    assert "telemetry buffer full" in caplog.text


async def test_database_down_at_start_up(
    proxied_url: str, proxy: TcpProxy, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    await proxy.cut()
    fleet = new_fleet(config)
    statuses: list[str] = []
    memory = HistoryBuffer((a.id for a in config.assets), 100)
    async with make_storage(
        proxied_url,
        fleet,
        statuses=statuses,
        fallback=memory.query,
        startup_timeout_s=2.0,
        **FAST,
    ) as st:
        assert st.status == "down"
        assert fleet.start_time == START  # fresh start
        for _ in range(5):
            snaps = fleet.advance(1.0)
            st.publish(snaps)
            memory.publish(snaps)
            await asyncio.sleep(0.05)
        # While down, history is answered from memory.
        asset = config.assets[0].id
        rows = await st.history(HistoryQuery(asset, limit=2))
        assert [r.timestamp for r in rows] == [START + timedelta(seconds=s) for s in (5, 4)]
        await proxy.restore()
        await eventually(lambda: st.status == "ok", what="the database to be picked up")
        assert await st.flush(60)
    assert statuses == ["down", "ok"]
    stored = await _ticks_per_asset(sql)
    assert len(stored) == len(config.assets)
    for ticks in stored.values():
        assert ticks == [1, 2, 3, 4, 5]
    rows = await sql("SELECT max(ts) AS ts FROM telemetry")
    assert rows[0]["ts"] == START + timedelta(seconds=5)
    assert "not usable at start-up" in caplog.text
