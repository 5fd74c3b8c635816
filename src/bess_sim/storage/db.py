"""The only module that imports asyncpg (DESIGN §8): connection pool, schema DDL, COPY, queries.

Everything it returns is plain Python (dicts, tuples, ints): the rest of ``storage`` never sees
an asyncpg type. Connection failures surface as ordinary exceptions (OSError, TimeoutError,
asyncpg errors); the caller treats every failure as "database down, retry later".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Result of :meth:`Database.reconcile`: the assets to prune (done separately, per asset,
    see :meth:`Database.prune_asset`) and the sites already deleted."""

    stale_assets: tuple[str, ...]
    sites_removed: int


def _preloaded(setting: str) -> bool:
    """Whether ``shared_preload_libraries`` lists timescaledb (entries may be quoted or carry a
    ``$libdir/`` path)."""
    names = (e.strip().strip('"').rsplit("/", 1)[-1] for e in setting.split(","))
    return "timescaledb" in names


def _count(status: str) -> int:
    """Row count of a command tag such as ``DELETE 12`` or ``INSERT 0 7``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


@contextlib.asynccontextmanager
async def _transaction(con: Any) -> AsyncIterator[None]:
    """``BEGIN … COMMIT`` for use inside ``Database._connection``. Unlike asyncpg's
    ``transaction()`` it sends no ROLLBACK on error: the error path terminates the connection
    and the server rolls back, whereas awaiting a ROLLBACK on a server that stopped answering
    would hang for the whole command timeout."""
    await con.execute("BEGIN")
    yield
    await con.execute("COMMIT")


async def _sliced(
    rows: Sequence[tuple[Any, ...]],
    slice_rows: int,
    convert: Callable[[Sequence[tuple[Any, ...]]], Iterable[tuple[Any, ...]]],
) -> AsyncIterator[tuple[Any, ...]]:
    """``convert``-ed ``rows`` as an async iterable: converted and handed to COPY one slice of
    ``slice_rows`` at a time, letting the event loop run between slices."""
    for i in range(0, len(rows), slice_rows):
        if i:
            await asyncio.sleep(0)
        for row in convert(rows[i : i + slice_rows]):
            yield row


async def _init_connection(con: Any) -> None:
    await con.execute(schema.CREATE_STAGE)


class Database:
    """A small asyncpg pool plus the queries of bess-sim."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        # Set once CREATE EXTENSION failed on this server: later schema runs stay in plain mode
        # instead of failing the same way at every retry.
        self._timescale_failed = False
        self.warnings: list[str] = []  # degraded-mode warnings, each logged once

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

    def terminate(self) -> None:
        """Close every connection at once, without waiting for the server (shutdown against a
        server that accepts and never answers)."""
        self._pool.terminate()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection for one operation. When the operation fails or is cancelled the
        connection is terminated, never reused: the server may have closed it (a FATAL such as
        ``timescaledb must be preloaded``), or it may be stuck in a statement that will never
        answer, where the pool's release would try to reset it over a dead socket. Terminating
        also ends the session, which releases its advisory locks."""
        con = await self._pool.acquire()
        try:
            yield con
        except BaseException:
            con.terminate()
            raise
        finally:
            await self._pool.release(con)

    def _warn_once(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)

    async def ping(self) -> None:
        async with self._connection() as con:
            await con.fetchval("SELECT 1")

    # ------------------------------------------------------------ schema
    async def ensure_schema(self) -> tuple[Mode, int]:
        """Create/upgrade the schema under the advisory lock; returns (mode, schema version).
        On failure the connection is terminated, which releases the session lock."""
        async with self._connection() as con:
            await con.execute("SELECT pg_advisory_lock($1)", schema.SCHEMA_LOCK_KEY)
            mode = await self._timescale(con)
            await con.execute(schema.SCHEMA_VERSION_DDL)
            current = await con.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for version, description, statements in schema.MIGRATIONS:
                if version <= current:
                    continue
                async with _transaction(con):
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
            await con.execute("SELECT pg_advisory_unlock($1)", schema.SCHEMA_LOCK_KEY)
        return mode, int(current)

    async def _timescale(self, con: Any) -> Mode:
        """TimescaleDB when the server can run it, else plain PostgreSQL.

        ``CREATE EXTENSION timescaledb`` on a server where the extension is installed but not
        in ``shared_preload_libraries`` (a common Debian/Ubuntu state) raises a FATAL error and
        the server closes the connection, so availability and preloading are checked first
        (pg_available_extensions, current_setting). The role not being allowed to create the
        extension is the other degraded case; both give plain mode and one warning."""
        probe = await con.fetchrow(schema.TIMESCALE_PROBE)
        available, installed = probe["available"], probe["installed"]
        if available is None and installed is None:
            log.debug("database: timescaledb not available on the server")
            return "postgresql"
        if not _preloaded(probe["preload"] or ""):
            self._warn_once(
                "database: TimescaleDB is installed on the server but not loaded; running in "
                "plain PostgreSQL mode. To use it, add timescaledb to shared_preload_libraries "
                "in postgresql.conf (shared_preload_libraries = 'timescaledb') and restart "
                "PostgreSQL"
            )
            return "postgresql"
        if installed is None:
            if self._timescale_failed:
                return "postgresql"
            try:
                await con.execute(schema.CREATE_TIMESCALE)
            except asyncpg.PostgresError as exc:
                self._timescale_failed = True
                self._warn_once(
                    "database: CREATE EXTENSION timescaledb failed "
                    f"({type(exc).__name__}: {exc}); running in plain PostgreSQL mode"
                )
                if con.is_closed():
                    raise  # retried on a fresh connection, in plain mode
                return "postgresql"
        return "timescaledb"

    async def _timescale_setup(self, con: Any) -> None:
        await con.execute(schema.CREATE_HYPERTABLE)
        license_ = await con.fetchval(schema.TIMESCALE_LICENSE)
        if license_ == "apache":
            # The Apache-2 build has no compression and no policies (both are in the
            # Timescale-licensed module): hypertable and time_bucket only.
            self._warn_once(
                "database: TimescaleDB runs with timescaledb.license = 'apache': no compression "
                "or retention policies (set timescaledb.license = 'timescale' to have them)"
            )
            return
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
    ) -> Reconciled:
        """Optionally truncate, upsert ``sites``/``assets`` rows (UPSERT_SITE / UPSERT_ASSET
        parameter order), delete sites no longer listed that have no assets left, and name the
        assets no longer listed. One transaction, under the schema lock so two starting
        simulators do not interleave. The stale assets' rows are deleted by ``prune_asset``,
        outside this step: that delete can be slow (compressed chunks) or fail, and must never
        hold up restore and writing."""
        asset_ids = [a[0] for a in assets]
        site_ids = [s[0] for s in sites]
        async with self._connection() as con:
            await con.execute("SELECT pg_advisory_lock($1)", schema.SCHEMA_LOCK_KEY)
            async with _transaction(con):
                if reset:
                    await con.execute(schema.TRUNCATE_ALL)
                await con.executemany(schema.UPSERT_SITE, sites)
                await con.executemany(schema.UPSERT_ASSET, assets)
                stale = [str(r["id"]) for r in await con.fetch(schema.STALE_ASSETS, asset_ids)]
                sites_removed = _count(await con.execute(schema.DELETE_STALE_SITES, site_ids))
            await con.execute("SELECT pg_advisory_unlock($1)", schema.SCHEMA_LOCK_KEY)
        return Reconciled(tuple(stale), sites_removed)

    async def prune_asset(self, asset_id: str, mode: Mode) -> tuple[int, int]:
        """Delete one asset no longer configured, with its telemetry and dispatches, in one
        transaction; returns (telemetry rows, dispatch records) deleted.

        On TimescaleDB the telemetry delete decompresses the asset's compressed batches, and
        Timescale refuses a transaction that decompresses more than
        ``timescaledb.max_tuples_decompressed_per_dml_transaction`` tuples (100 000 by
        default, 2.15 docs): two days of one asset at 1 s are 172 800. The limit is lifted
        (0 = unlimited) for this transaction only. The id is written into the statement as a
        uuid literal (validated by ``uuid.UUID``) rather than a parameter, so the planner can
        narrow the delete to the ``segmentby asset_id`` batches of that asset.

        The asset's row is locked first: a prune that has to wait on it (another session
        holds the row) must not wait holding telemetry locks. Found on TimescaleDB 2.15.2:
        compressing a chunk (the compression policy) takes an ExclusiveLock on it, which
        queues behind the prune's RowExclusiveLock, and every write into that chunk then
        queues behind the compression, so writing stopped while the prune waited."""
        literal = str(uuid.UUID(asset_id))
        async with self._connection() as con, _transaction(con):
            await con.execute(schema.LOCK_ASSET, literal)
            if mode == "timescaledb":
                await con.execute(schema.LIFT_DECOMPRESSION_LIMIT)
            telemetry = _count(await con.execute(schema.delete_telemetry_of(literal)))
            dispatches = _count(await con.execute(schema.DELETE_DISPATCHES_OF, literal))
            await con.execute(schema.DELETE_ASSET, literal)
            return telemetry, dispatches

    async def prune_sites(self, site_ids: Sequence[str]) -> int:
        """Delete sites no longer configured once none of their assets is left."""
        async with self._connection() as con:
            return _count(await con.execute(schema.DELETE_STALE_SITES, list(site_ids)))

    # ------------------------------------------------------------ registration
    async def registered(self) -> tuple[list[Row], list[Row]]:
        """Sites and assets registered over the API (origin 'api'), oldest first."""
        return await self._fetch(schema.REGISTERED_SITES), await self._fetch(
            schema.REGISTERED_ASSETS
        )

    async def save_site(self, site: tuple[Any, ...]) -> None:
        async with self._connection() as con:
            await con.execute(schema.SAVE_SITE, *site)

    async def save_asset(self, asset: tuple[Any, ...], spec_json: str) -> None:
        async with self._connection() as con:
            await con.execute(schema.SAVE_ASSET, *asset, spec_json)

    async def delete_asset(self, asset_id: str, mode: Mode) -> PruneCounts:
        """Everything of one asset, exactly as a prune does (one transaction, compressed
        chunks handled by :meth:`prune_asset`)."""
        telemetry, dispatches = await self.prune_asset(asset_id, mode)
        return PruneCounts(1, telemetry, dispatches, 0)

    async def delete_site(self, site_id: str) -> None:
        async with self._connection() as con:
            await con.execute(schema.DELETE_SITE, site_id)

    # ------------------------------------------------------------ faults (DESIGN §11)
    async def save_faults(self, fault_rows: Sequence[tuple[Any, ...]]) -> None:
        async with self._connection() as con, _transaction(con):
            await con.executemany(schema.SAVE_FAULT, fault_rows)

    async def end_open_faults(self, at: datetime) -> int:
        async with self._connection() as con:
            status = await con.execute(schema.END_OPEN_FAULTS, at)
        return _count(status)

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
            async with self._connection() as con:
                await con.executemany(schema.END_DISPATCH, rows)

    # ------------------------------------------------------------ writer
    async def write_batch(
        self,
        dispatches: Sequence[tuple[Any, ...]],
        telemetry: Sequence[tuple[Any, ...]],
        *,
        slice_rows: int = 2_000,
        convert: Callable[[Sequence[tuple[Any, ...]]], Iterable[tuple[Any, ...]]] = list,
    ) -> int:
        """Upsert dispatch records and store telemetry in one transaction; returns telemetry
        rows inserted (fewer than given when some were already stored).

        Fast path: COPY straight into ``telemetry``. If any row already exists (a retried batch
        whose commit had reached the server, or an earlier run's timestamps) the unique index
        refuses the whole COPY; the batch is then copied into a staging table and merged with
        ON CONFLICT DO NOTHING. bench/: the direct COPY runs at ~2× the merge's rows/s.

        ``convert`` turns a slice of ``telemetry`` into rows in TELEMETRY_COLUMNS order. The rows
        are converted and fed to COPY ``slice_rows`` at a time with a yield to the event loop
        between slices: asyncpg encodes a list of records without yielding, which held the
        loop ~190 ms (p99) per 50 000-row batch (bench/drain_stall.py)."""
        async with self._connection() as con:
            if telemetry:
                try:
                    async with _transaction(con):
                        if dispatches:
                            await con.executemany(schema.UPSERT_DISPATCH, dispatches)
                        await con.copy_records_to_table(
                            "telemetry",
                            records=_sliced(telemetry, slice_rows, convert),
                            columns=schema.TELEMETRY_COLUMNS,
                        )
                    return len(telemetry)
                except asyncpg.UniqueViolationError:
                    await con.execute("ROLLBACK")  # the server answered: connection usable
            inserted = 0
            async with _transaction(con):
                if dispatches:
                    await con.executemany(schema.UPSERT_DISPATCH, dispatches)
                if telemetry:
                    await con.copy_records_to_table(
                        schema.STAGE_TABLE,
                        records=_sliced(telemetry, slice_rows, convert),
                        columns=schema.TELEMETRY_COLUMNS,
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
        async with self._connection() as con:
            records: list[Mapping[str, Any]] = await con.fetch(sql, *args)
        return [dict(r) for r in records]
