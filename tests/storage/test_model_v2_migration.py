"""Schema version 2 (DESIGN §10 columns) on real PostgreSQL: an old (version 1) database
upgrades in place, old rows read back with the §3 defaults, new rows round-trip."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from bess_sim.sim import (
    AssetSpec,
    DispatchRecord,
    DispatchSource,
    DispatchStatus,
    ModbusAddress,
    Snapshot,
)
from bess_sim.storage import rows, schema

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
