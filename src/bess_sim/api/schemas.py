"""Pydantic models at the HTTP edge, and the conversions from the frozen domain objects.

Floats leave the API rounded to 9 decimal places (``round(x, 9)``): the physics works in
float64 and a value such as ``9.999999999999998`` MW is float dust of an exact ``10`` — nine
decimals is a nano-MW / nano-MWh, far below any meter resolution, and keeps JSON readable.
Non-finite floats (a rejected ``NaN`` dispatch) are reported as ``null``: JSON has no NaN.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict

from ..sim import AssetSpec, DispatchRecord, DispatchStatus, Site, Snapshot
from .schemas_model import FrequencyResponseOut, ReactiveOut, ThermalOut, model_fields

FLOAT_DECIMALS = 9

_SITE_ID = "0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e01"
_ASSET_ID = "7c1e2d3f-4a5b-4c6d-8e7f-000000000001"
_DISPATCH_ID = "3f0b8a52-2f5c-4d0e-9b7a-6c1d2e3f4a5b"
_TS = "2026-01-01T00:05:00Z"


#: A JSON number at the edge: int or float, never a boolean (``true`` is not 1 MW) nor a
#: string (``"20"`` is not 20 MW). Pydantic's lax mode coerces both; a setpoint that arrives
#: as the wrong type is a client bug the simulator must report (422), not guess at.
Number = Annotated[float, Strict()]


def r9(value: float) -> float:
    """Round to 9 decimals (float dust such as 9.999999999999998 → 10.0)."""
    out = round(value, FLOAT_DECIMALS)
    return out + 0.0  # -0.0 → 0.0


def r9n(value: float | None) -> float | None:
    """Like :func:`r9`; ``None`` for None and for non-finite values (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return r9(value)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------- errors
class ErrorOut(_Out):
    """Every 4xx/5xx except request-validation errors."""

    detail: str = Field(description="What went wrong, for a human.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": f"unknown asset {_ASSET_ID}"}]}
    )


class ValidationItem(_Out):
    loc: list[str | int] = Field(description="Where the bad value is, e.g. ['query', 'limit'].")
    msg: str
    type: str


class ValidationOut(_Out):
    """A malformed request (bad id, bad query parameter, bad JSON body)."""

    detail: list[ValidationItem]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["path", "asset_id"],
                            "msg": "Input should be a valid UUID",
                            "type": "uuid_parsing",
                        }
                    ]
                }
            ]
        }
    )


# ---------------------------------------------------------------- sites and assets
class SiteOut(_Out):
    id: UUID
    name: str
    location: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": _SITE_ID, "name": "Harbour Substation", "location": "Harbour Road 132 kV"}
            ]
        }
    )

    @classmethod
    def of(cls, site: Site) -> SiteOut:
        return cls(id=UUID(site.id), name=site.name, location=site.location)


class ModbusOut(_Out):
    port: int = Field(description="TCP port of the asset's Modbus slave (as configured).")
    unit_id: int = Field(description="Modbus unit id on that port.")


class AssetOut(_Out):
    """An asset as configured in assets.yaml. +MW = discharge, -MW = charge."""

    id: UUID
    site_id: UUID
    name: str
    location: str
    capacity_mwhr: float = Field(description="Usable energy capacity, MWh.")
    max_mw: float = Field(description="Largest discharge power, MW (>= 0).")
    min_mw: float = Field(description="Largest charge power as a negative number, MW (<= 0).")
    ramp_rate_mw_per_min: float
    efficiency: float = Field(description="One-way efficiency (round trip = efficiency²).")
    initial_soc_pct: float
    soc_min_pct: float
    soc_max_pct: float
    watchdog_timeout_s: float = Field(description="Configured Modbus watchdog; 0 = off.")
    modbus: ModbusOut
    # DESIGN §10 (null = not set: the §3 model).
    efficiency_curve: list[list[float]] | None = Field(
        None, description="[[power_pct, efficiency], ...]; replaces efficiency when set."
    )
    self_discharge_pct_per_day: float | None = None
    charge_taper: list[list[float]] | None = Field(None, description="[[soc_pct, limit_pct]]")
    discharge_taper: list[list[float]] | None = Field(None, description="[[soc_pct, limit_pct]]")
    thermal: ThermalOut | None = None
    reactive: ReactiveOut | None = None
    frequency_response: FrequencyResponseOut | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _ASSET_ID,
                    "site_id": _SITE_ID,
                    "name": "HARB-BESS-1",
                    "location": "Harbour bay 1",
                    "capacity_mwhr": 100.0,
                    "max_mw": 50.0,
                    "min_mw": -50.0,
                    "ramp_rate_mw_per_min": 10.0,
                    "efficiency": 0.95,
                    "initial_soc_pct": 50.0,
                    "soc_min_pct": 0.0,
                    "soc_max_pct": 100.0,
                    "watchdog_timeout_s": 0.0,
                    "modbus": {"port": 5020, "unit_id": 1},
                }
            ]
        }
    )

    @classmethod
    def of(cls, a: AssetSpec) -> AssetOut:
        return cls(
            id=UUID(a.id),
            site_id=UUID(a.site_id),
            name=a.name,
            location=a.location,
            capacity_mwhr=r9(a.capacity_mwhr),
            max_mw=r9(a.max_mw),
            min_mw=r9(a.min_mw),
            ramp_rate_mw_per_min=r9(a.ramp_rate_mw_per_min),
            efficiency=r9(a.efficiency),
            initial_soc_pct=r9(a.initial_soc_pct),
            soc_min_pct=r9(a.soc_min_pct),
            soc_max_pct=r9(a.soc_max_pct),
            watchdog_timeout_s=r9(a.watchdog_timeout_s),
            modbus=ModbusOut(port=a.modbus.port, unit_id=a.modbus.unit_id),
            **model_fields(a.model),
        )


# ---------------------------------------------------------------- telemetry
StatusLabel = Literal["idle", "charging", "discharging", "fault", "offline"]
AlarmName = Literal["soc_low", "soc_high", "watchdog", "trip", "derated", "over_temperature"]


class TelemetryOut(_Out):
    """One asset's snapshot at the end of a tick (DESIGN §3.6)."""

    asset_id: UUID
    site_id: UUID
    timestamp: datetime = Field(description="Simulated UTC time of the snapshot (ISO 8601, Z).")
    soc_mwhr: float
    soc_pct: float
    capacity_mwhr: float
    current_mw: float = Field(description="Power at the terminals: +discharge, -charge.")
    setpoint_mw: float = Field(description="Setpoint in effect (0 when none).")
    max_mw: float
    min_mw: float
    status: StatusLabel
    alarms: list[AlarmName]
    # DESIGN §10
    current_mvar: float = Field(0.0, description="Reactive power, +export, MVAr.")
    setpoint_mvar: float = Field(0.0, description="Reactive setpoint in effect, MVAr.")
    available_discharge_mw: float = Field(
        0.0, description=">= 0: rated after taper, thermal derating, trip and SOC bound."
    )
    available_charge_mw: float = Field(0.0, description="<= 0: as available_discharge_mw.")
    temperature_c: float | None = Field(None, description="null without a thermal model.")
    frequency_hz: float = Field(50.0, description="Grid frequency, Hz.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "asset_id": _ASSET_ID,
                    "site_id": _SITE_ID,
                    "timestamp": _TS,
                    "soc_mwhr": 48.245614035,
                    "soc_pct": 48.245614035,
                    "capacity_mwhr": 100.0,
                    "current_mw": 20.0,
                    "setpoint_mw": 20.0,
                    "max_mw": 50.0,
                    "min_mw": -50.0,
                    "status": "discharging",
                    "alarms": [],
                }
            ]
        }
    )

    @classmethod
    def of(cls, s: Snapshot) -> TelemetryOut:
        return cls.model_construct(**telemetry_dict(s, as_json=False))


def telemetry_dict(s: Snapshot, *, as_json: bool = True) -> dict[str, Any]:
    """The telemetry JSON object (also what the WebSocket pushes, encoded without pydantic)."""
    return {
        "asset_id": s.asset_id if as_json else UUID(s.asset_id),
        "site_id": s.site_id if as_json else UUID(s.site_id),
        "timestamp": iso_z(s.timestamp) if as_json else s.timestamp,
        "soc_mwhr": r9(s.soc_mwhr),
        "soc_pct": r9(s.soc_pct),
        "capacity_mwhr": r9(s.capacity_mwhr),
        "current_mw": r9(s.current_mw),
        "setpoint_mw": r9(s.setpoint_mw),
        "max_mw": r9(s.max_mw),
        "min_mw": r9(s.min_mw),
        "status": s.status_label,
        "alarms": list(s.alarm_names),
        "current_mvar": r9(s.current_mvar),
        "setpoint_mvar": r9(s.setpoint_mvar),
        "available_discharge_mw": r9(s.available_discharge_mw),
        "available_charge_mw": r9(s.available_charge_mw),
        "temperature_c": r9n(s.temperature_c),
        "frequency_hz": r9(s.frequency_hz),
    }


def iso_z(ts: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix (what pydantic emits for aware UTC datetimes)."""
    return ts.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- dispatch
class DispatchIn(BaseModel):
    """A setpoint request. +MW = discharge, -MW = charge."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"asset_id": _ASSET_ID, "mw": 20.0, "duration_s": 900},
                {"asset_id": _ASSET_ID, "mw": -10.0},
            ]
        },
    )

    asset_id: UUID
    mw: Number = Field(
        description="Setpoint, MW: within [min_mw, max_mw] of the asset. A non-finite value "
        "(NaN/Infinity, which Python-style JSON encoders emit) is recorded and rejected."
    )
    duration_s: Number | None = Field(
        None,
        gt=0,
        le=31_536_000,
        allow_inf_nan=False,
        description="Seconds of simulated time the setpoint holds, then it returns to 0. "
        "Omitted/null = holds until superseded. When given, the energy check applies.",
    )
    mode: Literal["charge", "discharge"] | None = Field(
        None,
        description="Legacy field of the original service; if given it must agree with the "
        "sign of mw.",
    )
    mvar: float | None = Field(
        None,
        description="Reactive setpoint, MVAr (+export; DESIGN §10): within [q_min_mvar, "
        "q_max_mvar] and |mvar| <= s_max_mva. Omitted = the reactive setpoint in effect stays.",
    )


DispatchStatusLabel = Literal[
    "accepted", "completed", "superseded", "reverted", "interrupted", "rejected"
]


class DispatchOut(_Out):
    """A dispatch record (DESIGN §4)."""

    id: UUID
    asset_id: UUID
    mw: float | None = Field(description="Requested MW; null only for a rejected non-finite mw.")
    duration_s: float | None = Field(description="null = holds until superseded.")
    status: DispatchStatusLabel
    reason: str | None = Field(description="Why it was rejected (null otherwise).")
    source: Literal["rest", "modbus", "scenario"]
    client: str | None = Field(description="Who sent it: HTTP or Modbus peer ip:port.")
    submitted_at: datetime
    ended_at: datetime | None
    mvar: float | None = Field(
        None, description="Reactive setpoint of this dispatch; null for an asset without Q."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _DISPATCH_ID,
                    "asset_id": _ASSET_ID,
                    "mw": 20.0,
                    "duration_s": 900.0,
                    "status": "accepted",
                    "reason": None,
                    "source": "rest",
                    "client": "127.0.0.1:53122",
                    "submitted_at": _TS,
                    "ended_at": None,
                }
            ]
        }
    )

    @classmethod
    def of(cls, rec: DispatchRecord) -> DispatchOut:
        return cls(
            id=UUID(rec.id),
            asset_id=UUID(rec.asset_id),
            mw=r9n(rec.mw),
            duration_s=r9n(rec.duration_s),
            status=rec.status.value,
            reason=rec.reason,
            source=rec.source.value,
            client=rec.client,
            submitted_at=rec.submitted_at,
            ended_at=rec.ended_at,
            mvar=r9n(rec.mvar),
        )


class DispatchRejectedOut(_Out):
    """A well-formed dispatch that failed validation: it is recorded with status rejected."""

    detail: str = Field(description="The reason (same as dispatch.reason).")
    dispatch: DispatchOut

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "mw 80 is outside [-50, 50] MW for asset HARB-BESS-1",
                    "dispatch": {
                        "id": _DISPATCH_ID,
                        "asset_id": _ASSET_ID,
                        "mw": 80.0,
                        "duration_s": None,
                        "status": "rejected",
                        "reason": "mw 80 is outside [-50, 50] MW for asset HARB-BESS-1",
                        "source": "rest",
                        "client": "127.0.0.1:53122",
                        "submitted_at": _TS,
                        "ended_at": _TS,
                    },
                }
            ]
        }
    )


DISPATCH_STATUSES: tuple[DispatchStatus, ...] = tuple(DispatchStatus)


# ---------------------------------------------------------------- health / clock / step
class HealthOut(_Out):
    status: Literal["ok", "degraded", "failed"] = Field(
        description="degraded while the database is down (the simulator keeps running); "
        "failed (HTTP 503) once the tick loop has stopped on an error."
    )
    tick: int = Field(description="Ticks run since start.")
    sim_time_s: float
    now: datetime = Field(description="Simulated UTC time.")
    db: Literal["ok", "down", "disabled"]
    error: str | None = Field(
        None, description="Only with status failed: why the tick loop stopped."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "tick": 300,
                    "sim_time_s": 300.0,
                    "now": _TS,
                    "db": "disabled",
                }
            ]
        }
    )


class ClockOut(_Out):
    mode: Literal["realtime", "manual"]
    tick_interval_s: float = Field(
        description="Simulated seconds per tick (manual clock), "
        "wall seconds between ticks (real-time clock)."
    )
    speed: float = Field(description="Simulated seconds per wall second; 0 for the manual clock.")
    sim_time_s: float = Field(description="Simulated seconds since start.")
    now: datetime = Field(description="Simulated UTC time = start_time + sim_time_s.")
    start_time: datetime
    tick: int
    overruns: int = Field(description="Real-time ticks that ended after the next deadline.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mode": "manual",
                    "tick_interval_s": 1.0,
                    "speed": 0.0,
                    "sim_time_s": 300.0,
                    "now": _TS,
                    "start_time": "2026-01-01T00:00:00Z",
                    "tick": 300,
                    "overruns": 0,
                }
            ]
        }
    )


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seconds": 60}]})

    seconds: Number = Field(
        gt=0,
        le=31_536_000,
        allow_inf_nan=False,
        description="Simulated seconds to advance (at most one year, and at most 1,000,000 "
        "ticks of tick_interval_s).",
    )


class StepOut(_Out):
    ticks: int = Field(description="Ticks run by this step (the last one may be shorter).")
    tick: int = Field(description="Ticks run since start.")
    sim_time_s: float
    now: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"ticks": 60, "tick": 360, "sim_time_s": 360.0, "now": _TS}]
        }
    )
