"""What the faces publish while view faults are in effect (DESIGN §11).

``soc_bias``, ``value_override`` and ``frozen_telemetry`` change the snapshot a face shows,
never the fleet's state: physics, dispatch validation, the history ring and the database keep
the true values (the test instrument's record of what really happened). A surface is
``modbus`` (native input registers and the SunSpec block, which read the same snapshot) or
``rest`` (``GET /telemetry/{id}``, the WebSocket push and so the dashboard).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..sim import Snapshot
from .request import override_number

_S_PER_H = 3600.0


@dataclass(slots=True)
class Bias:
    offset_pct: float
    drift_pct_per_h: float
    start_s: float

    def at(self, sim_time_s: float) -> float:
        return self.offset_pct + self.drift_pct_per_h * (sim_time_s - self.start_s) / _S_PER_H


@dataclass(frozen=True, slots=True)
class Override:
    field: str
    mode: str  # value | offset | scale
    number: float
    surfaces: frozenset[str]

    def apply(self, value: float) -> float:
        if self.mode == "value":
            return self.number
        if self.mode == "offset":
            return value + self.number
        return value * self.number


@dataclass(slots=True)
class AssetView:
    """The view faults of one asset, in the order they started."""

    biases: list[Bias] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)
    #: surface → the snapshot shown since the freeze began (the first freeze wins)
    frozen: dict[str, Snapshot] = field(default_factory=dict)

    def present(self, snap: Snapshot, surface: str) -> Snapshot:
        held = self.frozen.get(surface)
        if held is not None:
            return held
        return self.live(snap, surface)

    def live(self, snap: Snapshot, surface: str) -> Snapshot:
        """``snap`` with bias and overrides (not the freeze)."""
        if self.biases:
            bias = sum(b.at(snap.sim_time_s) for b in self.biases)
            # A BMS estimate stays within 0..100 % however wrong it is.
            pct = min(max(snap.soc_pct + bias, 0.0), 100.0)
            snap = snap._replace(soc_pct=pct, soc_mwhr=pct / 100.0 * snap.capacity_mwhr)
        for o in self.overrides:
            if surface in o.surfaces:
                old = getattr(snap, o.field)
                base = math.nan if old is None else float(old)
                fields: dict[str, Any] = {o.field: o.apply(base)}
                snap = snap._replace(**fields)
        return snap


def override_of(params: dict[str, object]) -> Override:
    mode = next(m for m in ("value", "offset", "scale") if params.get(m) is not None)
    raw = params[mode]
    number = override_number(raw) if isinstance(raw, (int, float, str)) else math.nan
    surfaces = params.get("surfaces")
    return Override(
        str(params["field"]),
        mode,
        number,
        frozenset(surfaces) if isinstance(surfaces, list) else frozenset({"modbus", "rest"}),
    )
