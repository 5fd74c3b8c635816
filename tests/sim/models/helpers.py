"""Specs with v2 parameters for the model tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bess_sim.sim.model import AssetSpec, ModbusAddress
from bess_sim.sim.models.curve import Curve
from bess_sim.sim.models.params import (
    FrequencyParams,
    ModelParams,
    ReactiveParams,
    ThermalParams,
)

THERMAL = ThermalParams(
    ambient_c=25.0, initial_c=25.0, heat_capacity_mj_per_k=20.0, resistance_k_per_mw=50.0,
    derate_start_c=40.0, derate_end_c=50.0, trip_c=55.0,
)  # fmt: skip
REACTIVE = ReactiveParams(s_max_mva=5.5, q_min_mvar=-3.0, q_max_mvar=3.0, priority="p")
DROOP = FrequencyParams("droop", 50.0, 0.0, 4.0, 5.0)
CURVE = Curve.of(((0.0, 0.80), (10.0, 0.88), (50.0, 0.92), (100.0, 0.90)))


def spec(model: ModelParams | None = None, **kw: Any) -> AssetSpec:
    values: dict[str, Any] = {
        "capacity_mwhr": 10.0, "max_mw": 5.0, "min_mw": -5.0, "ramp_rate_mw_per_min": 60.0,
        "efficiency": 0.9,
    }  # fmt: skip
    values.update(kw)
    return AssetSpec(
        id="a", site_id="s", name="A", location="", modbus=ModbusAddress(5020, 1), model=model,
        **values,
    )  # fmt: skip


def params(**kw: Any) -> ModelParams:
    return replace(ModelParams(), **kw)
