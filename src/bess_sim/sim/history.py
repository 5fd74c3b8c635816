"""Telemetry ring buffer (per-tick fleet frames): the history store when no database is
configured, and the fallback while it is down."""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

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


_F = {name: i for i, name in enumerate(Snapshot._fields)}
_NAN = float("nan")


def _nan_if_none(get: Any) -> Any:
    def getter(snap: Snapshot) -> Any:
        value = get(snap)
        return _NAN if value is None else value

    return getter


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("soc_mwhr", "d"),
    ("soc_pct", "d"),
    ("current_mw", "d"),
    ("setpoint_mw", "d"),
    ("status", "B"),
    ("alarms", "B"),
    ("heartbeat", "q"),
    # DESIGN §10 fields; temperature_c None is stored as NaN.
    ("current_mvar", "d"),
    ("setpoint_mvar", "d"),
    ("available_discharge_mw", "d"),
    ("available_charge_mw", "d"),
    ("temperature_c", "d"),
    ("frequency_hz", "d"),
)
_GETTERS: tuple[Any, ...] = tuple(
    _nan_if_none(itemgetter(_F[name])) if name == "temperature_c" else itemgetter(_F[name])
    for name, _ in _COLUMNS
)
#: Snapshots per C-level column fill (~30 µs each) between two GIL switch points.
_SLICE = 512
#: Frames looked back through for another part of the same tick (parts of one tick arrive
#: together; other agents' parts of the previous tick may come in between).
_MERGE_LOOKBACK = 8
_ABSENT = 255  # status code marking "asset not in this frame" (status codes are 0..3)


class _Frame(NamedTuple):
    """One tick of the whole fleet: a timestamp and one array per varying field, indexed by
    the asset's position. Arrays of machine numbers: ~50 bytes per asset per tick and invisible
    to the GC (a ring of Snapshot objects for 1,000 assets × 3,600 ticks took ~1.1 GB and its
    full GC passes froze the event loop for up to ~950 ms, measured here), and a tick is
    stored with C-level loops (~0.5 µs per asset) instead of per-asset Python code."""

    ts: datetime
    sim_time_s: float
    cols: tuple[array[Any], ...]
    layout: dict[str, int]  # asset id → column position (the fleet layout of this frame)


class HistoryBuffer:
    """Keeps the last ``size`` snapshots of every asset (bounded memory: assets × size,
    about 50 bytes an entry)."""

    def __init__(self, asset_ids: Iterable[str], size: int) -> None:
        if size < 1:
            raise ValueError("history size must be >= 1")
        self.size = size
        self._ids = list(asset_ids)
        self._index = {a: i for i, a in enumerate(self._ids)}
        # Per-asset constants (site_id, capacity, max_mw, min_mw), from the first snapshot seen.
        self._const: dict[str, tuple[str, float, float, float]] = {}
        self._frames: deque[_Frame] = deque(maxlen=size)
        self._need_const = True  # some asset of the layout has no constants yet

    def set_assets(self, asset_ids: Iterable[str], changed: Iterable[str] = ()) -> None:
        """The fleet changed (run-time registration, DESIGN §14): later frames use the new
        layout; earlier frames keep theirs, so a removed asset's history stays readable.
        ``changed``: assets whose limits changed (their constants are taken anew)."""
        for asset_id in changed:
            self._const.pop(asset_id, None)
        self._ids = list(asset_ids)
        self._index = {a: i for i, a in enumerate(self._ids)}
        self._need_const = True

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        if not snapshots:
            return
        if self._need_const:
            for snap in snapshots:
                if snap.asset_id in self._index and snap.asset_id not in self._const:
                    self._const[snap.asset_id] = (
                        snap.site_id,
                        snap.capacity_mwhr,
                        snap.max_mw,
                        snap.min_mw,
                    )
            self._need_const = not self._index.keys() <= self._const.keys()
        first = snapshots[0]
        if (
            first.timestamp is snapshots[-1].timestamp
            and len(snapshots) == len(self._ids)
            and [s.asset_id for s in snapshots] == self._ids
        ):
            # The tick's own list (every asset, fleet order, one timestamp): columns at C speed,
            # in slices: one array() over 10,000 snapshots is ~0.6 ms of C that never gives
            # the GIL away (the tick thread runs this; lag probe at 10,000 assets: ~2 ms
            # event-loop stalls here, ~180 per 30 s, before slicing).
            slices = [snapshots[i : i + _SLICE] for i in range(0, len(snapshots), _SLICE)]
            filled: list[array[Any]] = []
            for (_, t), get in zip(_COLUMNS, _GETTERS, strict=True):
                col: array[Any] = array(t)
                for part in slices:
                    col.extend(map(get, part))
                filled.append(col)
            self._append(first, tuple(filled))
            return
        by_ts: dict[datetime, list[Snapshot]] = {}
        for snap in snapshots:  # any other shape: one frame per timestamp, absent assets marked
            if snap.asset_id in self._index:
                by_ts.setdefault(snap.timestamp, []).append(snap)
        for group in sorted(by_ts.values(), key=lambda g: g[0].timestamp):
            frame = self._recent_frame(group[0].timestamp)
            if frame is not None:
                cols = frame.cols  # another part of a tick already stored: one frame per tick
            else:
                n = len(self._ids)
                cols = tuple(
                    array(t, [_ABSENT if name == "status" else 0] * n) for name, t in _COLUMNS
                )
            for snap in group:
                i = self._index[snap.asset_id]
                for col, get in zip(cols, _GETTERS, strict=True):
                    col[i] = get(snap)
            if frame is None:
                self._append(group[0], cols)

    def _recent_frame(self, ts: datetime) -> _Frame | None:
        """A frame of the last few with this timestamp and the current layout. The scale-out
        headend receives each tick in several messages (one per agent, and per part of
        wire.PART_ROWS): one frame each would divide the history's depth by their number."""
        frames = self._frames
        for k in range(1, min(len(frames), _MERGE_LOOKBACK) + 1):
            frame: _Frame = frames[-k]
            if frame.ts == ts and frame.layout is self._index:
                return frame
        return None

    def _append(self, snap: Snapshot, cols: tuple[array[Any], ...]) -> None:
        self._frames.append(_Frame(snap.timestamp, snap.sim_time_s, cols, self._index))

    def query(self, q: HistoryQuery) -> list[Snapshot]:
        """Raw snapshots, newest first (``q.bucket_s`` is not handled here)."""
        asset_id = q.asset_id
        const = self._const.get(asset_id)
        if const is None:
            return []
        site_id, capacity, max_mw, min_mw = const
        start, end = q.start, q.end
        out: list[Snapshot] = []
        for frame in reversed(self._frames):
            if end is not None and frame.ts > end:
                continue
            if start is not None and frame.ts < start:
                break
            i = frame.layout.get(asset_id)
            if i is None:
                continue
            soc, pct, mw, sp, status, alarms, hb, mvar, sp_mvar, dis, chg, temp, hz = (
                c[i] for c in frame.cols
            )
            if status == _ABSENT:
                continue
            out.append(
                Snapshot(
                    q.asset_id,
                    site_id,
                    frame.ts,
                    frame.sim_time_s,
                    soc,
                    pct,
                    capacity,
                    mw,
                    sp,
                    max_mw,
                    min_mw,
                    status,
                    alarms,
                    hb,
                    mvar,
                    sp_mvar,
                    dis,
                    chg,
                    None if temp != temp else temp,  # NaN = no thermal model
                    hz,
                )
            )
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
