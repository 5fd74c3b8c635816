"""Per-asset telemetry ring buffer: the history store when no database is configured."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .model import Snapshot

#: Origin of history buckets: the Unix epoch, the same origin the database queries pass to
#: ``date_bin`` / ``time_bucket`` (so in-memory and database buckets have the same edges).
BUCKET_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


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
    """Keeps the last ``size`` snapshots of every asset (bounded memory: assets x size)."""

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


def bucket_start(ts: datetime, bucket_s: float) -> datetime:
    """Start of the ``bucket_s`` bucket holding ``ts`` (edges at BUCKET_ORIGIN + k * bucket_s),
    computed in whole microseconds like PostgreSQL's ``date_bin``."""
    width_us = max(round(bucket_s * 1_000_000), 1)
    offset_us = (ts - BUCKET_ORIGIN) // _US
    return BUCKET_ORIGIN + timedelta(microseconds=offset_us // width_us * width_us)


def bucket_snapshots(rows: Sequence[Snapshot], bucket_s: float, limit: int) -> list[Snapshot]:
    """Average ``rows`` (newest first, one asset) per time bucket; newest bucket first, at most
    ``limit`` buckets.

    Each result is a Snapshot whose ``timestamp`` is the bucket start; soc_mwhr, soc_pct,
    current_mw and setpoint_mw are the means over the bucket's rows; every other field (status,
    alarms, limits, ...) is taken from the bucket's latest row. The database history uses the
    same rules (bess_sim.storage).
    """
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    out: list[Snapshot] = []
    group: list[Snapshot] = []
    current: datetime | None = None
    for snap in rows:
        start = bucket_start(snap.timestamp, bucket_s)
        if start != current:
            if group and current is not None:
                out.append(_average(group, current))
                if len(out) >= limit:
                    return out
            group = []
            current = start
        group.append(snap)
    if group and current is not None and len(out) < limit:
        out.append(_average(group, current))
    return out


def _average(group: Sequence[Snapshot], start: datetime) -> Snapshot:
    latest = max(group, key=lambda s: s.timestamp)
    n = len(group)
    return latest._replace(
        timestamp=start,
        sim_time_s=latest.sim_time_s - (latest.timestamp - start).total_seconds(),
        soc_mwhr=sum(s.soc_mwhr for s in group) / n,
        soc_pct=sum(s.soc_pct for s in group) / n,
        current_mw=sum(s.current_mw for s in group) / n,
        setpoint_mw=sum(s.setpoint_mw for s in group) / n,
    )
