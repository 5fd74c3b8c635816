"""SQL text of the persistence layer (DESIGN §7). Executed only by :mod:`bess_sim.storage.db`.

Schema changes are numbered migrations recorded in ``schema_version``; ensuring the schema
applies the missing ones under a session advisory lock, so two simulators starting at once
against one database serialise instead of racing on ``CREATE TABLE`` (concurrent
``CREATE TABLE IF NOT EXISTS`` can still fail with a unique violation on ``pg_type``).
"""

from __future__ import annotations

#: pg_advisory_lock key of the schema/reconcile section: an arbitrary bigint constant, chosen
#: unlikely to collide with another application's key in the same database.
SCHEMA_LOCK_KEY = 0x1B7E_55A1_3C0D_E5A7

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

#: (version, description, statements). Append new versions; never edit an applied one.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "sites, assets, telemetry, dispatches",
        (
            """
            CREATE TABLE IF NOT EXISTS sites (
                id         uuid PRIMARY KEY,
                name       text NOT NULL,
                location   text NOT NULL DEFAULT '',
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS assets (
                id                   uuid PRIMARY KEY,
                site_id              uuid NOT NULL REFERENCES sites (id),
                name                 text NOT NULL,
                location             text NOT NULL DEFAULT '',
                capacity_mwhr        double precision NOT NULL,
                max_mw               double precision NOT NULL,
                min_mw               double precision NOT NULL,
                ramp_rate_mw_per_min double precision NOT NULL,
                efficiency           double precision NOT NULL,
                initial_soc_pct      double precision NOT NULL,
                soc_min_pct          double precision NOT NULL,
                soc_max_pct          double precision NOT NULL,
                watchdog_timeout_s   double precision NOT NULL,
                modbus_port          integer NOT NULL,
                modbus_unit_id       integer NOT NULL,
                updated_at           timestamptz NOT NULL DEFAULT now()
            )
            """,
            # No foreign key to assets: it would cost a lookup per inserted row and hypertables
            # with foreign keys complicate compression; pruning deletes telemetry explicitly.
            # The unique constraint includes the partitioning column, as TimescaleDB requires.
            """
            CREATE TABLE IF NOT EXISTS telemetry (
                asset_id    uuid NOT NULL,
                ts          timestamptz NOT NULL,
                soc_mwhr    double precision NOT NULL,
                soc_pct     double precision NOT NULL,
                current_mw  double precision NOT NULL,
                setpoint_mw double precision NOT NULL,
                status      text NOT NULL,
                alarms      text[] NOT NULL DEFAULT '{}',
                CONSTRAINT telemetry_asset_ts UNIQUE (asset_id, ts)
            )
            """,
            # seq keeps insertion order: many dispatches can share one simulated submitted_at
            # (manual clock), and the in-memory log must be reloaded in the order it was made.
            """
            CREATE TABLE IF NOT EXISTS dispatches (
                id           uuid PRIMARY KEY,
                seq          bigint GENERATED ALWAYS AS IDENTITY,
                asset_id     uuid NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
                mw           double precision NOT NULL,
                duration_s   double precision,
                status       text NOT NULL,
                reason       text,
                source       text NOT NULL,
                client       text,
                submitted_at timestamptz NOT NULL,
                ended_at     timestamptz,
                updated_at   timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX IF NOT EXISTS dispatches_seq ON dispatches (seq)",
            "CREATE INDEX IF NOT EXISTS dispatches_asset ON dispatches (asset_id, seq)",
            """
            CREATE INDEX IF NOT EXISTS dispatches_in_effect ON dispatches (asset_id)
                WHERE status = 'accepted'
            """,
        ),
    ),
    (
        2,
        "battery model v2 (DESIGN §10): reactive, available limits, temperature, frequency",
        # Nullable without defaults: rows written before the upgrade have no value for them
        # (NULL, not a made-up 0), and adding such a column is a catalogue-only change on
        # plain PostgreSQL and allowed on a TimescaleDB hypertable with compressed chunks.
        (
            """
            ALTER TABLE telemetry
                ADD COLUMN IF NOT EXISTS current_mvar double precision,
                ADD COLUMN IF NOT EXISTS setpoint_mvar double precision,
                ADD COLUMN IF NOT EXISTS available_discharge_mw double precision,
                ADD COLUMN IF NOT EXISTS available_charge_mw double precision,
                ADD COLUMN IF NOT EXISTS temperature_c double precision,
                ADD COLUMN IF NOT EXISTS frequency_hz double precision
            """,
            "ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS mvar double precision",
        ),
    ),
    (
        3,
        "registration: origin (config | api), created_at, spec of registered assets",
        (
            # origin 'config' = managed by assets.yaml (upserted and pruned by reconcile);
            # 'api' = registered at run time (DESIGN §14): never pruned, restored at start-up.
            """
            ALTER TABLE sites
                ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'config'
                    CHECK (origin IN ('config', 'api')),
                ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now()
            """,
            # spec: the asset's assets.yaml mapping as registered; restored through the same
            # validation as the file, so fields added to the YAML later need no new column.
            """
            ALTER TABLE assets
                ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'config'
                    CHECK (origin IN ('config', 'api')),
                ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now(),
                ADD COLUMN IF NOT EXISTS spec jsonb
            """,
        ),
    ),
    (
        4,
        "fault injection (DESIGN §11): faults",
        (
            # No foreign key to assets: a fault record outlives a deleted asset (it is the
            # test's record), and port-wide faults have no asset at all.
            """
            CREATE TABLE IF NOT EXISTS faults (
                id          uuid PRIMARY KEY,
                kind        text NOT NULL,
                asset_id    uuid,
                port        integer,
                params      jsonb NOT NULL DEFAULT '{}',
                state       text NOT NULL CHECK (state IN ('scheduled', 'active', 'ended')),
                created_at  timestamptz NOT NULL,
                starts_at   timestamptz NOT NULL,
                ends_at     timestamptz,
                started_at  timestamptz,
                ended_at    timestamptz,
                duration_s  double precision,
                end_reason  text,
                updated_at  timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX IF NOT EXISTS faults_asset_created ON faults (asset_id, created_at)",
        ),
    ),
)

# ---------------------------------------------------------------- TimescaleDB (best effort)
CREATE_TIMESCALE = "CREATE EXTENSION IF NOT EXISTS timescaledb"
#: Whether the server can run TimescaleDB, checked before CREATE EXTENSION (see db._timescale).
TIMESCALE_PROBE = """
SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')
           AS available,
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
       current_setting('shared_preload_libraries') AS preload
"""
#: 'timescale' (community build: compression, policies) or 'apache' (neither).
TIMESCALE_LICENSE = "SELECT current_setting('timescaledb.license', true)"
#: Chunk of one simulated day: at 1 s ticks a 100-asset fleet writes 8.6 M rows/day, which
#: keeps a chunk's indexes in memory on a small server (Timescale's guidance: chunk indexes
#: should fit in ~25 % of memory).
CREATE_HYPERTABLE = """
SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE)
"""
COMPRESSION_ENABLED = """
SELECT compression_enabled FROM timescaledb_information.hypertables
WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'
"""
# Changing compression settings fails once chunks are compressed, hence the check above.
ENABLE_COMPRESSION = """
ALTER TABLE telemetry SET (timescaledb.compress,
                           timescaledb.compress_segmentby = 'asset_id',
                           timescaledb.compress_orderby = 'ts DESC')
"""
#: Policies run on the ``ts`` column, which is *simulated* time: a run whose --start-time is
#: far in the past has its chunks compressed (and eventually dropped) straight away.
COMPRESS_AFTER = "7 days"
RETAIN_FOR = "365 days"
ADD_COMPRESSION_POLICY = f"""
SELECT add_compression_policy('telemetry', compress_after => INTERVAL '{COMPRESS_AFTER}',
                              if_not_exists => TRUE)
"""
ADD_RETENTION_POLICY = f"""
SELECT add_retention_policy('telemetry', drop_after => INTERVAL '{RETAIN_FOR}',
                            if_not_exists => TRUE)
"""

# ---------------------------------------------------------------- reconcile
TRUNCATE_ALL = "TRUNCATE telemetry, dispatches, assets, faults"
UPSERT_SITE = """
INSERT INTO sites (id, name, location) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, location = EXCLUDED.location,
                               origin = 'config', updated_at = now()
"""
UPSERT_ASSET = """
INSERT INTO assets (id, site_id, name, location, capacity_mwhr, max_mw, min_mw,
                    ramp_rate_mw_per_min, efficiency, initial_soc_pct, soc_min_pct,
                    soc_max_pct, watchdog_timeout_s, modbus_port, modbus_unit_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (id) DO UPDATE SET
    site_id = EXCLUDED.site_id, name = EXCLUDED.name, location = EXCLUDED.location,
    capacity_mwhr = EXCLUDED.capacity_mwhr, max_mw = EXCLUDED.max_mw, min_mw = EXCLUDED.min_mw,
    ramp_rate_mw_per_min = EXCLUDED.ramp_rate_mw_per_min, efficiency = EXCLUDED.efficiency,
    initial_soc_pct = EXCLUDED.initial_soc_pct, soc_min_pct = EXCLUDED.soc_min_pct,
    soc_max_pct = EXCLUDED.soc_max_pct, watchdog_timeout_s = EXCLUDED.watchdog_timeout_s,
    modbus_port = EXCLUDED.modbus_port, modbus_unit_id = EXCLUDED.modbus_unit_id,
    origin = 'config', spec = NULL, updated_at = now()
"""
#: Only file-managed rows are pruned; registered ones (origin 'api') stay (DESIGN §14).
STALE_ASSETS = "SELECT id FROM assets WHERE origin = 'config' AND NOT (id = ANY($1::uuid[]))"
#: Sites no longer in assets.yaml, once no asset refers to them (stale assets are pruned one by
#: one afterwards, then this runs again).
DELETE_STALE_SITES = """
DELETE FROM sites s WHERE s.origin = 'config' AND NOT (s.id = ANY($1::uuid[]))
    AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.site_id = s.id)
"""
#: 0 = no limit, for the prune transaction only (SET LOCAL); the setting exists since 2.14.
LIFT_DECOMPRESSION_LIMIT = "SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 0"


def delete_telemetry_of(asset_uuid: str) -> str:
    """One asset's telemetry: an index scan on (asset_id, ts) per chunk, and on compressed
    chunks only that asset's segments. ``asset_uuid`` must be a validated uuid string."""
    return f"DELETE FROM telemetry WHERE asset_id = '{asset_uuid}'::uuid"


#: Taken before any telemetry is touched (see ``Database.prune_asset``).
LOCK_ASSET = "SELECT 1 FROM assets WHERE id = $1::uuid FOR UPDATE"
DELETE_DISPATCHES_OF = "DELETE FROM dispatches WHERE asset_id = $1::uuid"
DELETE_ASSET = "DELETE FROM assets WHERE id = $1::uuid"

# ---------------------------------------------------------------- registration (DESIGN §14)
REGISTERED_SITES = """
SELECT id, name, location FROM sites WHERE origin = 'api' ORDER BY created_at, id
"""
REGISTERED_ASSETS = """
SELECT id, spec::text AS spec FROM assets WHERE origin = 'api' ORDER BY created_at, id
"""
SAVE_SITE = """
INSERT INTO sites (id, name, location, origin) VALUES ($1, $2, $3, 'api')
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, location = EXCLUDED.location,
                               origin = 'api', updated_at = now()
"""
#: UPSERT_ASSET's 15 parameters plus $16 = the spec mapping as JSON text.
SAVE_ASSET = """
INSERT INTO assets (id, site_id, name, location, capacity_mwhr, max_mw, min_mw,
                    ramp_rate_mw_per_min, efficiency, initial_soc_pct, soc_min_pct,
                    soc_max_pct, watchdog_timeout_s, modbus_port, modbus_unit_id, origin, spec)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'api', $16::jsonb)
ON CONFLICT (id) DO UPDATE SET
    site_id = EXCLUDED.site_id, name = EXCLUDED.name, location = EXCLUDED.location,
    capacity_mwhr = EXCLUDED.capacity_mwhr, max_mw = EXCLUDED.max_mw, min_mw = EXCLUDED.min_mw,
    ramp_rate_mw_per_min = EXCLUDED.ramp_rate_mw_per_min, efficiency = EXCLUDED.efficiency,
    initial_soc_pct = EXCLUDED.initial_soc_pct, soc_min_pct = EXCLUDED.soc_min_pct,
    soc_max_pct = EXCLUDED.soc_max_pct, watchdog_timeout_s = EXCLUDED.watchdog_timeout_s,
    modbus_port = EXCLUDED.modbus_port, modbus_unit_id = EXCLUDED.modbus_unit_id,
    origin = 'api', spec = EXCLUDED.spec, updated_at = now()
"""
DELETE_SITE = "DELETE FROM sites WHERE id = $1"

# ---------------------------------------------------------------- restore
#: Latest row per asset: one backward index probe on (asset_id, ts) per asset (LATERAL), never
#: DISTINCT ON over the whole table.
LATEST_TELEMETRY = """
SELECT a.id AS asset_id, t.ts, t.soc_mwhr, t.soc_pct, t.current_mw, t.setpoint_mw,
       t.status, t.alarms, t.current_mvar, t.temperature_c
FROM unnest($1::uuid[]) AS a (id)
CROSS JOIN LATERAL (
    SELECT * FROM telemetry t WHERE t.asset_id = a.id ORDER BY t.ts DESC LIMIT 1
) t
"""
DISPATCH_COLUMNS = (
    "id, asset_id, mw, duration_s, status, reason, source, client, submitted_at, ended_at, mvar"
)
DISPATCHES_IN_EFFECT = f"""
SELECT {DISPATCH_COLUMNS} FROM dispatches
WHERE status = 'accepted' AND asset_id = ANY($1::uuid[])
ORDER BY seq
"""
#: The newest ``$1`` records, returned oldest first (the order Fleet.load_records wants).
RECENT_DISPATCHES = f"""
SELECT {DISPATCH_COLUMNS} FROM (
    SELECT * FROM dispatches ORDER BY seq DESC LIMIT $1
) d ORDER BY seq
"""
END_DISPATCH = """
UPDATE dispatches SET status = $2, ended_at = $3, updated_at = now()
WHERE id = $1 AND status = 'accepted'
"""

# ---------------------------------------------------------------- writer
UPSERT_DISPATCH = f"""
INSERT INTO dispatches ({DISPATCH_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
                               ended_at = EXCLUDED.ended_at, updated_at = now()
"""
TELEMETRY_COLUMNS = (
    "asset_id", "ts", "soc_mwhr", "soc_pct", "current_mw", "setpoint_mw", "status", "alarms",
    "current_mvar", "setpoint_mvar", "available_discharge_mw", "available_charge_mw",
    "temperature_c", "frequency_hz",
)  # fmt: skip
#: Per-connection staging table for binary COPY; ON COMMIT DELETE ROWS empties it after each
#: batch (and a rolled-back batch leaves nothing behind).
STAGE_TABLE = "bess_telemetry_stage"
CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (
    asset_id uuid, ts timestamptz, soc_mwhr double precision, soc_pct double precision,
    current_mw double precision, setpoint_mw double precision, status text, alarms text[],
    current_mvar double precision, setpoint_mvar double precision,
    available_discharge_mw double precision, available_charge_mw double precision,
    temperature_c double precision, frequency_hz double precision
) ON COMMIT DELETE ROWS
"""
#: A batch retried after a lost acknowledgement (the commit reached the server, the reply did
#: not reach us) inserts nothing twice: conflicting (asset_id, ts) rows are skipped.
MERGE_STAGE = f"""
INSERT INTO telemetry ({", ".join(TELEMETRY_COLUMNS)})
SELECT {", ".join(TELEMETRY_COLUMNS)} FROM {STAGE_TABLE}
ON CONFLICT (asset_id, ts) DO NOTHING
"""

# ---------------------------------------------------------------- history
_RANGE = """asset_id = $1
    AND ts >= coalesce($2::timestamptz, '-infinity')
    AND ts <= coalesce($3::timestamptz, 'infinity')"""
#: DESIGN §10 columns (NULL in rows written before schema version 2).
_V2_COLUMNS = (
    "current_mvar, setpoint_mvar, available_discharge_mw, available_charge_mw, temperature_c, "
    "frequency_hz"
)
HISTORY_RAW = f"""
SELECT ts, soc_mwhr, soc_pct, current_mw, setpoint_mw, status, alarms, {_V2_COLUMNS}
FROM telemetry WHERE {_RANGE}
ORDER BY ts DESC LIMIT $4
"""
#: Bucket origin = the Unix epoch, like bess_sim.sim.history.BUCKET_ORIGIN.
_ORIGIN = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
BUCKET_EXPR = {
    "timescaledb": f"time_bucket(make_interval(secs => $5), ts, {_ORIGIN})",
    "postgresql": f"date_bin(make_interval(secs => $5), ts, {_ORIGIN})",
}


def history_buckets_sql(mode: str) -> str:
    """Averages per bucket, newest bucket first; status/alarms from the bucket's latest row."""
    return f"""
SELECT b.bucket, b.soc_mwhr, b.soc_pct, b.current_mw, b.setpoint_mw, b.last_ts,
       l.status, l.alarms, l.current_mvar, l.setpoint_mvar, l.available_discharge_mw,
       l.available_charge_mw, l.temperature_c, l.frequency_hz
FROM (
    SELECT {BUCKET_EXPR[mode]} AS bucket, avg(soc_mwhr) AS soc_mwhr, avg(soc_pct) AS soc_pct,
           avg(current_mw) AS current_mw, avg(setpoint_mw) AS setpoint_mw, max(ts) AS last_ts
    FROM telemetry WHERE {_RANGE}
    GROUP BY 1 ORDER BY 1 DESC LIMIT $4
) b
JOIN telemetry l ON l.asset_id = $1 AND l.ts = b.last_ts
ORDER BY b.bucket DESC
"""


# ---------------------------------------------------------------- faults (DESIGN §11)
SAVE_FAULT = """
INSERT INTO faults (id, kind, asset_id, port, params, state, created_at, starts_at, ends_at,
                    started_at, ended_at, duration_s, end_reason)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, started_at = EXCLUDED.started_at,
                               ended_at = EXCLUDED.ended_at, end_reason = EXCLUDED.end_reason,
                               updated_at = now()
"""
#: Faults a previous run left open: they ended when that simulator stopped.
END_OPEN_FAULTS = """
UPDATE faults SET state = 'ended', ended_at = COALESCE(ended_at, $1),
                  end_reason = 'simulator stopped', updated_at = now()
WHERE state <> 'ended'
"""
