"""Parameters of the optional v2 effects (DESIGN §10), as validated from assets.yaml.

``None`` for an effect means it is off and the asset behaves as in §3."""

from __future__ import annotations

from dataclasses import dataclass

from .curve import Curve


@dataclass(frozen=True, slots=True)
class ThermalParams:
    """One thermal node: C dT/dt = P_loss − (T − T_amb)/R."""

    ambient_c: float
    initial_c: float
    heat_capacity_mj_per_k: float
    resistance_k_per_mw: float
    derate_start_c: float
    derate_end_c: float
    trip_c: float


@dataclass(frozen=True, slots=True)
class ReactiveParams:
    s_max_mva: float
    q_min_mvar: float
    q_max_mvar: float
    priority: str  # "p" | "q": the component kept when P² + Q² > S²


@dataclass(frozen=True, slots=True)
class FrequencyParams:
    mode: str  # "droop"
    nominal_hz: float
    deadband_hz: float
    droop_pct: float
    max_mw: float


@dataclass(frozen=True, slots=True)
class ModelParams:
    efficiency_curve: Curve | None = None
    self_discharge_pct_per_day: float = 0.0
    charge_taper: Curve | None = None
    discharge_taper: Curve | None = None
    thermal: ThermalParams | None = None
    reactive: ReactiveParams | None = None
    frequency_response: FrequencyParams | None = None
