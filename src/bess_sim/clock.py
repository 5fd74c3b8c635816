"""Real-time pacing, kept apart from simulated time (which the Fleet owns).

The real-time clock calls ``tick(dt_s)`` every ``tick_interval_s`` wall seconds with
``dt_s = tick_interval_s × speed``. Deadlines are absolute (start + n × interval), so the
schedule does not drift with tick duration. A tick that ends past the next deadline is an
overrun: it is counted, and the schedule restarts from now instead of bursting to catch up
(simulated time then lags wall time; it never jumps).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable


class RealTimeClock:
    kind = "realtime"

    def __init__(self, tick_interval_s: float, speed: float) -> None:
        self.tick_interval_s = tick_interval_s
        self.speed = speed
        self.overruns = 0

    @property
    def dt_s(self) -> float:
        """Simulated seconds per tick."""
        return self.tick_interval_s * self.speed

    async def run(
        self,
        tick: Callable[[float], object],
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        """Call ``tick`` forever at the configured pace (cancel to stop); an awaitable it
        returns is awaited (the runtime's tick runs in a worker thread, tickgate.py)."""
        loop = asyncio.get_running_loop()
        interval = self.tick_interval_s
        deadline = loop.time() + interval
        while True:
            await asyncio.sleep(max(deadline - loop.time(), 0.0))
            result = tick(self.dt_s)
            if inspect.isawaitable(result):
                await result
            deadline += interval
            now = loop.time()
            if now > deadline:
                self.overruns += 1
                if on_overrun is not None:
                    on_overrun()
                deadline = now + interval


class ManualClock:
    """Time advances only when asked (``POST /sim/step``), in ticks of ``tick_interval_s``."""

    kind = "manual"

    def __init__(self, tick_interval_s: float) -> None:
        self.tick_interval_s = tick_interval_s
        self.speed = 0.0
        self.overruns = 0

    def chunks(self, seconds: float) -> list[float]:
        """Split ``seconds`` into ticks of ``tick_interval_s``, the last one shorter."""
        interval = self.tick_interval_s
        # Tolerate float dust (0.3 / 0.1 = 2.9999999999999996 means three ticks, not two plus
        # a 0.09999999999999998 s one).
        whole = math.floor(seconds / interval + 1e-9)
        out = [interval] * whole
        rest = seconds - whole * interval
        if rest > 1e-9 * interval:
            out.append(rest)
        return out
