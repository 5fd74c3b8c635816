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
reads echo the command state (``Fleet.control``), which the worker may be changing: they read
it whole through sim/control.py (the state before the tick or after it), so they do not wait
either.

The GIL still switches between the worker and the loop every ``sys.getswitchinterval()``
(5 ms by default): a request arriving during the tick waited up to that long for the
interpreter. The runtime lowers the interval to ``SWITCH_INTERVAL_S`` while it ticks in a
thread and restores it on exit (the setting is process-wide), and the tick thread runs at a
lower OS priority. Measured on the shared 2-core box, 10,000 assets at 1 Hz, event-loop lag
sampled every 0.5 ms: tick on the loop p99.9 39 ms / max 129 ms; in the thread with the 5 ms
interval p99.9 5.5 ms / max 8.8 ms; 0.5 ms interval + nice p99 ~1.4–2.0 ms; 0.1 ms interval +
nice p99 ~1.0 ms, p99.9 3.3–3.7 ms — the same p99.9 as with no tick at all on that box then
(3.4 ms): what is left is the machine's noise. bench/part_hotpath.py measures on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

#: GIL switch interval while a tick thread runs: a loop waiting for the interpreter gets it
#: within about this long (CPython's default 5 ms is the whole latency budget of a 10 Hz
#: master). Only matters while two threads want the GIL, i.e. during a tick.
SWITCH_INTERVAL_S = 0.0001


#: Nice increment of the tick thread (Linux schedules threads individually): when the CPUs are
#: busy, the loop thread answering Modbus runs before the tick's bulk work.
TICK_THREAD_NICE = 10


def tick_thread(stack: contextlib.ExitStack | contextlib.AsyncExitStack) -> ThreadPoolExecutor:
    """The one worker thread of the real-time tick, with the process set up for it until
    ``stack`` closes: a short GIL switch interval, the start-up objects frozen."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="bess-tick", initializer=lower_thread_priority)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
    stack.callback(sys.setswitchinterval, switch)
    stack.callback(pool.shutdown, wait=True)
    # The collector runs in whichever thread allocates, holding the GIL: a full pass over the
    # start-up objects (fleet, devices, pymodbus contexts) begun by the tick thread stalled
    # the loop for milliseconds. Frozen objects are not traversed (gc.freeze, CPython >= 3.7);
    # what the ticks allocate still is (sim/untrack.py keeps the snapshots out).
    gc.freeze()
    stack.callback(gc.unfreeze)
    return pool


def lower_thread_priority() -> None:
    """Thread initializer of the tick pool: lower this thread's scheduling priority (raising
    nice needs no privilege); a platform without per-thread priorities keeps the default."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + TICK_THREAD_NICE
        )


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
