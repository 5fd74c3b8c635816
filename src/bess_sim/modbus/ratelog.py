"""Rate-limited log lines for events a client controls (bad frames, refused connections).

A misbehaving client can cause thousands of such events a second; one line each would flood the
log (brief rule 11: no spam) while no line at all hides the problem. Each kind of event gets at
most ``burst`` lines per ``interval_s``; the first line after a quiet-down says how many were
suppressed, so the count is never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Per-kind rate limit around one logger. One instance per component (no module state)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._interval_s = interval_s
        self._clock = clock
        # kind → [window start, lines logged in the window, suppressed in the window]
        self._windows: dict[str, list[float]] = {}

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``kind`` is over its budget; True when a line was written."""
        now = self._clock()
        w = self._windows.get(kind)
        if w is None or now - w[0] >= self._interval_s:
            suppressed = int(w[2]) if w is not None else 0
            self._windows[kind] = [now, 1.0, 0.0]
            if suppressed:
                msg += " (%d similar lines suppressed in the previous %.0f s)"
                args = (*args, suppressed, self._interval_s)
            self._log.log(level, msg, *args)
            return True
        if w[1] < self._burst:
            w[1] += 1
            self._log.log(level, msg, *args)
            return True
        w[2] += 1
        return False
