"""The only module that imports asyncpg (DESIGN §8): connection pool, schema DDL, COPY, queries.

Everything it returns is plain Python (dicts, tuples, ints): the rest of ``storage`` never sees
an asyncpg type. Connection failures surface as ordinary exceptions (OSError, TimeoutError,
asyncpg errors); the caller treats every failure as "database down, retry later".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from . import schema

log = logging.getLogger("bess_sim.storage")

Mode = Literal["timescaledb", "postgresql"]
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PruneCounts:
    assets: int
    telemetry: int
    dispatches: int
    sites: int


def _count(status: str) -> int:
    """Row count of a command tag such as ``DELETE 12`` or ``INSERT 0 7``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


async def _init_connection(con: Any) -> None:
    await con.execute(schema.CREATE_STAGE)


class Database:
    """A small asyncpg pool plus the queries of bess-sim."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        max_size: int = 4,
    ) -> Database:
        """Open a pool and prove the server answers. min_size=0: while the server is down the
        pool does not keep reconnecting in the background; the writer's backoff decides."""
        pool = await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=max_size,
            timeout=connect_timeout_s,
            command_timeout=command_timeout_s,
            init=_init_connection,
        )
        try:
            async with pool.acquire(timeout=connect_timeout_s) as con:
                await con.fetchval("SELECT 1")
        except BaseException:
            pool.terminate()
            raise
        return cls(pool)

    async def close(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._pool.terminate()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    # ------------------------------------------------------------ schema
    async def ensure_schema(self) -> tuple[Mode, int]:
        """Create/upgrade the schema under the advisory lock; returns (mode, schema version)."""
        async with self._pool.acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1)", schema.SCHEMA_LOCK_KEY)
            try:
                mode = await self._timescale(con)
                await con.execute(schema.SCHEMA_VERSION_DDL)
                current = await con.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
                for version, description, statements in schema.MIGRATIONS:
                    if version <= current:
                        continue
                    async with con.transaction():
                        for sql in statements:
                            await con.execute(sql)
                        await con.execute(
                            "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                            version,
                            description,
                        )
                    log.info("database: applied schema version %d (%s)", version, description)
                    current = version
                if mode == "timescaledb":
                    await self._timescale_setup(con)
            finally:
                await con.execute("SELECT pg_advisory_unlock($1)", schema.SCHEMA_LOCK_KEY)
        return mode, int(current)

    async def _timescale(self, con: Any) -> Mode:
        """``CREATE EXTENSION timescaledb`` best effort: plain PostgreSQL has no such extension
        (or the role may not create it); both are fine, the tables are then plain tables."""
        try:
            await con.execute(schema.CREATE_TIMESCALE)
        except asyncpg.PostgresError as exc:
            log.debug("database: timescaledb not available: %s", exc)
        version = await con.fetchval(schema.TIMESCALE_VERSION)
        return "timescaledb" if version else "postgresql"

    async def _timescale_setup(self, con: Any) -> None:
        await con.execute(schema.CREATE_HYPERTABLE)
        if not await con.fetchval(schema.COMPRESSION_ENABLED):
            await con.execute(schema.ENABLE_COMPRESSION)
        await con.execute(schema.ADD_COMPRESSION_POLICY)
        await con.execute(schema.ADD_RETENTION_POLICY)

    # ------------------------------------------------------------ reconcile
    async def reconcile(
        self,
        sites: Sequence[tuple[Any, ...]],
        assets: Sequence[tuple[Any, ...]],
        *,
        reset: bool,
    ) -> PruneCounts:
        """Optionally truncate, upsert ``sites``/``assets`` rows (UPSERT_SITE / UPSERT_ASSET
        parameter order) and delete everything of assets/sites not in them. One transaction,
        under the schema lock so two starting simulators do not interleave."""
        asset_ids = [a[0] for a in assets]
        site_ids = [s[0] for s in sites]
        async with self._pool.acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1)", schema.SCHEMA_LOCK_KEY)
            try:
                async with con.transaction():
                    if reset:
                        await con.execute(schema.TRUNCATE_ALL)
                    await con.executemany(schema.UPSERT_SITE, sites)
                    await con.executemany(schema.UPSERT_ASSET, assets)
                    stale = [r["id"] for r in await con.fetch(schema.STALE_ASSETS, asset_ids)]
                    telemetry = dispatches = removed = 0
                    if stale:
                        telemetry = _count(await con.execute(schema.DELETE_TELEMETRY_OF, stale))
                        dispatches = _count(await con.execute(schema.DELETE_DISPATCHES_OF, stale))
                        removed = _count(await con.execute(schema.DELETE_ASSETS, stale))
                    sites_removed = _count(await con.execute(schema.DELETE_STALE_SITES, site_ids))
            finally:
                await con.execute("SELECT pg_advisory_unlock($1)", schema.SCHEMA_LOCK_KEY)
        return PruneCounts(removed, telemetry, dispatches, sites_removed)

    # ------------------------------------------------------------ registration
    async def registered(self) -> tuple[list[Row], list[Row]]:
        """Sites and assets registered over the API (origin 'api'), oldest first."""
        return await self._fetch(schema.REGISTERED_SITES), await self._fetch(
            schema.REGISTERED_ASSETS
        )

    async def save_site(self, site: tuple[Any, ...]) -> None:
        await self._pool.execute(schema.SAVE_SITE, *site)

    async def save_asset(self, asset: tuple[Any, ...], spec_json: str) -> None:
        await self._pool.execute(schema.SAVE_ASSET, *asset, spec_json)

    async def delete_asset(self, asset_id: str) -> PruneCounts:
        """Everything of one asset, as a prune does; one transaction."""
        ids = [asset_id]
        async with self._pool.acquire() as con, con.transaction():
            telemetry = _count(await con.execute(schema.DELETE_TELEMETRY_OF, ids))
            dispatches = _count(await con.execute(schema.DELETE_DISPATCHES_OF, ids))
            removed = _count(await con.execute(schema.DELETE_ASSETS, ids))
        return PruneCounts(removed, telemetry, dispatches, 0)

    async def delete_site(self, site_id: str) -> None:
        await self._pool.execute(schema.DELETE_SITE, site_id)

    # ------------------------------------------------------------ restore
    async def latest_telemetry(self, asset_ids: Sequence[str]) -> list[Row]:
        return await self._fetch(schema.LATEST_TELEMETRY, list(asset_ids))

    async def dispatches_in_effect(self, asset_ids: Sequence[str]) -> list[Row]:
        return await self._fetch(schema.DISPATCHES_IN_EFFECT, list(asset_ids))

    async def recent_dispatches(self, limit: int) -> list[Row]:
        return await self._fetch(schema.RECENT_DISPATCHES, limit)

    async def end_dispatches(self, ends: Iterable[tuple[str, str, datetime]]) -> None:
        """(id, status, ended_at) for records still 'accepted'."""
        rows = list(ends)
        if rows:
            await self._pool.executemany(schema.END_DISPATCH, rows)

    # ------------------------------------------------------------ writer
    async def write_batch(
        self, dispatches: Sequence[tuple[Any, ...]], telemetry: Sequence[tuple[Any, ...]]
    ) -> int:
        """Upsert dispatch records and store telemetry in one transaction; returns telemetry
        rows inserted (fewer than given when some were already stored).

        Fast path: COPY straight into ``telemetry``. If any row already exists (a retried batch
        whose commit had reached the server, or an earlier run's timestamps) the unique index
        refuses the whole COPY; the batch is then copied into a staging table and merged with
        ON CONFLICT DO NOTHING. bench/: the direct COPY runs at ~2× the merge's rows/s."""
        async with self._pool.acquire() as con:
            if telemetry:
                try:
                    async with con.transaction():
                        if dispatches:
                            await con.executemany(schema.UPSERT_DISPATCH, dispatches)
                        await con.copy_records_to_table(
                            "telemetry", records=telemetry, columns=schema.TELEMETRY_COLUMNS
                        )
                    return len(telemetry)
                except asyncpg.UniqueViolationError:
                    pass  # nothing of the transaction was kept; merge below
            inserted = 0
            async with con.transaction():
                if dispatches:
                    await con.executemany(schema.UPSERT_DISPATCH, dispatches)
                if telemetry:
                    await con.copy_records_to_table(
                        schema.STAGE_TABLE, records=telemetry, columns=schema.TELEMETRY_COLUMNS
                    )
                    inserted = _count(await con.execute(schema.MERGE_STAGE))
            return inserted

    # ------------------------------------------------------------ history
    async def history_raw(
        self, asset_id: str, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Row]:
        return await self._fetch(schema.HISTORY_RAW, asset_id, start, end, limit)

    async def history_buckets(
        self,
        mode: Mode,
        asset_id: str,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        bucket_s: float,
    ) -> list[Row]:
        sql = schema.history_buckets_sql(mode)
        return await self._fetch(sql, asset_id, start, end, limit, float(bucket_s))

    # ------------------------------------------------------------ helpers
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run any query (tests and tools); rows as dicts."""
        return await self._fetch(sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        records: list[Mapping[str, Any]] = await self._pool.fetch(sql, *args)
        return [dict(r) for r in records]
