"""``Storage``: the persistence component of one simulator (DESIGN §7).

Start-up (``async with Storage(...)``), before anything ticks, all within
``startup_timeout_s`` together:
1. connect;
2. ensure the schema (advisory lock, schema_version, TimescaleDB when available);
3. RESET_DB truncation, upsert of sites/assets, naming the assets that left assets.yaml;
4. restore SOC / MW / trip / dispatch in effect from the latest rows (see ``restore.py``).
If the database is unreachable or too slow at start-up the simulator starts fresh (status
``down``); the writer keeps retrying with exponential backoff and runs steps 2-3 (not 4: the
run has already started ticking, restoring now would make SOC jump under a connected SCADA)
once it is up. Pruning the assets that left assets.yaml runs in its own background task, per
asset, retried with backoff: it never holds up restore or writing.

The tick calls ``publish`` (synchronous, O(rows)); one background task writes batches; one
watches the age of the oldest unwritten row for ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal

from ..metrics import Metrics
from ..sim import AssetSpec, DispatchRecord, Fleet, HistoryQuery, Site, Snapshot
from . import rows
from .config import StorageConfig, StorageUnavailableError, describe_url, error_text
from .db import Database, Mode, PruneCounts, Row
from .prune import prune_until_done
from .resume import restore_from
from .writer import DispatchQueue, RateLimitedLog, TelemetryBuffer

log = logging.getLogger("bess_sim.storage")

DbStatus = Literal["ok", "down"]


#: Part of ``drain_timeout_s`` kept for stopping the writer and closing connections.
_CLOSE_RESERVE_S = 0.5


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
        self._watch_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._progress_at = time.monotonic()  # last write or ping acknowledged
        self._ping_since: float | None = None  # a ping in flight since
        self._history_log = RateLimitedLog(30.0)

    # ------------------------------------------------------------ public
    @property
    def status(self) -> DbStatus | None:
        return self._status

    @property
    def pending_rows(self) -> int:
        return len(self._buffer)

    @property
    def accepted_rows(self) -> int:
        """Rows ever taken into the buffer (``publish``)."""
        return self._buffer.accepted_total

    @property
    def written_rows(self) -> int:
        """Rows the database acknowledged: every row published while ``accepted_rows``
        was at most this is in the database."""
        return self._buffer.written_total

    def record_pending(self, record: DispatchRecord) -> bool:
        """This version of a dispatch record is queued and not written yet (False once it is
        written, or replaced by a newer version: the upsert then writes the newer state)."""
        return self._dispatches.holds(record)

    @property
    def dropped_rows(self) -> int:
        return self._buffer.dropped_total

    def stalled_s(self) -> float:
        """Seconds the oldest pending item (telemetry row, dispatch record, ping in flight)
        has waited since the later of its arrival and the writer's last acknowledged write;
        0 when nothing is pending. A writer that keeps committing batches of a large backlog
        is not stalled; one stuck on a silent server is."""
        since = [
            t
            for t in (
                self._buffer.oldest_unwritten_since(),
                self._dispatches.pending_since,
                self._ping_since,
            )
            if t is not None
        ]
        if not since:
            return 0.0
        return max(0.0, time.monotonic() - max(min(since), self._progress_at))

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Called by the tick: append to the bounded buffer and wake the writer. Never waits."""
        self._buffer.publish(snapshots)
        self.metrics.db_queue_rows.set(len(self._buffer))
        self._wake.set()

    async def history(self, q: HistoryQuery) -> list[Snapshot]:
        """From the database (after waiting for rows already published, so a read right after
        a step sees them); from memory while the database is down, and when waiting plus the
        query take longer than ``history_timeout_s`` (a slow or silent server, or a backlog
        still draining: memory then holds the newest rows)."""
        if not self.fleet.has_asset(q.asset_id):
            return []
        db = self._db
        if db is None or not self._ready or self._status != "ok" or self.mode is None:
            return self._memory(q)
        spec = self.fleet.spec(q.asset_id)
        start = self.fleet.start_time
        try:
            async with asyncio.timeout(self.config.history_timeout_s):
                if not await self.wait_written(self.config.history_timeout_s):
                    raise TimeoutError
                if q.bucket_s is None:
                    found = await db.history_raw(q.asset_id, q.start, q.end, q.limit)
                    return [rows.snapshot_from_row(spec, start, r, r["ts"]) for r in found]
                found = await db.history_buckets(
                    self.mode, q.asset_id, q.start, q.end, q.limit, q.bucket_s
                )
                return [rows.snapshot_from_row(spec, start, r, r["bucket"]) for r in found]
        except TimeoutError:
            self._history_log.add(
                1,
                "database: %d history requests answered from memory (database not answering "
                f"within {self.config.history_timeout_s:g} s)",
            )
        except Exception as exc:
            log.warning(
                "database: history query failed (%s); answering from memory", error_text(exc)
            )
        return self._memory(q)

    def _memory(self, q: HistoryQuery) -> list[Snapshot]:
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
            raise StorageUnavailableError(f"database: {error_text(exc)}") from None

    async def save_asset(self, spec: AssetSpec, spec_json: str) -> None:
        try:
            await self._usable().save_asset(rows.asset_row(spec), spec_json)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise StorageUnavailableError(f"database: {error_text(exc)}") from None

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
            return await db.delete_asset(asset_id, self.mode or "postgresql")
        except Exception as exc:
            raise StorageUnavailableError(f"database: {error_text(exc)}") from None

    async def delete_site(self, site_id: str) -> None:
        try:
            await self._usable().delete_site(site_id)
        except StorageUnavailableError:
            raise
        except Exception as exc:
            raise StorageUnavailableError(f"database: {error_text(exc)}") from None

    def database(self) -> Database:
        """The database when it is usable now (else StorageUnavailableError)."""
        return self._usable()

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Storage:
        cfg = self.config
        tripped: list[tuple[str, bool]] = []
        try:
            async with asyncio.timeout(cfg.startup_timeout_s):
                self._db = await self._connect()
                tripped = await self._setup(self._db, restore=True)
            self._progress_at = time.monotonic()
            self._set_status("ok")
        except Exception as exc:
            self._ready = False
            reason = (
                f"start-up step not done within {cfg.startup_timeout_s:g} s"
                if isinstance(exc, TimeoutError)
                else error_text(exc)
            )
            self._set_status("down", exc)
            log.warning(
                "database: %s not usable at start-up (%s); starting with a fresh state "
                "(no restore) and persisting once it is up",
                self.where,
                reason,
            )
        # Registered after the restore: re-applied records are already in the database.
        self.fleet.add_dispatch_listener(self._on_dispatch)
        for asset_id, over_temperature in tripped:
            self.fleet.trip(asset_id, over_temperature=over_temperature)
        self._task = asyncio.create_task(self._run(), name="bess-db-writer")
        self._watch_task = asyncio.create_task(self._watch(), name="bess-db-watch")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Bounded by ``drain_timeout_s`` in total, whatever the server does: write what is
        buffered while time is left, then stop the writer; connections still busy (a server
        that stopped answering) are terminated rather than waited for."""
        cfg = self.config
        deadline = time.monotonic() + cfg.drain_timeout_s
        for aux in (self._watch_task, self._prune_task):
            if aux is not None:
                aux.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await aux
        if self._status == "ok":
            await self.flush(max(0.0, deadline - time.monotonic() - _CLOSE_RESERVE_S))
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=max(0.05, deadline - time.monotonic()))
            if not task.done() and self._db is not None:
                self._db.terminate()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._buffer or self._dispatches:
            log.warning(
                "database: %d telemetry rows and %d dispatch records not written at shutdown",
                len(self._buffer),
                len(self._dispatches),
            )
        if self._db is not None:
            await self._db.close(max(0.05, deadline - time.monotonic()))

    # ------------------------------------------------------------ internals
    async def _connect(self) -> Database:
        cfg = self.config
        return await Database.connect(
            cfg.url,
            connect_timeout_s=cfg.connect_timeout_s,
            command_timeout_s=cfg.command_timeout_s,
        )

    async def _setup(self, db: Database, *, restore: bool) -> list[tuple[str, bool]]:
        """Schema, reset, reconcile, and (at start-up only) restore; starts the prune of the
        assets no longer configured. Returns the assets to trip once the dispatch listener is
        in place."""
        fleet = self.fleet
        self.mode, self.schema_version = await db.ensure_schema()
        site_ids = [s.id for s in fleet.sites]
        done = await db.reconcile(
            [rows.site_row(s) for s in fleet.sites],
            [rows.asset_row(a) for a in fleet.specs],
            reset=self.config.reset,
        )
        log.info("database: %s at %s (schema v%d)", self.mode, self.where, self.schema_version)
        if self.config.reset:
            log.warning("database: RESET_DB: truncated assets, telemetry, dispatches and faults")
        tripped: list[tuple[str, bool]] = []
        if restore:
            if self._on_registered is not None:
                # Registered assets join the fleet before the restore, so their state comes
                # back like that of the file's assets (DESIGN §14).
                self._on_registered(*await db.registered())
            self.restored, tripped = await restore_from(
                db, self.fleet, self.config.recent_dispatches
            )
        self._ready = True
        idle = self._prune_task is None or self._prune_task.done()
        if (done.stale_assets or done.sites_removed) and idle:
            cfg = self.config
            self._prune_task = asyncio.create_task(
                prune_until_done(
                    db,
                    self.mode,
                    done,
                    site_ids,
                    source=str(fleet.config.source),
                    retry_initial_s=cfg.prune_retry_initial_s,
                    retry_max_s=cfg.prune_retry_max_s,
                ),
                name="bess-db-prune",
            )
        return tripped

    async def wait_pruned(self, timeout_s: float) -> bool:
        """Wait for the background prune (if any) to finish; True if it did."""
        task = self._prune_task
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        return bool(done)

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
                        error_text(exc) if exc else "?",
                        len(self._buffer),
                        self._buffer.max_rows,
                    )
            elif now - self._last_down_log >= 30.0:
                self._last_down_log = now
                log.warning(
                    "database: still unavailable after %.0f s (%s); %d rows buffered, %d dropped",
                    now - (self._down_since or now),
                    error_text(exc) if exc else "?",
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

    async def _watch(self) -> None:
        """Turn /health to ``down`` when the writer stopped making progress (stalled_s), e.g.
        a server that accepts and never answers, long before the command timeout fires."""
        cfg = self.config
        every = min(0.5, cfg.stale_after_s / 4)
        while True:
            await asyncio.sleep(every)
            stalled = self.stalled_s()
            if self._status == "ok" and stalled > cfg.stale_after_s:
                self._set_status("down", TimeoutError(f"no write acknowledged for {stalled:.1f} s"))

    async def _ping(self, db: Database) -> None:
        self._ping_since = time.monotonic()
        try:
            await db.ping()
        finally:
            self._ping_since = None
        self._progress_at = time.monotonic()

    async def _write_forever(self, db: Database) -> None:
        cfg = self.config
        buffer, dispatches = self._buffer, self._dispatches
        while True:
            self._wake.clear()
            if not buffer and not dispatches:
                if self._status != "ok":
                    await self._ping(db)
                    self._set_status("ok")
                try:
                    await asyncio.wait_for(self._wake.wait(), cfg.idle_ping_s)
                except TimeoutError:
                    await self._ping(db)
                continue
            batch = buffer.peek_raw(cfg.batch_rows)
            records = dispatches.peek()
            inserted = await db.write_batch(
                [rows.dispatch_row(r) for r in records],
                batch,
                slice_rows=cfg.slice_rows,
                convert=rows.telemetry_rows,
            )
            self._progress_at = time.monotonic()
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
