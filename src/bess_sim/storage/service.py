"""``Storage``: the persistence component of one simulator (DESIGN §7).

Start-up (``async with Storage(...)``), before anything ticks:
1. connect within ``startup_timeout_s``;
2. ensure the schema (advisory lock, schema_version, TimescaleDB when available);
3. RESET_DB truncation, upsert of sites/assets, prune of what left assets.yaml;
4. restore SOC / MW / trip / dispatch in effect from the latest rows (see ``restore.py``).
If the database is unreachable at start-up the simulator starts fresh (status ``down``); the
writer keeps retrying with exponential backoff and runs steps 2-3 (not 4: the run has already
started ticking, restoring now would make SOC jump under a connected SCADA) once it is up.

The tick calls ``publish`` (synchronous, O(rows)); one background task writes batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

from ..metrics import Metrics
from ..sim import AssetSpec, DispatchRecord, Fleet, HistoryQuery, Site, Snapshot
from . import rows
from .db import Database, Mode, PruneCounts, Row
from .restore import plan_restore
from .writer import DispatchQueue, TelemetryBuffer

log = logging.getLogger("bess_sim.storage")

DbStatus = Literal["ok", "down"]


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str
    reset: bool = False
    buffer_rows: int = 1_000_000
    startup_timeout_s: float = 5.0  # connect at start-up; past it: start fresh, retry later
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 30.0  # a half-open connection fails after this, then retried
    batch_rows: int = 50_000
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0
    idle_ping_s: float = 5.0  # keeps /health truthful when nothing is being written
    drain_timeout_s: float = 5.0  # clean shutdown: time allowed to write what is buffered
    read_wait_s: float = 2.0  # history waits this long for rows already published
    recent_dispatches: int = 10_000  # dispatch records reloaded into memory on restore


class StorageUnavailableError(Exception):
    """A registration cannot be stored: the database is down (the API answers 503)."""


def describe_url(url: str) -> str:
    """``host:port/dbname`` for logs — never the user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable DATABASE_URL>"
    return f"{host}{port}{parts.path or '/'}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Storage:
    """Telemetry sink + history source + dispatch persistence; an async context manager."""

    def __init__(
        self,
        config: StorageConfig,
        fleet: Fleet,
        metrics: Metrics,
        *,
        on_status: Callable[[DbStatus], None] | None = None,
        fallback_history: Callable[[HistoryQuery], list[Snapshot]] | None = None,
        on_registered: Callable[[list[Row], list[Row]], None] | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.metrics = metrics
        self.where = describe_url(config.url)
        self.mode: Mode | None = None
        self.schema_version = 0
        self.restored = False
        self._on_status = on_status
        self._fallback = fallback_history
        self._on_registered = on_registered
        self._buffer = TelemetryBuffer(config.buffer_rows, on_drop=metrics.db_dropped_rows.inc)
        self._dispatches = DispatchQueue()
        self._db: Database | None = None
        self._ready = False
        self._status: DbStatus | None = None
        self._down_since: float | None = None
        self._last_down_log = 0.0
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ public
    @property
    def status(self) -> DbStatus | None:
        return self._status

    @property
    def pending_rows(self) -> int:
        return len(self._buffer)

    @property
    def dropped_rows(self) -> int:
        return self._buffer.dropped_total

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Called by the tick: append to the bounded buffer and wake the writer. Never waits."""
        self._buffer.publish(snapshots)
        self.metrics.db_queue_rows.set(len(self._buffer))
        self._wake.set()

    async def history(self, q: HistoryQuery) -> list[Snapshot]:
        """From the database (after waiting briefly for rows already published, so a read
        right after a step sees them); from memory while the database is down."""
        if not self.fleet.has_asset(q.asset_id):
            return []
        db = self._db
        if db is None or not self._ready or self._status != "ok" or self.mode is None:
            return self._fallback(q) if self._fallback is not None else []
        await self.wait_written(self.config.read_wait_s)
        spec = self.fleet.spec(q.asset_id)
        start = self.fleet.start_time
        try:
            if q.bucket_s is None:
                found = await db.history_raw(q.asset_id, q.start, q.end, q.limit)
                return [rows.snapshot_from_row(spec, start, r, r["ts"]) for r in found]
            found = await db.history_buckets(
                self.mode, q.asset_id, q.start, q.end, q.limit, q.bucket_s
            )
            return [rows.snapshot_from_row(spec, start, r, r["bucket"]) for r in found]
        except Exception as exc:
            log.warning("database: history query failed (%s); answering from memory", _reason(exc))
            return self._fallback(q) if self._fallback is not None else []

    def _on_dispatch(self, record: DispatchRecord) -> None:
        """Fleet listener (synchronous, called inside a REST/Modbus request): enqueue only."""
        self._dispatches.put(record)
        self._wake.set()

    async def wait_written(self, timeout_s: float) -> bool:
        """Wait until every row published so far is written (or the timeout); True if so."""
        target = self._buffer.accepted_total
        self._wake.set()
        try:
            async with self._progress:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._buffer.written_total >= target),
                    timeout_s,
                )
        except TimeoutError:
            return False
        return True

    async def flush(self, timeout_s: float) -> bool:
        """Wait until nothing is pending (telemetry and dispatch records); True if so."""

        def empty() -> bool:
            return not self._buffer and not self._dispatches

        self._wake.set()
        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(empty), timeout_s)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------ registration
    def _usable(self) -> Database:
        db = self._db
        if db is None or not self._ready or self._status != "ok":
            raise StorageUnavailableError(f"database {self.where} is not available")
        return db

    def check_available(self) -> None:
        """Raise StorageUnavailableError unless registrations can be stored now."""
        self._usable()

    async def save_site(self, site: Site) -> None:
        try:
            await self._usable().save_site(rows.site_row(site))
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise StorageUnavailableError(f"database: {_reason(exc)}") from None

    async def save_asset(self, spec: AssetSpec, spec_json: str) -> None:
        try:
            await self._usable().save_asset(rows.asset_row(spec), spec_json)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise StorageUnavailableError(f"database: {_reason(exc)}") from None

    async def delete_asset(self, asset_id: str) -> PruneCounts:
        """Delete the asset's rows (telemetry, dispatches, the asset) after writing what is
        pending, so no queued record refers to a deleted asset."""
        db = self._usable()
        # Deleting with records still queued would leave a dispatch record whose asset row is
        # gone: its foreign key would then fail every later batch of the writer.
        if not await self.flush(self.config.drain_timeout_s):
            raise StorageUnavailableError(
                f"database {self.where}: pending rows not written within "
                f"{self.config.drain_timeout_s:g} s"
            )
        try:
            return await db.delete_asset(asset_id)
        except Exception as exc:
            raise StorageUnavailableError(f"database: {_reason(exc)}") from None

    async def delete_site(self, site_id: str) -> None:
        try:
            await self._usable().delete_site(site_id)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise StorageUnavailableError(f"database: {_reason(exc)}") from None

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Storage:
        cfg = self.config
        tripped: list[str] = []
        try:
            self._db = await asyncio.wait_for(self._connect(), cfg.startup_timeout_s)
            tripped = await self._setup(self._db, restore=True)
            self._set_status("ok")
        except Exception as exc:
            self._set_status("down", exc)
            log.warning(
                "database: %s not usable at start-up (%s); starting with a fresh state "
                "(no restore) and persisting once it is up",
                self.where,
                _reason(exc),
            )
        # Registered after the restore: re-applied records are already in the database.
        self.fleet.add_dispatch_listener(self._on_dispatch)
        for asset_id in tripped:
            self.fleet.trip(asset_id)
        self._task = asyncio.create_task(self._run(), name="bess-db-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status == "ok":
            await self.flush(self.config.drain_timeout_s)
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._buffer or self._dispatches:
            log.warning(
                "database: %d telemetry rows and %d dispatch records not written at shutdown",
                len(self._buffer),
                len(self._dispatches),
            )
        if self._db is not None:
            await self._db.close()

    # ------------------------------------------------------------ internals
    async def _connect(self) -> Database:
        cfg = self.config
        return await Database.connect(
            cfg.url,
            connect_timeout_s=cfg.connect_timeout_s,
            command_timeout_s=cfg.command_timeout_s,
        )

    async def _setup(self, db: Database, *, restore: bool) -> list[str]:
        """Schema, reset, reconcile, prune, and (at start-up only) restore. Returns the assets
        to trip once the dispatch listener is in place."""
        fleet = self.fleet
        self.mode, self.schema_version = await db.ensure_schema()
        counts = await db.reconcile(
            [rows.site_row(s) for s in fleet.sites],
            [rows.asset_row(a) for a in fleet.specs],
            reset=self.config.reset,
        )
        log.info("database: %s at %s (schema v%d)", self.mode, self.where, self.schema_version)
        if self.config.reset:
            log.warning("database: RESET_DB: truncated assets, telemetry and dispatches")
        if counts.assets or counts.sites:
            log.warning(
                "database: pruned %d assets no longer in %s (%d telemetry rows, %d dispatches) "
                "and %d sites",
                counts.assets,
                fleet.config.source,
                counts.telemetry,
                counts.dispatches,
                counts.sites,
            )
        tripped: list[str] = []
        if restore:
            if self._on_registered is not None:
                # Registered assets join the fleet before the restore, so their state comes
                # back like that of the file's assets (DESIGN §14).
                self._on_registered(*await db.registered())
            tripped = await self._restore(db)
        self._ready = True
        return tripped

    async def _restore(self, db: Database) -> list[str]:
        fleet = self.fleet
        ids = [a.id for a in fleet.specs]
        latest = {str(r["asset_id"]): r for r in await db.latest_telemetry(ids)}
        in_effect = [rows.dispatch_record(r) for r in await db.dispatches_in_effect(ids)]
        recent = [rows.dispatch_record(r) for r in await db.recent_dispatches(
            self.config.recent_dispatches
        )]  # fmt: skip
        plan = plan_restore(fleet.start_time, ids, latest, in_effect)
        await db.end_dispatches(
            (r.id, r.status.value, r.ended_at) for r in plan.ended if r.ended_at is not None
        )
        # From here on only in-memory changes: nothing below can fail half-way.
        ended = {r.id: r for r in plan.ended}
        fleet.load_records(ended.get(r.id, r) for r in recent)
        if plan.resume_at is not None:
            fleet.resume_at(plan.resume_at)
        for a in plan.assets:
            soc = a.soc_mwhr if a.soc_mwhr is not None else fleet.snapshot(a.asset_id).soc_mwhr
            fleet.restore(
                a.asset_id,
                soc_mwhr=soc,
                current_mw=a.current_mw,
                active=a.active,
                remaining_s=a.remaining_s,
            )
        self.restored = bool(plan.assets)
        if plan.resume_at is not None:
            log.info(
                "database: restored %d assets from their latest telemetry (%d dispatches "
                "re-applied, %d closed); simulated time resumes at %s",
                len(plan.assets),
                sum(a.active is not None for a in plan.assets),
                len(plan.ended),
                fleet.start_time.isoformat(),
            )
        else:
            log.info("database: no telemetry persisted yet; fresh start")
        return [a.asset_id for a in plan.assets if a.tripped]

    def _set_status(self, status: DbStatus, exc: BaseException | None = None) -> None:
        previous = self._status
        now = time.monotonic()
        if status == "down":
            if previous != "down":
                self._down_since = now
                self._last_down_log = now
                if previous == "ok":
                    log.warning(
                        "database: %s unavailable (%s); buffering telemetry (%d rows, bound %d)",
                        self.where,
                        _reason(exc) if exc else "?",
                        len(self._buffer),
                        self._buffer.max_rows,
                    )
            elif now - self._last_down_log >= 30.0:
                self._last_down_log = now
                log.warning(
                    "database: still unavailable after %.0f s (%s); %d rows buffered, %d dropped",
                    now - (self._down_since or now),
                    _reason(exc) if exc else "?",
                    len(self._buffer),
                    self._buffer.dropped_total,
                )
        elif previous == "down" and self._down_since is not None:
            log.info(
                "database: %s reachable again after %.1f s; writing %d buffered rows",
                self.where,
                now - self._down_since,
                len(self._buffer),
            )
        if status != previous:
            self._status = status
            if self._on_status is not None:
                self._on_status(status)

    async def _run(self) -> None:
        cfg = self.config
        delay = cfg.retry_initial_s
        while True:
            try:
                if self._db is None:
                    self._db = await self._connect()
                if not self._ready:
                    await self._setup(self._db, restore=False)
                await self._write_forever(self._db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_status("down", exc)
                log.debug("database: writer error", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2.0, cfg.retry_max_s)
            else:  # pragma: no cover - _write_forever only returns by raising
                delay = cfg.retry_initial_s

    async def _write_forever(self, db: Database) -> None:
        cfg = self.config
        buffer, dispatches = self._buffer, self._dispatches
        while True:
            self._wake.clear()
            if not buffer and not dispatches:
                if self._status != "ok":
                    await db.ping()
                    self._set_status("ok")
                try:
                    await asyncio.wait_for(self._wake.wait(), cfg.idle_ping_s)
                except TimeoutError:
                    await db.ping()
                continue
            batch = buffer.peek_raw(cfg.batch_rows)
            records = dispatches.peek()
            inserted = await db.write_batch(
                [rows.dispatch_row(r) for r in records], rows.telemetry_rows(batch)
            )
            buffer.ack(len(batch))
            dispatches.ack(records)
            self.metrics.db_written_rows.inc(inserted)
            self.metrics.db_queue_rows.set(len(buffer))
            if inserted < len(batch):
                # Expected after a retried batch whose commit had reached the server; also the
                # case when a fresh run (no restore) overlaps timestamps of an earlier run.
                log.info(
                    "database: %d of %d rows were already stored (same asset_id, ts); skipped",
                    len(batch) - inserted,
                    len(batch),
                )
            self._set_status("ok")
            async with self._progress:
                self._progress.notify_all()
