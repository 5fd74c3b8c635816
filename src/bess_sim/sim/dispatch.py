"""Dispatch requests, records and the validation rules shared by REST and Modbus (DESIGN §4)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from .model import AssetSpec
from .models.efficiency import efficiency_at


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
    #: Reactive setpoint (DESIGN §10), +MVAr = export; None keeps the one in effect.
    mvar: float | None = None


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
    #: Reactive setpoint of this dispatch (None: asset without reactive capability).
    mvar: float | None = None


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
        # η at this power when the asset has an efficiency curve (DESIGN §10).
        curve = None if spec.model is None else spec.model.efficiency_curve
        eff = efficiency_at(curve, spec.efficiency, mw, max(spec.max_mw, -spec.min_mw))
        if mw > 0.0:
            needed = mw * duration / 3600.0 / eff
            available = max(soc_mwhr - spec.soc_min_mwhr, 0.0)
            if needed > available + 1e-9:
                return (
                    f"insufficient energy: discharging {mw:g} MW for {duration:g} s needs "
                    f"{needed:.4f} MWh above soc_min, only {available:.4f} MWh available"
                )
        elif mw < 0.0:
            needed = -mw * duration / 3600.0 * eff
            available = max(spec.soc_max_mwhr - soc_mwhr, 0.0)
            if needed > available + 1e-9:
                return (
                    f"insufficient headroom: charging {-mw:g} MW for {duration:g} s needs "
                    f"{needed:.4f} MWh below soc_max, only {available:.4f} MWh available"
                )
    if req.mvar is not None:
        reason = _validate_mvar(spec, req.mvar)
        if reason is not None:
            return reason
    if tripped:
        return f"asset {spec.name} is tripped; reset the fault first"
    return None


def _validate_mvar(spec: AssetSpec, mvar: float) -> str | None:
    """DESIGN §10: within [q_min, q_max] and |Q| <= S_max. P² + Q² > S² is accepted and
    curtailed by the priority rule, like an active setpoint above the available limit."""
    if not math.isfinite(mvar):
        return f"mvar must be a finite number, got {mvar}"
    reactive = None if spec.model is None else spec.model.reactive
    if reactive is None:
        if mvar != 0.0:
            return f"asset {spec.name} has no reactive capability (no 'reactive' in assets.yaml)"
        return None
    if mvar < reactive.q_min_mvar or mvar > reactive.q_max_mvar:
        return (
            f"mvar {mvar:g} is outside [{reactive.q_min_mvar:g}, {reactive.q_max_mvar:g}] MVAr "
            f"for asset {spec.name}"
        )
    if abs(mvar) > reactive.s_max_mva:
        return (
            f"|mvar| {abs(mvar):g} exceeds s_max_mva {reactive.s_max_mva:g} for asset {spec.name}"
        )
    return None
