"""A tick computed off the event loop, serialised with everything on the loop that touches the
fleet (issue 15).

At 10,000 assets ``Fleet.advance`` takes ~50 ms of pure Python (bench/RESULTS.md §3); run on
the loop it held every Modbus answer that long once a second (p99.9 6–7 ms at 1,000 devices
× 1 Hz). With the real-time clock the runtime computes the tick in one worker thread instead:

1. ``exclusive()``: new users of the fleet wait, the tick waits for the current ones to end
   (HTTP requests, Modbus requests on the slow path) — commands are applied between ticks,
   never during one;
2. worker thread: ``Fleet.advance(dt_s)``;
3. loop: the fault book's transitions (their listeners close sockets, fill asyncio queues);
4. worker thread: the sinks that only swap references (the Modbus images, the history ring);
5. loop: the other sinks (database, WebSocket, scenario), then new users are let in.

What keeps Modbus reads consistent while the worker runs: an input read slices the image of
one immutable snapshot, and each asset's snapshot reference is replaced by one assignment
(atomic under the GIL), so a read sees one tick or the next, never a mix. Holding and SunSpec
reads echo the command state (``Fleet.control``), which the worker may be changing: while
``busy`` they take the slow path, which waits here (``ModbusService.fleet_readable``).

The GIL still switches between the worker and the loop every ``sys.getswitchinterval()``
(5 ms by default): a request arriving during the tick waited up to that long for the
interpreter. The runtime lowers the interval to ``SWITCH_INTERVAL_S`` while it ticks in a
thread and restores it on exit (the setting is process-wide; bench/part_hotpath.py measures).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

#: GIL switch interval while a tick thread runs: a loop waiting for the interpreter gets it
#: within this long (CPython's default 5 ms is the whole latency budget of a 10 Hz master).
SWITCH_INTERVAL_S = 0.0005


class TickGate:
    """Readers/writer gate on the event loop: many users of the fleet, or one tick."""

    def __init__(self) -> None:
        self._users = 0
        self._busy = False
        self._open = asyncio.Event()
        self._open.set()
        self._no_users = asyncio.Event()
        self._no_users.set()

    @property
    def busy(self) -> bool:
        """True while a tick computes in its worker thread (or waits to)."""
        return self._busy

    def readable(self) -> bool:
        """The fleet may be read from the loop now (no tick in its thread)."""
        return not self._busy

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Use the fleet (read or command) with no tick in progress."""
        while not self._open.is_set():
            await self._open.wait()
        self._users += 1
        self._no_users.clear()
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                self._no_users.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Run one tick: no user of the fleet in between. A waiting tick goes before users
        that arrive after it (otherwise a steady stream of requests could starve it)."""
        while not self._open.is_set():  # one tick at a time
            await self._open.wait()
        self._open.clear()
        self._busy = True
        try:
            await self._no_users.wait()
            yield
        finally:
            self._busy = False
            self._open.set()
