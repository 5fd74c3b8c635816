"""Persistence of fault records (DESIGN §11, table ``faults``).

Every new fault and state change is queued (latest version per id) and written by one task,
so the tick and the REST handlers never wait for the database. While the database is down the
queue is kept (bounded) and retried; at start-up faults a previous run left open are closed
(``simulator stopped``): a fault does not outlive its simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from datetime import datetime
from types import TracebackType
from typing import Any

from ..faults import Fault
from .service import Storage

log = logging.getLogger("bess_sim.storage")

#: Pending fault records kept while the database is down (oldest dropped past it, logged).
MAX_PENDING = 10_000
RETRY_S = 1.0


def fault_row(f: Fault) -> tuple[Any, ...]:
    return (
        f.id,
        f.kind.value,
        f.asset_id,
        f.port,
        json.dumps(f.params),
        f.state.value,
        f.created_at,
        f.starts_at,
        f.ends_at,
        f.started_at,
        f.ended_at,
        f.duration_s,
        f.end_reason,
    )


class FaultStore:
    """Async context manager: the writer task of fault records."""

    def __init__(self, storage: Storage, started_at: datetime, drain_timeout_s: float = 5.0):
        self.storage = storage
        self.started_at = started_at
        self.drain_timeout_s = drain_timeout_s
        self._pending: OrderedDict[str, Fault] = OrderedDict()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed_open = False
        self.written = 0

    def put(self, fault: Fault) -> None:
        """A fault listener (FaultBook.add_listener): never blocks."""
        self._pending[fault.id] = fault
        self._pending.move_to_end(fault.id)
        if len(self._pending) > MAX_PENDING:
            _, dropped = self._pending.popitem(last=False)
            log.warning("database: fault queue full; fault %s not persisted", dropped.id)
        self._idle.clear()
        self._wake.set()

    async def wait_written(self, timeout_s: float) -> bool:
        """True once nothing is pending (tests, shutdown)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        while True:
            if not self._pending and self._closed_open:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            try:
                db = self.storage.database()
                if not self._closed_open:
                    n = await db.end_open_faults(self.started_at)
                    self._closed_open = True
                    if n:
                        log.info("database: %d faults left open by an earlier run ended", n)
                batch = list(self._pending.values())
                if batch:
                    await db.save_faults([fault_row(f) for f in batch])
                    self.written += len(batch)
                    for f in batch:
                        if self._pending.get(f.id) is f:
                            del self._pending[f.id]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # down, or a failed statement: retry, never crash
                log.debug("database: fault records not written yet: %r", exc)
                await asyncio.sleep(RETRY_S)

    async def __aenter__(self) -> FaultStore:
        self._task = asyncio.create_task(self._run(), name="bess-db-faults")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pending and not await self.wait_written(self.drain_timeout_s):
            log.warning("database: %d fault records not written at shutdown", len(self._pending))
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
