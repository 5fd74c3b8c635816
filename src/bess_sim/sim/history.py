"""Per-asset telemetry ring buffer: the history store when no database is configured."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
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


class _Ring:
    """One asset's history as fixed-capacity columns of machine numbers (``array``).

    Not Snapshot objects: a full ring of 1,000 assets × 3,600 Snapshots took ~1.1 GB and its
    GC traversal paused the event loop for up to ~950 ms (measured here). Arrays are ~50 bytes
    per entry and invisible to the GC. The per-asset constants come from the first snapshot.
    """

    __slots__ = (
        "alarms",
        "const",
        "hb",
        "head",
        "mw",
        "pct",
        "sim",
        "size",
        "soc",
        "sp",
        "st",
        "ts",
    )  # fmt: skip

    def __init__(self, size: int) -> None:
        self.size = size
        self.head = 0  # next slot to overwrite once full
        self.const: tuple[str, str, float, float, float] | None = None
        self.ts = array("q")  # µs since BUCKET_ORIGIN (exact, unlike float seconds)
        self.sim, self.soc, self.pct = array("d"), array("d"), array("d")
        self.mw, self.sp = array("d"), array("d")
        self.st, self.alarms, self.hb = array("B"), array("B"), array("H")

    def append(self, s: Snapshot, ts_us: int) -> None:
        if self.const is None:
            self.const = (s.asset_id, s.site_id, s.capacity_mwhr, s.max_mw, s.min_mw)
        if len(self.ts) < self.size:
            self.ts.append(ts_us)
            self.sim.append(s.sim_time_s)
            self.soc.append(s.soc_mwhr)
            self.pct.append(s.soc_pct)
            self.mw.append(s.current_mw)
            self.sp.append(s.setpoint_mw)
            self.st.append(s.status)
            self.alarms.append(s.alarms)
            self.hb.append(s.heartbeat & 0xFFFF)
        else:
            i = self.head
            self.ts[i] = ts_us
            self.sim[i] = s.sim_time_s
            self.soc[i] = s.soc_mwhr
            self.pct[i] = s.soc_pct
            self.mw[i] = s.current_mw
            self.sp[i] = s.setpoint_mw
            self.st[i] = s.status
            self.alarms[i] = s.alarms
            self.hb[i] = s.heartbeat & 0xFFFF
            self.head = (i + 1) % self.size

    def newest_first(self) -> Iterator[int]:
        n = len(self.ts)
        last = (self.head - 1) % n if n == self.size else n - 1
        for k in range(n):
            yield (last - k) % n

    def snapshot(self, i: int) -> Snapshot:
        assert self.const is not None
        asset_id, site_id, capacity, max_mw, min_mw = self.const
        return Snapshot(
            asset_id, site_id, BUCKET_ORIGIN + timedelta(microseconds=self.ts[i]), self.sim[i],
            self.soc[i], self.pct[i], capacity, self.mw[i], self.sp[i], max_mw, min_mw,
            self.st[i], self.alarms[i], self.hb[i],
        )  # fmt: skip


class HistoryBuffer:
    """Keeps the last ``size`` snapshots of every asset (bounded memory: assets × size,
    about 50 bytes an entry)."""

    def __init__(self, asset_ids: Iterable[str], size: int) -> None:
        if size < 1:
            raise ValueError("history size must be >= 1")
        self.size = size
        self._rings: dict[str, _Ring] = {a: _Ring(size) for a in asset_ids}

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        rings = self._rings
        last_ts: datetime | None = None
        ts_us = 0
        for snap in snapshots:
            ring = rings.get(snap.asset_id)
            if ring is not None:
                if snap.timestamp is not last_ts:  # one tick shares one datetime object
                    last_ts = snap.timestamp
                    ts_us = (last_ts - BUCKET_ORIGIN) // _US
                ring.append(snap, ts_us)

    def query(self, q: HistoryQuery) -> list[Snapshot]:
        """Raw snapshots, newest first (``q.bucket_s`` is not handled here)."""
        ring = self._rings.get(q.asset_id)
        if ring is None:
            return []
        start_us = None if q.start is None else (q.start - BUCKET_ORIGIN) // _US
        end_us = None if q.end is None else (q.end - BUCKET_ORIGIN) // _US
        ts = ring.ts
        out: list[Snapshot] = []
        for i in ring.newest_first():
            t = ts[i]
            if end_us is not None and t > end_us:
                continue
            if start_us is not None and t < start_us:
                break
            out.append(ring.snapshot(i))
            if len(out) >= q.limit:
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
