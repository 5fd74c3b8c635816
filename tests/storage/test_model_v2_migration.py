"""Schema version 2 (DESIGN §10 columns) on real PostgreSQL: an old (version 1) database
upgrades in place, old rows read back with the §3 defaults, new rows round-trip.

On TimescaleDB (``TEST_TIMESCALE_URL`` / ``TEST_TIMESCALE_APACHE_URL``, skipped when unset) a
version 1 database whose telemetry hypertable has compressed chunks upgrades in place through
the simulator's own start-up, and keeps working: restore, writing, history, recompression.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bess_sim.config import load_assets
from bess_sim.sim import (
    AssetSpec,
    DispatchRecord,
    DispatchSource,
    DispatchStatus,
    HistoryQuery,
    ModbusAddress,
    Snapshot,
)
from bess_sim.storage import rows, schema

from .conftest import url_or_skip
from .helpers import ASSET_1, ASSET_3, SITE_B, START, make_storage, new_fleet, tick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = AssetSpec(
    id="7c1e2d3f-4a5b-4c6d-8e7f-000000000001", site_id="0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e01",
    name="A", location="", capacity_mwhr=10.0, max_mw=5.0, min_mw=-4.0,
    ramp_rate_mw_per_min=60.0, efficiency=0.9, modbus=ModbusAddress(5020, 1),
)  # fmt: skip


async def _apply(con: asyncpg.Connection, version: int) -> None:
    for v, description, statements in schema.MIGRATIONS:
        if v == version:
            async with con.transaction():
                for stmt in statements:
                    await con.execute(stmt)
                await con.execute(
                    "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                    v,
                    description,
                )


async def test_version_1_database_upgrades_in_place(db_url: str) -> None:
    assert [m[0] for m in schema.MIGRATIONS][:2] == [1, 2]
    con = await asyncpg.connect(db_url)
    try:
        await con.execute(schema.SCHEMA_VERSION_DDL)
        await _apply(con, 1)
        await con.execute("INSERT INTO sites (id, name) VALUES ($1, 'S')", SPEC.site_id)
        # The asset row as version 1 knew it (UPSERT_ASSET now also sets version 3's origin).
        await con.execute(
            "INSERT INTO assets (id, site_id, name, location, capacity_mwhr, max_mw, min_mw, "
            "ramp_rate_mw_per_min, efficiency, initial_soc_pct, soc_min_pct, soc_max_pct, "
            "watchdog_timeout_s, modbus_port, modbus_unit_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            *rows.asset_row(SPEC),
        )
        # A row as version 1 wrote it (8 columns).
        await con.execute(
            "INSERT INTO telemetry (asset_id, ts, soc_mwhr, soc_pct, current_mw, setpoint_mw, "
            "status, alarms) VALUES ($1, $2, 5, 50, 1, 1, 'discharging', '{}')",
            SPEC.id,
            T0,
        )
        await con.execute(
            "INSERT INTO dispatches (id, asset_id, mw, status, source, submitted_at) "
            "VALUES (gen_random_uuid(), $1, 1, 'accepted', 'rest', $2)",
            SPEC.id,
            T0,
        )
        await _apply(con, 2)
        cols = {
            r["column_name"]
            for r in await con.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'telemetry'"
            )
        }
        assert set(schema.TELEMETRY_COLUMNS) <= cols
        old = await con.fetch(schema.HISTORY_RAW, SPEC.id, None, None, 10)
        snap = rows.snapshot_from_row(SPEC, T0, old[0], old[0]["ts"])
        # NULL in old rows reads as the §3 values.
        assert (snap.current_mvar, snap.available_discharge_mw, snap.available_charge_mw) == (
            0.0, 5.0, -4.0,
        )  # fmt: skip
        assert snap.temperature_c is None
        rec = await con.fetch(f"SELECT {schema.DISPATCH_COLUMNS} FROM dispatches")
        assert rows.dispatch_record(rec[0]).mvar is None

        # A version 2 row through the writer's COPY path, then read back as a Snapshot.
        new = Snapshot(
            SPEC.id, SPEC.site_id, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), 1.0, 4.9, 49.0,
            10.0, 2.0, 2.0, 5.0, -4.0, 2, 16, 0, -1.25, -1.5, 3.5, -2.5, 41.5, 49.9,
        )  # fmt: skip
        await con.copy_records_to_table(
            "telemetry", records=rows.telemetry_rows([tuple(new)]), columns=schema.TELEMETRY_COLUMNS
        )
        got = await con.fetch(schema.HISTORY_RAW, SPEC.id, None, None, 1)
        back = rows.snapshot_from_row(SPEC, T0, got[0], got[0]["ts"])
        assert back == new._replace(heartbeat=0)
        assert back.alarm_names == ("derated",)
    finally:
        await con.close()


async def test_dispatch_mvar_round_trips(db_url: str) -> None:
    con = await asyncpg.connect(db_url)
    try:
        await con.execute(schema.SCHEMA_VERSION_DDL)
        await _apply(con, 1)
        await _apply(con, 2)
        await con.execute("INSERT INTO sites (id, name) VALUES ($1, 'S')", SPEC.site_id)
        # The asset row as version 1 knew it (UPSERT_ASSET now also sets version 3's origin).
        await con.execute(
            "INSERT INTO assets (id, site_id, name, location, capacity_mwhr, max_mw, min_mw, "
            "ramp_rate_mw_per_min, efficiency, initial_soc_pct, soc_min_pct, soc_max_pct, "
            "watchdog_timeout_s, modbus_port, modbus_unit_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            *rows.asset_row(SPEC),
        )
        rec = DispatchRecord(
            "5a0b5a0b-0000-4000-8000-000000000001", SPEC.id, 1.0, None, DispatchStatus.ACCEPTED,
            None, DispatchSource.MODBUS, "127.0.0.1:1", T0, None, mvar=-0.75,
        )  # fmt: skip
        await con.execute(schema.UPSERT_DISPATCH, *rows.dispatch_row(rec))
        got = await con.fetch(schema.DISPATCHES_IN_EFFECT, [SPEC.id])
        assert rows.dispatch_record(got[0]) == rec
    finally:
        await con.close()


@pytest.fixture(params=["TEST_TIMESCALE_URL", "TEST_TIMESCALE_APACHE_URL"])
async def timescale_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async for url in url_or_skip(request.param):
        yield url


async def _version_1_on_timescale(con: asyncpg.Connection, assets: list[AssetSpec]) -> bool:
    """What version 1 of the simulator left on TimescaleDB: migration 1, the hypertable with
    compression and policies (community licence only), its sites and assets. Returns whether
    compression is available."""
    await con.execute(schema.CREATE_TIMESCALE)
    await con.execute(schema.SCHEMA_VERSION_DDL)
    await _apply(con, 1)
    await con.execute(schema.CREATE_HYPERTABLE)
    community = await con.fetchval(schema.TIMESCALE_LICENSE) != "apache"
    if community:
        await con.execute(schema.ENABLE_COMPRESSION)
        await con.execute(schema.ADD_COMPRESSION_POLICY)
        await con.execute(schema.ADD_RETENTION_POLICY)
    for site_id in dict.fromkeys(a.site_id for a in assets):
        await con.execute("INSERT INTO sites (id, name) VALUES ($1, 'S')", site_id)
    for a in assets:
        await con.execute(
            "INSERT INTO assets (id, site_id, name, location, capacity_mwhr, max_mw, min_mw, "
            "ramp_rate_mw_per_min, efficiency, initial_soc_pct, soc_min_pct, soc_max_pct, "
            "watchdog_timeout_s, modbus_port, modbus_unit_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            *rows.asset_row(a),
        )
    return community


@pytest.mark.timeout(300)
async def test_version_1_timescale_database_with_compressed_chunks_upgrades_in_place(
    timescale_url: str, assets_file: Path
) -> None:
    config = load_assets(assets_file)
    per_asset = 2 * 86_400  # two days at 1 s: three 1-day chunks
    con = await asyncpg.connect(timescale_url)
    try:
        community = await _version_1_on_timescale(con, list(config.assets))
        # Rows as version 1 wrote them (8 columns); the policy job must not race the test.
        await con.execute(
            "INSERT INTO telemetry (asset_id, ts, soc_mwhr, soc_pct, current_mw, setpoint_mw, "
            "status) SELECT a.id, $1::timestamptz + make_interval(secs => s), 5, 50, 1, 1, "
            "'online' FROM assets a, generate_series(1, $2) s",
            START,
            per_asset,
        )
        if community:
            await con.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                "WHERE hypertable_name = 'telemetry'"
            )
            chunks = await con.fetch("SELECT compress_chunk(c) FROM show_chunks('telemetry') c")
            assert len(chunks) >= 3
    finally:
        await con.close()

    # The current simulator starts on it: migrations 2 and 3 on the (compressed) hypertable.
    fleet = new_fleet(config)
    last = START + timedelta(seconds=per_asset)
    async with make_storage(timescale_url, fleet) as st:
        assert st.status == "ok"
        assert (st.mode, st.schema_version) == ("timescaledb", schema.MIGRATIONS[-1][0])
        assert st.restored
        assert fleet.start_time == last
        tick(fleet, st, 3)  # new rows into the range of a compressed chunk
        assert await st.flush(30)
        raw = await st.history(HistoryQuery(ASSET_1, limit=5))
        assert [r.timestamp for r in raw] == [last + timedelta(seconds=s) for s in (3, 2, 1, 0, -1)]
        # Rows of version 1 read back with the §3 values, new ones with theirs.
        assert raw[-1].frequency_hz == 50.0 and raw[-1].temperature_c is None
        buckets = await st.history(HistoryQuery(ASSET_1, limit=2, bucket_s=3600))
        assert buckets[0].timestamp == last
    con = await asyncpg.connect(timescale_url)
    try:
        versions = await con.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [v["version"] for v in versions] == [m[0] for m in schema.MIGRATIONS]
        new_cols = await con.fetchrow(
            "SELECT count(*) AS n, count(frequency_hz) AS v2 FROM telemetry WHERE asset_id = $1",
            ASSET_1,
        )
        assert (new_cols["n"], new_cols["v2"]) == (per_asset + 3, 3)
        if community:
            # Compressing again keeps both old (NULL) and new values of the added columns.
            # (On a partially compressed chunk compress_chunk recompresses it.)
            await con.execute("SELECT compress_chunk(c, true) FROM show_chunks('telemetry') c")
            partial = await con.fetchval(
                "SELECT count(*) FROM _timescaledb_catalog.chunk c "
                "JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id "
                "WHERE h.table_name = 'telemetry' AND c.status & 8 <> 0"
            )
            assert partial == 0
            after = await con.fetchrow(
                "SELECT count(*) AS n, count(frequency_hz) AS v2, "
                "max(frequency_hz) AS hz FROM telemetry WHERE asset_id = $1",
                ASSET_1,
            )
            assert (after["n"], after["v2"], after["hz"]) == (per_asset + 3, 3, 50.0)
    finally:
        await con.close()
    # And a second start prunes an asset out of the migrated, compressed data.
    smaller = dataclasses.replace(
        config,
        sites=tuple(s for s in config.sites if s.id != SITE_B),
        assets=tuple(a for a in config.assets if a.id != ASSET_3),
    )
    fleet = new_fleet(smaller)
    async with make_storage(timescale_url, fleet) as st:
        assert st.restored and fleet.start_time == last + timedelta(seconds=3)
        assert await st.wait_pruned(200)
    con = await asyncpg.connect(timescale_url)
    try:
        left = await con.fetchval("SELECT count(*) FROM telemetry WHERE asset_id = $1", ASSET_3)
        assert left == 0
    finally:
        await con.close()
