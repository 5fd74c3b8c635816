"""Dispatch requests, records and the validation rules shared by REST and Modbus (DESIGN §4)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from .model import AssetSpec


class DispatchStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    SUPERSEDED = "superseded"
    REVERTED = "reverted"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"


class DispatchSource(enum.StrEnum):
    REST = "rest"
    MODBUS = "modbus"
    SCENARIO = "scenario"


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    """A setpoint request. ``duration_s=None`` holds until superseded; ``mode`` is the legacy
    "charge"/"discharge" word of the original service and must agree with the sign of ``mw``."""

    asset_id: str
    mw: float
    duration_s: float | None = None
    mode: str | None = None
    source: DispatchSource = DispatchSource.REST
    client: str | None = None


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    id: str
    asset_id: str
    mw: float
    duration_s: float | None
    status: DispatchStatus
    reason: str | None
    source: DispatchSource
    client: str | None
    submitted_at: datetime
    ended_at: datetime | None


def validate(spec: AssetSpec, soc_mwhr: float, tripped: bool, req: DispatchRequest) -> str | None:
    """Return why ``req`` must be rejected, or None when it is acceptable (DESIGN §4)."""
    mw = req.mw
    if not math.isfinite(mw):
        return f"mw must be a finite number, got {mw}"
    if mw > spec.max_mw or mw < spec.min_mw:
        return f"mw {mw:g} is outside [{spec.min_mw:g}, {spec.max_mw:g}] MW for asset {spec.name}"
    if req.mode is not None:
        mode = req.mode.lower()
        if mode not in ("charge", "discharge"):
            return f"mode must be 'charge' or 'discharge', got {req.mode!r}"
        if mode == "charge" and mw > 0.0:
            return f"mode 'charge' needs mw <= 0 (+MW = discharge), got {mw:g}"
        if mode == "discharge" and mw < 0.0:
            return f"mode 'discharge' needs mw >= 0 (+MW = discharge), got {mw:g}"
    if req.duration_s is not None:
        duration = req.duration_s
        if not math.isfinite(duration) or duration <= 0.0:
            return f"duration_s must be a positive number of seconds, got {duration}"
        if mw > 0.0:
            needed = mw * duration / 3600.0 / spec.efficiency
            available = max(soc_mwhr - spec.soc_min_mwhr, 0.0)
            if needed > available + 1e-9:
                return (
                    f"insufficient energy: discharging {mw:g} MW for {duration:g} s needs "
                    f"{needed:.4f} MWh above soc_min, only {available:.4f} MWh available"
                )
        elif mw < 0.0:
            needed = -mw * duration / 3600.0 * spec.efficiency
            available = max(spec.soc_max_mwhr - soc_mwhr, 0.0)
            if needed > available + 1e-9:
                return (
                    f"insufficient headroom: charging {-mw:g} MW for {duration:g} s needs "
                    f"{needed:.4f} MWh below soc_max, only {available:.4f} MWh available"
                )
    if tripped:
        return f"asset {spec.name} is tripped; reset the fault first"
    return None
