"""The headend's database ingest: every telemetry row the agents published, into the database
exactly once and without a gap, across headend restarts (DESIGN §15, docs/scale-out.md).

A durable JetStream consumer (named from the prefix) is read apart from the live mirror feed:
a message is acknowledged only once the database has committed every row of it, so a headend
killed at any moment resumes at the first message not yet written; a row written twice (an
ack lost in the crash) is absorbed by the telemetry table's unique ``(asset_id, ts)`` and
``ON CONFLICT DO NOTHING``. At-least-once delivery + an idempotent write = exactly once.

Why a second reader rather than acking the live one: the mirror, WebSocket and history ring
must follow the newest tick even while the database is down or a backlog replays; this reader
may lag (it stops fetching while the storage buffer is half full, so the buffer never drops a
row: the stream, an hour long, is the buffer) and never touches the mirror or the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack

from ..sim import DispatchRecord, Fleet
from ..storage import Storage
from ..storage.writer import RateLimitedLog
from . import wire
from .bus import Bus, BusUnavailableError, Delivery, DurableConsumer

log = logging.getLogger("bess_sim.cluster")

#: Unacknowledged this long, a message is delivered again (a headend killed mid-write: its
#: messages come back to the next one). Messages waiting for a slow database are kept alive
#: with ``in_progress`` every half of it.
ACK_WAIT_S = 10.0
#: Messages per fetch (a tick of every shard, several ticks of a replayed backlog).
FETCH_BATCH = 32
#: Stop fetching while the storage buffer is fuller than this share of its size.
BUFFER_SHARE = 0.5


def _pct(exc: Exception) -> str:
    """``exc`` as text inside a %-format string (RateLimitedLog formats its own count)."""
    return str(exc).replace("%", "%%")


class DecodeCache:
    """The last telemetry messages decoded, keyed by their bytes: with a database the headend
    receives each message twice (live mirror feed and durable ingest) and decoding is its main
    cost; hashing and comparing the bytes costs a few percent of that. Snapshots are immutable,
    so both readers share them.

    Bounded by messages and by rows: the two readers can be a whole tick apart, and at 40,000
    assets in one agent a tick is 20 messages (wire.PART_ROWS), so the first bound of 16
    messages missed nearly every time (py-spy: both readers decoding, ~40 % of the headend's
    busy CPU). ``max_rows`` keeps the memory held for the second reader to ~100,000 snapshots
    (~65 MB) by default."""

    def __init__(self, size: int = 256, max_rows: int = 100_000) -> None:
        self._size = size
        self._max_rows = max_rows
        self._batches: dict[bytes, wire.TelemetryBatch] = {}
        self._rows = 0
        self.hits = 0
        self.misses = 0

    def decode(self, data: bytes) -> wire.TelemetryBatch:
        batch = self._batches.pop(data, None)
        if batch is not None:
            self.hits += 1
            self._rows -= _rows_of(batch)
            return batch  # the second reader: no third one, so not kept
        self.misses += 1
        batch = wire.decode_snapshots(data)
        self._batches[data] = batch
        self._rows += _rows_of(batch)
        while len(self._batches) > self._size or (
            self._rows > self._max_rows and len(self._batches) > 1
        ):
            oldest = next(iter(self._batches))
            self._rows -= _rows_of(self._batches.pop(oldest))
        return batch


def _rows_of(batch: wire.TelemetryBatch) -> int:
    return len(batch.snapshots) + len(batch.rest)


class DurableIngest:
    """Feeds ``storage`` from the durable consumer; ``shard_tick`` is the newest tick of each
    shard handed to the storage (what a history read may wait for)."""

    def __init__(self, bus: Bus, storage: Storage, fleet: Fleet, cache: DecodeCache) -> None:
        self._bus = bus
        self._storage = storage
        self._fleet = fleet
        self._cache = cache
        self.shard_tick: dict[int, int] = {}
        # (storage.accepted_rows after the message's rows, the message), oldest first.
        self._unacked: deque[tuple[int, Delivery, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._bus_log = RateLimitedLog(10.0)
        self._msg_rows = 1  # rows of the largest message so far

    async def start(self) -> None:
        s = self._bus.subjects
        consumer = await self._bus.durable_consumer(
            s.telemetry_stream, s.telemetry("*"), s.ingest_consumer, ACK_WAIT_S
        )
        self._task = asyncio.create_task(self._run(consumer), name="bess-headend-ingest")
        log.info("headend: database ingest from durable consumer %s", s.ingest_consumer)

    async def stop(self, flush_s: float = 2.0) -> None:
        """Stop fetching; acknowledge what the database has by then (the rest comes back to
        the next headend)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._storage.wait_written(flush_s)
            await self._ack_written()
        log.info(
            "headend: database ingest stopped; %d of %d messages decoded once for mirror and "
            "database",
            self._cache.hits,
            self._cache.misses,
        )

    async def _run(self, consumer: DurableConsumer) -> None:
        limit = int(self._storage.config.buffer_rows * BUFFER_SHARE)
        while True:
            await self._ack_written()
            pending = self._storage.pending_rows
            # Only as many messages as fit below the limit (the largest message seen so far
            # as the measure), at least one into an empty buffer: the buffer never drops.
            n = (limit - pending) // self._msg_rows
            if n < 1 and pending:
                await asyncio.sleep(0.05)  # the database is behind: the stream holds the rest
                continue
            try:
                msgs = await consumer.fetch(min(max(n, 1), FETCH_BATCH), 0.5)
            except BusUnavailableError as exc:
                self._bus_log.add(1, "headend: database ingest waiting for NATS (%d): " + _pct(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                self._take(msg)
                await asyncio.sleep(0)  # a replayed backlog must not hold the loop

    def _take(self, msg: Delivery) -> None:
        try:
            batch = self._cache.decode(msg.data)
        except (ValueError, KeyError, TypeError) as exc:
            # Not ours to fix and never writable: acknowledged so it is not redelivered forever.
            log.error("headend: undecodable telemetry message skipped: %s", exc)
            self._unacked.append((self._storage.accepted_rows, msg, time.monotonic()))
            return
        # An agent's start-up state (tick 0) is mirrored, not recorded (as headend.py): a single
        # process's database begins with its first tick too.
        has = self._fleet.has_asset
        snaps = [s for s in batch.snapshots if has(s.asset_id)] if batch.tick else []
        self._msg_rows = max(self._msg_rows, len(snaps))
        dropped = self._storage.dropped_rows
        if snaps:
            self._storage.publish(snaps)
        if self._storage.dropped_rows != dropped:
            # Not acknowledged: JetStream delivers it again after ACK_WAIT_S.
            return
        self._unacked.append((self._storage.accepted_rows, msg, time.monotonic()))
        if batch.last_part and batch.tick > self.shard_tick.get(batch.shard, -1):
            self.shard_tick[batch.shard] = batch.tick

    async def _ack_written(self) -> None:
        written = self._storage.written_rows
        pending = self._unacked
        with contextlib.suppress(Exception):  # a lost ack only means a harmless redelivery
            while pending and pending[0][0] <= written:
                await pending.popleft()[1].ack()
            now = time.monotonic()
            for i in range(len(pending)):
                mark, msg, since = pending[i]
                if now - since > ACK_WAIT_S / 2:
                    await msg.in_progress()
                    pending[i] = (mark, msg, now)

    async def caught_up(self, shard: int, tick: int, timeout_s: float) -> bool:
        """Wait until ``tick`` of ``shard`` is handed to the storage; True if so."""
        deadline = time.monotonic() + timeout_s
        while self.shard_tick.get(shard, -1) < tick:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


class DurableRecordIngest:
    """The dispatch-record stream through a durable consumer of its own: a record made or
    changed while the headend was down (a Modbus write to an agent, a dispatch ending) still
    reaches the dispatch log and the database. ``on_record`` is the mirror's (it stores the
    record and queues it for the database); a message is acknowledged once its version is
    written (or replaced by a newer one, which the upsert writes instead)."""

    def __init__(
        self, bus: Bus, storage: Storage, fleet: Fleet, on_record: Callable[[DispatchRecord], None]
    ) -> None:
        self._bus = bus
        self._storage = storage
        self._fleet = fleet
        self._on_record = on_record
        self._unacked: deque[tuple[DispatchRecord | None, Delivery, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._bus_log = RateLimitedLog(10.0)

    async def start(self) -> None:
        s = self._bus.subjects
        consumer = await self._bus.durable_consumer(
            s.dispatch_stream, s.dispatch_records("*"), s.record_consumer, ACK_WAIT_S
        )
        self._task = asyncio.create_task(self._run(consumer), name="bess-headend-records")

    async def stop(self, flush_s: float = 2.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._storage.flush(flush_s)
            await self._ack_written()

    async def _run(self, consumer: DurableConsumer) -> None:
        while True:
            await self._ack_written()
            try:
                msgs = await consumer.fetch(FETCH_BATCH, 0.5)
            except BusUnavailableError as exc:
                self._bus_log.add(
                    1, "headend: dispatch-record ingest waiting for NATS (%d): " + _pct(exc)
                )
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                rec: DispatchRecord | None = None
                try:
                    rec = wire.decode_record(wire.loads(msg.data))
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("headend: undecodable dispatch record skipped: %s", exc)
                if rec is not None and self._fleet.has_asset(rec.asset_id):
                    self._on_record(rec)
                else:
                    rec = None  # nothing to write: acknowledged with the next batch
                self._unacked.append((rec, msg, time.monotonic()))

    async def _ack_written(self) -> None:
        pending = self._unacked
        with contextlib.suppress(Exception):  # a lost ack only means a harmless redelivery
            # In order: a record waiting for the database holds back the ones after it, so
            # a restart resumes no later than the first unwritten record.
            while pending and (
                pending[0][0] is None or not self._storage.record_pending(pending[0][0])
            ):
                await pending.popleft()[1].ack()
            now = time.monotonic()
            for i in range(len(pending)):
                rec, msg, since = pending[i]
                if now - since > ACK_WAIT_S / 2:
                    await msg.in_progress()
                    pending[i] = (rec, msg, now)


async def start_durable(
    bus: Bus,
    storage: Storage,
    fleet: Fleet,
    on_record: Callable[[DispatchRecord], None],
    stack: AsyncExitStack,
) -> tuple[DurableIngest, Callable[[bytes], wire.TelemetryBatch]]:
    """Both durable consumers started (stopped by ``stack``); returns the telemetry ingest and
    the decoder the live mirror feed shares with it (each message decoded once)."""
    cache = DecodeCache()
    ingest = DurableIngest(bus, storage, fleet, cache)
    await ingest.start()
    stack.push_async_callback(ingest.stop)
    records = DurableRecordIngest(bus, storage, fleet, on_record)
    await records.start()
    stack.push_async_callback(records.stop)
    return ingest, cache.decode
