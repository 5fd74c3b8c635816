"""TimescaleDB in the states a field server is found in (issue 9, items 1, 2 and 6).

- Installed but not preloaded: runs against ``TEST_DATABASE_URL`` and asserts what that
  server calls for (checked independently of the code under test). The CI server has
  TimescaleDB installed and not preloaded, the state of item 1.
- Compressed prune and the licence cases need a TimescaleDB server: ``TEST_TIMESCALE_URL``
  (community licence, preloaded) and ``TEST_TIMESCALE_APACHE_URL`` (``timescaledb.license =
  'apache'``). Skipped when unset; failing when set and unreachable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bess_sim.config import load_assets
from bess_sim.sim import FleetConfig, HistoryQuery

from .conftest import server_mode
from .helpers import ASSET_1, ASSET_3, SITE_B, START, make_storage, new_fleet, tick

PRELOAD_HINT = "shared_preload_libraries"


@pytest.fixture
def config(assets_file: Path) -> FleetConfig:
    return load_assets(assets_file)


async def q(url: str, query: str, *args: object) -> list[dict[str, object]]:
    """A query on the database at ``url``, independent of the code under test."""
    con = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await con.fetch(query, *args)]
    finally:
        await con.close()


async def _server_state(url: str) -> tuple[bool, bool]:
    con = await asyncpg.connect(url)
    try:
        available = bool(
            await con.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
            )
        )
        preloaded = "timescaledb" in await con.fetchval("SHOW shared_preload_libraries")
    finally:
        await con.close()
    return available, preloaded


async def test_mode_follows_availability_and_preload(
    db_url: str, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    available, preloaded = await _server_state(db_url)
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet) as st:
        assert st.status == "ok"
        assert st.mode == await server_mode(db_url)
        tick(fleet, st, 3)
        assert await st.flush(30)
        rows = await st.history(HistoryQuery(ASSET_1, limit=10, bucket_s=60))
        assert len(rows) == 1
    stored = await sql("SELECT count(*) AS n FROM telemetry")
    assert stored[0]["n"] == 3 * len(config.assets)
    hints = [r for r in caplog.records if PRELOAD_HINT in r.getMessage()]
    if available and not preloaded:
        # Item 1: plain mode, exactly one warning naming the setting to change.
        assert st.mode == "postgresql"
        assert len(hints) == 1 and hints[0].levelno == logging.WARNING
    else:
        assert hints == []


async def test_timescale_mode_hypertable_and_policies(ts_url: str, config: FleetConfig) -> None:
    fleet = new_fleet(config)
    async with make_storage(ts_url, fleet) as st:
        assert st.mode == "timescaledb"
    ht = await q(
        ts_url,
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'telemetry'",
    )
    assert ht == [{"compression_enabled": True}]
    jobs = await q(
        ts_url,
        "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'telemetry' "
        "ORDER BY proc_name",
    )
    assert [j["proc_name"] for j in jobs] == ["policy_compression", "policy_retention"]


async def test_apache_build_runs_in_timescale_mode_without_policies(
    apache_url: str, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = new_fleet(config)
    async with make_storage(apache_url, fleet) as st:
        assert st.status == "ok"
        assert st.mode == "timescaledb"
        tick(fleet, st, 120)
        assert await st.flush(30)
        buckets = await st.history(HistoryQuery(ASSET_1, limit=10, bucket_s=60))
        assert [b.timestamp for b in buckets] == [
            START + timedelta(seconds=s) for s in (120, 60, 0)
        ]
    ht = await q(
        apache_url,
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'telemetry'",
    )
    assert ht == [{"compression_enabled": False}]
    jobs = await q(
        apache_url,
        "SELECT count(*) AS n FROM timescaledb_information.jobs "
        "WHERE hypertable_name = 'telemetry'",
    )
    assert jobs[0]["n"] == 0
    assert "timescaledb.license = 'apache'" in caplog.text


@pytest.mark.timeout(600)
async def test_prune_of_compressed_asset_beyond_decompression_limit(
    ts_url: str, config: FleetConfig
) -> None:
    """Issue 9 item 2: 3 assets x 2 days at 1 s, compressed, one asset removed: 172 800 rows
    of that asset to decompress, over Timescale's default per-transaction limit (100 000)."""
    fleet = new_fleet(config)
    async with make_storage(ts_url, fleet) as st:
        assert st.mode == "timescaledb"
    per_asset = 2 * 86_400
    await q(
        ts_url,
        "INSERT INTO telemetry (asset_id, ts, soc_mwhr, soc_pct, current_mw, setpoint_mw, status)"
        " SELECT a.id, $1::timestamptz + make_interval(secs => s), 10, 50, 0, 0, 'online'"
        " FROM assets a, generate_series(1, $2) s",
        START,
        per_asset,
    )
    await q(ts_url, "SELECT compress_chunk(c) FROM show_chunks('telemetry') c")
    compressed = await q(
        ts_url,
        "SELECT count(*) AS n FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'telemetry' AND is_compressed",
    )
    assert compressed[0]["n"] >= 2
    # The data is past the limit: a plain delete of that asset (what start-up did) fails.
    with pytest.raises(asyncpg.PostgresError, match="max_tuples_decompressed"):
        await q(ts_url, "DELETE FROM telemetry WHERE asset_id = $1", ASSET_3)
    smaller = dataclasses.replace(
        config,
        sites=tuple(s for s in config.sites if s.id != SITE_B),
        assets=tuple(a for a in config.assets if a.id != ASSET_3),
    )
    fleet = new_fleet(smaller)
    async with make_storage(ts_url, fleet) as st:
        assert st.status == "ok"
        assert st.restored
        assert fleet.start_time == START + timedelta(seconds=per_asset)
        assert await st.wait_pruned(500)
        tick(fleet, st, 2)
        assert await st.flush(30)
    left = await q(ts_url, "SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_3)
    assert left[0]["n"] == 0
    kept = await q(ts_url, "SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_1)
    assert kept[0]["n"] == per_asset + 2
    assets = await q(ts_url, "SELECT count(*) AS n FROM assets")
    assert assets[0]["n"] == len(smaller.assets)


@pytest.mark.timeout(120)
async def test_blocked_prune_does_not_queue_writes_behind_compression(
    ts_url: str, config: FleetConfig
) -> None:
    """Found on a real TimescaleDB 2.15.2: the prune deleted the asset's telemetry first, then
    waited on a lock of its ``assets`` row, holding the chunk's RowExclusiveLock meanwhile.
    Compressing that chunk (the policy job, ``compress_chunk``) needs an ExclusiveLock: it
    queued behind the prune, and every write into the chunk queued behind the compression, so
    writing stopped for as long as the prune waited."""
    fleet = new_fleet(config)
    async with make_storage(ts_url, fleet) as st:
        tick(fleet, st, 5)
        assert await st.flush(30)
    # The chunk starts uncompressed whatever the policy job did meanwhile, and the job stays
    # off: the compression below is the only one, at a known moment.
    await q(
        ts_url,
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
        "WHERE hypertable_name = 'telemetry' AND proc_name = 'policy_compression'",
    )
    await q(ts_url, "SELECT decompress_chunk(c, true) FROM show_chunks('telemetry') c")
    smaller = dataclasses.replace(
        config,
        sites=tuple(s for s in config.sites if s.id != SITE_B),
        assets=tuple(a for a in config.assets if a.id != ASSET_3),
    )
    blocker = await asyncpg.connect(ts_url)
    compressor = await asyncpg.connect(ts_url)
    compress: asyncio.Task[list[asyncpg.Record]] | None = None
    await blocker.execute("BEGIN")
    await blocker.execute("SELECT * FROM assets WHERE id = $1 FOR UPDATE", ASSET_3)
    try:
        fleet = new_fleet(smaller)
        async with make_storage(
            ts_url, fleet, retry_initial_s=0.1, retry_max_s=1.0, prune_retry_initial_s=0.2
        ) as st:
            assert st.status == "ok"
            assert not await st.wait_pruned(0.5)  # waiting on the blocker's row lock
            # What the compression policy does to a chunk older than compress_after (START is
            # in the past): it must not wait on the blocked prune, nor writing on it.
            compress = asyncio.create_task(
                compressor.fetch("SELECT compress_chunk(c, true) FROM show_chunks('telemetry') c")
            )
            tick(fleet, st, 2)
            assert await st.flush(15)
            assert len(await asyncio.wait_for(compress, 15)) >= 1
            await blocker.execute("ROLLBACK")
            assert await st.wait_pruned(60)
            tick(fleet, st, 2)
            assert await st.flush(30)
    finally:
        await blocker.close()
        if compress is not None and not compress.done():
            compress.cancel()
        await asyncio.gather(*([compress] if compress else []), return_exceptions=True)
        compressor.terminate()
    left = await q(ts_url, "SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_3)
    assert left[0]["n"] == 0
    kept = await q(ts_url, "SELECT count(*) AS n FROM telemetry WHERE asset_id = $1", ASSET_1)
    assert kept[0]["n"] == 9
