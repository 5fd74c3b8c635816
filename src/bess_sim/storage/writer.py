"""Buffers between the tick (synchronous, must never wait) and the database writer task.

- :class:`TelemetryBuffer` is bounded: rows that arrive while it is full are dropped (newest
  first, so what is kept is a gap-free run of ticks from the start of the outage), counted and
  logged at most every ``log_every_s``. Rows leave it only once the database acknowledged
  their batch (``peek`` → write → ``ack``), so a failed batch is retried whole.
- :class:`DispatchQueue` keeps the latest pending version of each dispatch record: an upsert
  writes the record's newest state, so intermediate versions need not be written.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from ..sim import DispatchRecord, Snapshot

log = logging.getLogger("bess_sim.storage")


class RateLimitedLog:
    """Aggregate a recurring warning: log the first occurrence, then a summary at most every
    ``every_s`` seconds (a 1-hour outage at 1000 rows/s must not write 3.6 M log lines)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._pending = 0

    def add(self, count: int, message: str) -> None:
        """``message`` gets ``%d`` = count since the last line."""
        self._pending += count
        now = self._clock()
        if self._last is None or now - self._last >= self.every_s:
            log.warning(message, self._pending)
            self._pending = 0
            self._last = now


class TelemetryBuffer:
    def __init__(
        self,
        max_rows: int,
        on_drop: Callable[[int], None] | None = None,
        log_every_s: float = 10.0,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        self.max_rows = max_rows
        # Plain tuples, not Snapshots: CPython's GC untracks exact tuples of atomic values but
        # never a NamedTuple, and an outage can hold a million rows here (see sim/history.py
        # for the measured pauses).
        self._rows: deque[tuple[Any, ...]] = deque()
        self._on_drop = on_drop
        self._drop_log = RateLimitedLog(log_every_s)
        self.accepted_total = 0  # rows ever accepted into the buffer
        self.written_total = 0  # rows acknowledged by the database
        self.dropped_total = 0
        # (accepted_total after a publish, monotonic time of that publish): one entry per tick,
        # so the age of the oldest unwritten row is known without a timestamp per row.
        self._marks: deque[tuple[int, float]] = deque()
        self._clock = time.monotonic

    def oldest_unwritten_since(self) -> float | None:
        """Monotonic time at which the oldest row not yet written was published."""
        return self._marks[0][1] if self._marks else None

    def __len__(self) -> int:
        return len(self._rows)

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        rows = self._rows
        space = self.max_rows - len(rows)
        n = len(snapshots)
        if n <= space:
            rows.extend(map(tuple, snapshots))
            self.accepted_total += n
            self._mark()
            return
        if space > 0:
            rows.extend(map(tuple, snapshots[:space]))
            self.accepted_total += space
            self._mark()
        dropped = n - max(space, 0)
        self.dropped_total += dropped
        if self._on_drop is not None:
            self._on_drop(dropped)
        self._drop_log.add(
            dropped,
            f"database: telemetry buffer full ({self.max_rows} rows); dropped %d rows "
            "(counted in bess_db_dropped_rows)",
        )

    def _mark(self) -> None:
        if not self._marks or self._marks[-1][0] != self.accepted_total:
            self._marks.append((self.accepted_total, self._clock()))

    def peek_raw(self, n: int) -> list[tuple[Any, ...]]:
        """The oldest ``n`` rows as plain tuples in Snapshot field order (the writer's path)."""
        return list(itertools.islice(self._rows, n))

    def ack(self, n: int) -> None:
        rows = self._rows
        for _ in range(min(n, len(rows))):
            rows.popleft()
        self.written_total += n
        marks = self._marks
        while marks and marks[0][0] <= self.written_total:
            marks.popleft()


class DispatchQueue:
    """Bounded too (``max_records`` distinct records): past it the oldest pending record is
    dropped and logged — only a master hammering setpoints through a long outage gets there."""

    def __init__(self, max_records: int = 100_000, log_every_s: float = 10.0) -> None:
        self.max_records = max_records
        self._pending: OrderedDict[str, DispatchRecord] = OrderedDict()
        self._drop_log = RateLimitedLog(log_every_s)
        self.pending_since: float | None = None  # monotonic time the queue became non-empty

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, record: DispatchRecord) -> None:
        if not self._pending:
            self.pending_since = time.monotonic()
        self._pending[record.id] = record
        self._pending.move_to_end(record.id)
        if len(self._pending) > self.max_records:
            self._pending.popitem(last=False)
            self._drop_log.add(1, "database: dispatch queue full; dropped %d dispatch records")

    def holds(self, record: DispatchRecord) -> bool:
        """This version of the record (an equal one) still waits to be written."""
        return self._pending.get(record.id) == record

    def peek(self) -> list[DispatchRecord]:
        return list(self._pending.values())

    def ack(self, written: Sequence[DispatchRecord]) -> None:
        """Forget the written versions; a record changed meanwhile stays queued."""
        for rec in written:
            if self._pending.get(rec.id) is rec:
                del self._pending[rec.id]
        if not self._pending:
            self.pending_since = None
