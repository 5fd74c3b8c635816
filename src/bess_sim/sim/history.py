"""Per-asset telemetry ring buffer: the history store when no database is configured."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .model import Snapshot


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history request: newest first, at most ``limit`` rows, ``start <= ts <= end``;
    ``bucket_s`` asks for averages per time bucket (None = raw rows)."""

    asset_id: str
    limit: int = 100
    start: datetime | None = None
    end: datetime | None = None
    bucket_s: float | None = None


class HistoryBuffer:
    """Keeps the last ``size`` snapshots of every asset (bounded memory: assets × size)."""

    def __init__(self, asset_ids: Iterable[str], size: int) -> None:
        if size < 1:
            raise ValueError("history size must be >= 1")
        self.size = size
        self._rings: dict[str, deque[Snapshot]] = {a: deque(maxlen=size) for a in asset_ids}

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        rings = self._rings
        for snap in snapshots:
            ring = rings.get(snap.asset_id)
            if ring is not None:
                ring.append(snap)

    def query(self, q: HistoryQuery) -> list[Snapshot]:
        """Raw snapshots, newest first (``q.bucket_s`` is not handled here)."""
        start, end, limit = q.start, q.end, q.limit
        ring = self._rings.get(q.asset_id)
        if ring is None:
            return []
        out: list[Snapshot] = []
        for snap in reversed(ring):
            if end is not None and snap.timestamp > end:
                continue
            if start is not None and snap.timestamp < start:
                break
            out.append(snap)
            if len(out) >= limit:
                break
        return out
