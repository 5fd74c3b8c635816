"""A database that is slow, silent, or locked: start-up, /health, history and shutdown stay
bounded (issue 9, items 3-5); a blocked prune never holds up restore and writing (item 2)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import asyncpg
import pytest

from bess_sim.config import load_assets
from bess_sim.sim import FleetConfig, HistoryBuffer, HistoryQuery
from bess_sim.storage.schema import SCHEMA_LOCK_KEY

from .conftest import TcpProxy
from .helpers import ASSET_1, ASSET_3, SITE_B, eventually, make_storage, new_fleet, tick

# A command timeout far beyond the test timeout: only the fixes under test can end a wait.
PATIENT = {
    "retry_initial_s": 0.1,
    "retry_max_s": 1.0,
    "connect_timeout_s": 600.0,
    "command_timeout_s": 600.0,
}


@pytest.fixture
def config(assets_file: Path) -> FleetConfig:
    return load_assets(assets_file)


def _memory(config: FleetConfig) -> HistoryBuffer:
    return HistoryBuffer((a.id for a in config.assets), 100)


def _tick_both(fleet, storage, memory: HistoryBuffer, n: int = 1) -> None:
    for _ in range(n):
        snaps = fleet.advance(1.0)
        storage.publish(snaps)
        memory.publish(snaps)


@pytest.mark.timeout(90)
async def test_silent_server_health_down_history_from_memory_bounded_shutdown(
    proxied_url: str, proxy: TcpProxy, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    memory = _memory(config)
    statuses: list[str] = []
    st = make_storage(
        proxied_url,
        fleet,
        statuses=statuses,
        fallback=memory.query,
        stale_after_s=1.0,
        drain_timeout_s=2.0,
        **PATIENT,
    )
    async with st:
        _tick_both(fleet, st, memory, 3)
        assert await st.flush(30)
        proxy.hang()
        _tick_both(fleet, st, memory, 2)
        # History while /health still says ok: the query cannot answer, memory does.
        rows = await st.history(HistoryQuery(ASSET_1, limit=2))
        assert [r.timestamp for r in rows] == [s.timestamp for s in memory.query(
            HistoryQuery(ASSET_1, limit=2)
        )]  # fmt: skip
        assert len(rows) == 2
        # /health turns down from the age of the oldest unwritten row, not a command timeout.
        await eventually(lambda: st.status == "down", what="db status down")
        assert st.stalled_s() > 1.0
        _tick_both(fleet, st, memory, 1)
        rows = await st.history(HistoryQuery(ASSET_1, limit=1))
        assert rows[0].timestamp == fleet.snapshot(ASSET_1).timestamp
    # Leaving the block returned (the test timeout would fail it otherwise) with rows unwritten.
    assert statuses == ["ok", "down"]
    assert st.pending_rows > 0


@pytest.mark.timeout(90)
async def test_idle_silent_server_turns_health_down(
    proxied_url: str, proxy: TcpProxy, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    async with make_storage(
        proxied_url, fleet, stale_after_s=0.5, idle_ping_s=0.2, drain_timeout_s=1.0, **PATIENT
    ) as st:
        assert st.status == "ok"
        proxy.hang()  # nothing published: only the idle ping can notice
        await eventually(lambda: st.status == "down", what="db status down while idle")


@pytest.mark.timeout(90)
async def test_start_up_bounded_then_picked_up_in_background(
    db_url: str, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    # Another session holds the schema lock (e.g. a second simulator stuck mid-migration):
    # connecting works, ensuring the schema waits.
    holder = await asyncpg.connect(db_url)
    await holder.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_KEY)
    fleet = new_fleet(config)
    try:
        st = make_storage(db_url, fleet, startup_timeout_s=1.0, **PATIENT)
        await st.__aenter__()
    finally:
        await holder.close()  # releases the lock
    try:
        assert st.status == "down"
        assert "start-up step not done within 1 s" in caplog.text
        tick(fleet, st, 3)
        await eventually(lambda: st.status == "ok", what="storage to come up in the background")
        assert await st.flush(60)
    finally:
        await st.__aexit__(None, None, None)
    rows = await sql("SELECT count(*) AS n FROM telemetry")
    assert rows[0]["n"] == 3 * len(config.assets)


@pytest.mark.timeout(90)
async def test_blocked_prune_does_not_hold_restore_or_writing(
    db_url: str, sql, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet) as st:
        tick(fleet, st, 5)
        assert await st.flush(30)
    smaller = dataclasses.replace(
        config,
        sites=tuple(s for s in config.sites if s.id != SITE_B),
        assets=tuple(a for a in config.assets if a.id != ASSET_3),
    )
    # Another session holds a row lock on the asset to be pruned: the prune waits on it.
    blocker = await asyncpg.connect(db_url)
    await blocker.execute("BEGIN")
    await blocker.execute("SELECT * FROM assets WHERE id = $1 FOR UPDATE", ASSET_3)
    try:
        fleet = new_fleet(smaller)
        async with make_storage(db_url, fleet, **PATIENT) as st:
            assert st.status == "ok"
            assert st.restored  # restore ran although the prune is blocked
            assert not await st.wait_pruned(0.5)
            tick(fleet, st, 2)
            assert await st.flush(30)  # and writing goes on
            await blocker.execute("ROLLBACK")
            assert await st.wait_pruned(60)
    finally:
        await blocker.close()
    left = await sql("SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_3)
    assert left[0]["n"] == 0
    kept = await sql("SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_1)
    assert kept[0]["n"] == 7


async def test_backlog_drains_in_bounded_slices(
    proxied_url: str, proxy: TcpProxy, sql, config: FleetConfig
) -> None:
    """A backlog is written in transactions of at most ``batch_rows`` rows (the loop runs
    between them); xmin tells the transactions that wrote the rows apart."""
    fleet = new_fleet(config)
    n_assets = len(config.assets)
    async with make_storage(
        proxied_url, fleet, batch_rows=100, retry_initial_s=0.1, retry_max_s=0.5
    ) as st:
        await proxy.cut()
        tick(fleet, st, 200)  # 600 rows while down
        await proxy.restore()
        assert await st.flush(60)
    rows = await sql("SELECT xmin::text AS tx, count(*) AS n FROM telemetry GROUP BY 1 ORDER BY 1")
    assert sum(r["n"] for r in rows) == 200 * n_assets
    assert max(r["n"] for r in rows) <= 100
    assert len(rows) >= 200 * n_assets // 100
