"""REST shapes of the battery model v2 (DESIGN §10): the optional asset fields and the
fleet-wide grid state (``GET``/``POST /grid``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..sim.models.curve import Curve
from ..sim.models.params import ModelParams


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ThermalOut(_Out):
    ambient_c: float = Field(description="Ambient the asset starts with, °C.")
    initial_c: float
    heat_capacity_mj_per_k: float
    resistance_k_per_mw: float
    derate_start_c: float
    derate_end_c: float
    trip_c: float


class ReactiveOut(_Out):
    s_max_mva: float
    q_min_mvar: float
    q_max_mvar: float
    priority: Literal["p", "q"]


class FrequencyResponseOut(_Out):
    mode: Literal["droop"]
    nominal_hz: float
    deadband_hz: float
    droop_pct: float
    max_mw: float


def _points(c: Curve | None) -> list[list[float]] | None:
    return None if c is None else [[x, y] for x, y in c.points]


def model_fields(p: ModelParams | None) -> dict[str, Any]:
    """The §10 YAML fields of an asset for :class:`~.schemas.AssetOut` (null = not set)."""
    if p is None:
        return {}
    th, r, f = p.thermal, p.reactive, p.frequency_response
    return {
        "efficiency_curve": _points(p.efficiency_curve),
        "self_discharge_pct_per_day": p.self_discharge_pct_per_day,
        "charge_taper": _points(p.charge_taper),
        "discharge_taper": _points(p.discharge_taper),
        "thermal": None
        if th is None
        else ThermalOut(
            ambient_c=th.ambient_c,
            initial_c=th.initial_c,
            heat_capacity_mj_per_k=th.heat_capacity_mj_per_k,
            resistance_k_per_mw=th.resistance_k_per_mw,
            derate_start_c=th.derate_start_c,
            derate_end_c=th.derate_end_c,
            trip_c=th.trip_c,
        ),
        "reactive": None
        if r is None
        else ReactiveOut(
            s_max_mva=r.s_max_mva,
            q_min_mvar=r.q_min_mvar,
            q_max_mvar=r.q_max_mvar,
            priority="q" if r.priority == "q" else "p",
        ),
        "frequency_response": None
        if f is None
        else FrequencyResponseOut(
            mode="droop",
            nominal_hz=f.nominal_hz,
            deadband_hz=f.deadband_hz,
            droop_pct=f.droop_pct,
            max_mw=f.max_mw,
        ),
    }


class GridIn(BaseModel):
    """Fleet-wide grid conditions; omitted fields stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"frequency_hz": 49.8}, {"ambient_c": 40.0}]},
    )

    frequency_hz: float | None = Field(
        None,
        ge=40.0,
        le=70.0,
        allow_inf_nan=False,
        description="Grid frequency, Hz, seen by every asset's droop response.",
    )
    ambient_c: float | None = Field(
        None,
        ge=-60.0,
        le=80.0,
        allow_inf_nan=False,
        description="Ambient temperature, °C, of every asset with a thermal model.",
    )


class GridOut(_Out):
    frequency_hz: float = Field(description="Grid frequency in effect, Hz.")
    ambient_c: float | None = Field(
        description="Fleet-wide ambient, °C; null until set (each thermal asset then uses "
        "its own ambient_c)."
    )
