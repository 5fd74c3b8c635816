"""What to restore on start-up, decided from persisted rows (pure: no I/O, no asyncpg).

Rules (docs/persistence.md "Restore"):
- Each asset resumes from its latest telemetry row: SOC, MW, and tripped if its status was
  ``fault``.
- Simulated time is treated as paused while the process was down: the run resumes at
  ``max(configured start, latest persisted ts, latest in-effect submitted_at)``, so new rows
  never collide with persisted ``(asset_id, ts)`` keys.
- The dispatch still in effect keeps ``submitted_at + duration_s - last ts of that asset``
  seconds (never more than its duration); one whose time had passed is marked ``completed``
  at ``submitted_at + duration_s``. Should several records of an asset still say
  ``accepted`` (a crash between two writes), the newest wins and the others become
  ``superseded``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..sim import DispatchRecord, DispatchStatus

# A dispatch with less than this left (float dust of timestamps) counts as completed.
_REMAINING_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class AssetRestore:
    asset_id: str
    soc_mwhr: float | None  # None: no telemetry persisted, keep the configured initial SOC
    current_mw: float
    active: DispatchRecord | None
    remaining_s: float | None
    tripped: bool
    # DESIGN §10 state: a hot battery stays hot across a restart, an over-temperature trip
    # stays an over-temperature trip (None / 0 / False when not persisted).
    temperature_c: float | None = None
    current_mvar: float = 0.0
    over_temperature: bool = False


@dataclass(frozen=True, slots=True)
class RestorePlan:
    resume_at: datetime | None  # None: nothing persisted, keep the configured start
    assets: tuple[AssetRestore, ...]
    ended: tuple[DispatchRecord, ...]  # in-effect records that must be closed


def plan_restore(
    start: datetime,
    asset_ids: Sequence[str],
    latest: Mapping[str, Mapping[str, Any]],
    in_effect: Sequence[DispatchRecord],
) -> RestorePlan:
    """``latest``: asset id → latest telemetry row; ``in_effect``: records still 'accepted',
    oldest first."""
    by_asset: dict[str, list[DispatchRecord]] = {}
    for rec in in_effect:
        by_asset.setdefault(rec.asset_id, []).append(rec)
    ended: list[DispatchRecord] = []
    out: list[AssetRestore] = []
    marks: list[datetime] = [row["ts"] for row in latest.values()]
    for asset_id in asset_ids:
        row = latest.get(asset_id)
        records = by_asset.get(asset_id, [])
        active: DispatchRecord | None = records[-1] if records else None
        for older in records[:-1]:
            at = active.submitted_at if active is not None else older.submitted_at
            ended.append(replace(older, status=DispatchStatus.SUPERSEDED, ended_at=at))
        remaining: float | None = None
        if active is not None:
            marks.append(active.submitted_at)
            if active.duration_s is not None:
                end_at = active.submitted_at + timedelta(seconds=active.duration_s)
                ref = row["ts"] if row is not None else active.submitted_at
                remaining = min(active.duration_s, (end_at - ref).total_seconds())
                if remaining <= _REMAINING_EPS_S:
                    ended.append(replace(active, status=DispatchStatus.COMPLETED, ended_at=end_at))
                    active, remaining = None, None
        if row is None and active is None:
            continue
        out.append(
            AssetRestore(
                asset_id=asset_id,
                soc_mwhr=float(row["soc_mwhr"]) if row is not None else None,
                current_mw=float(row["current_mw"]) if row is not None else 0.0,
                active=active,
                remaining_s=remaining,
                tripped=row is not None and row["status"] == "fault",
                temperature_c=_optional_float(row, "temperature_c"),
                current_mvar=_optional_float(row, "current_mvar") or 0.0,
                over_temperature=row is not None
                and "over_temperature" in (row.get("alarms") or ()),
            )
        )
    resume_at = max([start, *marks]) if marks else None
    return RestorePlan(resume_at, tuple(out), tuple(ended))


def _optional_float(row: Mapping[str, Any] | None, key: str) -> float | None:
    value = None if row is None else row.get(key)
    return None if value is None else float(value)
