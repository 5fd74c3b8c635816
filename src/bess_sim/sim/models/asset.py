"""Composition of the v2 effects for one asset (DESIGN §10).

Per tick of ``dt_s``:

1. Available limits: rated limit × taper(SOC) × thermal derate, 0 in a direction blocked by
   an SOC bound or a trip, and within S_max (less the Q in effect when Q has priority).
2. Target = setpoint + droop ΔP, clamped to rated limits, then to the available limits.
3. P ramps and energy integrates with :func:`bess_sim.sim.physics.integrate` (exact for a
   constant η), with η taken from the efficiency curve at the sub-step's mid-point power.
4. Q ramps at the MW rate toward its setpoint; the S circle reduces the non-priority part.
5. Self-discharge removes capacity × pct/100 per simulated day (never below soc_min).
6. Temperature follows the closed-form solution of the one-node model (:mod:`.thermal`);
   at trip_c the asset trips.

When η is constant and neither taper, thermal nor droop is on, the tick is one exact step
(the §3 closed form). Otherwise it is cut into equal sub-steps of at most
:data:`MAX_SUBSTEP_S`: one tick of 60 s is then the same computation as sixty ticks of 1 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .. import physics
from ..device_fault import DeviceFault, faulted_limits
from ..model import AssetSpec
from .efficiency import efficiency_at, loss_mwhr
from .frequency import droop_mw
from .params import ModelParams
from .reactive import clamp_abs, headroom, q_target, ramp_toward
from .taper import taper_factor
from .thermal import derate_factor, step_temperature

#: Longest sub-step when a state-dependent effect is on (DESIGN §10: "at most 1 s").
MAX_SUBSTEP_S = 1.0
_S_PER_DAY = 86_400.0
_S_PER_H = 3600.0


@dataclass(frozen=True, slots=True)
class GridState:
    """Fleet-wide grid conditions. ``ambient_c`` None: each asset keeps its own ambient_c."""

    frequency_hz: float
    ambient_c: float | None = None


class ModelStep(NamedTuple):
    """Result of :meth:`AssetModel.step` (plain values: built per asset per tick)."""

    soc_mwhr: float
    current_mw: float
    current_mvar: float
    temperature_c: float | None
    hit_bits: int  # Alarm.SOC_LOW / SOC_HIGH reached inside the tick
    over_temperature: bool  # trip_c reached inside the tick (the asset is now tripped)
    discharged_mwhr: float
    charged_mwhr: float


class AssetModel:
    """The v2 physics of one asset; constants precomputed from its spec."""

    __slots__ = (
        "chg_factor",
        "dis_factor",
        "exact",
        "lim",
        "params",
        "rating_mw",
        "sd_mwh_per_s",
        "spec",
    )

    def __init__(
        self, spec: AssetSpec, params: ModelParams, fault: DeviceFault | None = None
    ) -> None:
        self.spec = spec
        self.params = params
        # Device faults (DESIGN §11): a derate scales the available limits, stuck zeroes the
        # ramp rate (sim/device_fault.py); None leaves the §10 model as it was.
        self.lim = faulted_limits(spec, fault)
        self.dis_factor = 1.0 if fault is None else fault.discharge_pct / 100.0
        self.chg_factor = 1.0 if fault is None else fault.charge_pct / 100.0
        self.rating_mw = max(spec.max_mw, -spec.min_mw)
        self.sd_mwh_per_s = (
            spec.capacity_mwhr * params.self_discharge_pct_per_day / 100.0 / _S_PER_DAY
        )
        self.exact = (
            params.efficiency_curve is None
            and params.charge_taper is None
            and params.discharge_taper is None
            and params.thermal is None
            and params.frequency_response is None
        )

    # ------------------------------------------------------------------ limits
    def initial_temperature_c(self) -> float | None:
        th = self.params.thermal
        return None if th is None else th.initial_c

    def available(
        self,
        soc_mwhr: float,
        temperature_c: float | None,
        tripped: bool,
        current_mw: float = 0.0,
        current_mvar: float = 0.0,
    ) -> tuple[float, float]:
        """``(available_discharge_mw >= 0, available_charge_mw <= 0)`` (DESIGN §10)."""
        if tripped:
            return 0.0, 0.0
        spec = self.spec
        p = self.params
        lim = self.lim
        soc_pct = soc_mwhr / spec.capacity_mwhr * 100.0
        derate = derate_factor(p.thermal, temperature_c)
        dis = spec.max_mw * taper_factor(p.discharge_taper, soc_pct) * derate * self.dis_factor
        chg = spec.min_mw * taper_factor(p.charge_taper, soc_pct) * derate * self.chg_factor
        # Same bound rule as physics.target_for: blocked unless already moving away.
        if current_mw >= 0.0 and soc_mwhr <= lim.soc_min_mwhr + physics.SOC_EPS_MWH:
            dis = 0.0
        if current_mw <= 0.0 and soc_mwhr >= lim.soc_max_mwhr - physics.SOC_EPS_MWH:
            chg = 0.0
        r = p.reactive
        if r is not None:
            s_lim = headroom(r.s_max_mva, current_mvar) if r.priority == "q" else r.s_max_mva
            dis = min(dis, s_lim)
            chg = max(chg, -s_lim)
        return dis, chg + 0.0  # + 0.0: no -0.0 in telemetry

    def target(
        self,
        soc_mwhr: float,
        temperature_c: float | None,
        setpoint_mw: float,
        frequency_hz: float,
        tripped: bool,
        current_mw: float,
        current_mvar: float,
    ) -> float:
        """DESIGN §10: setpoint + droop, clamped to rated limits, then to the available ones."""
        if tripped or not math.isfinite(setpoint_mw):
            return 0.0
        sp = setpoint_mw + droop_mw(self.params.frequency_response, frequency_hz, self.rating_mw)
        sp = min(max(sp, self.spec.min_mw), self.spec.max_mw)
        dis, chg = self.available(soc_mwhr, temperature_c, False, current_mw, current_mvar)
        return min(max(sp, chg), dis)

    # ------------------------------------------------------------------ time
    def step(
        self,
        soc_mwhr: float,
        current_mw: float,
        current_mvar: float,
        temperature_c: float | None,
        setpoint_mw: float,
        setpoint_mvar: float,
        grid: GridState,
        tripped: bool,
        dt_s: float,
    ) -> ModelStep:
        """Advance the asset by ``dt_s`` simulated seconds."""
        if dt_s <= 0.0:
            return ModelStep(soc_mwhr, current_mw, current_mvar, temperature_c, 0, False, 0.0, 0.0)
        n = 1 if self.exact else max(1, math.ceil(dt_s / MAX_SUBSTEP_S - 1e-9))
        h = dt_s / n
        p = self.params
        spec = self.spec
        lim = self.lim
        th = p.thermal
        r = p.reactive
        ambient = (
            None if th is None else (grid.ambient_c if grid.ambient_c is not None else th.ambient_c)
        )
        soc, mw, mvar, temp = soc_mwhr, current_mw, current_mvar, temperature_c
        hits = 0
        over_temp = False
        dis_total = chg_total = 0.0
        for _ in range(n):
            # Reactive first when it has priority: P's target then respects the new Q.
            q_goal = 0.0 if tripped or r is None else q_target(r, setpoint_mvar)
            if r is not None and r.priority == "q":
                mvar = ramp_toward(mvar, q_goal, lim.ramp_mw_per_s, h)
            target = self.target(soc, temp, setpoint_mw, grid.frequency_hz, tripped, mw, mvar)
            eff = lim.efficiency
            if p.efficiency_curve is not None:
                # η at the mid-point power of the sub-step (the ramp is linear in time).
                mid = ramp_toward(mw, target, lim.ramp_mw_per_s, h / 2.0)
                eff = efficiency_at(p.efficiency_curve, eff, mid, self.rating_mw)
                step_lim = physics.Limits(
                    lim.min_mw,
                    lim.max_mw,
                    lim.soc_min_mwhr,
                    lim.soc_max_mwhr,
                    lim.ramp_mw_per_s,
                    eff,
                )
            else:
                step_lim = lim
            soc, mw, hit, dis, chg = physics.integrate(step_lim, soc, mw, target, h)
            hits |= hit
            dis_total += dis
            chg_total += chg
            if r is not None:
                if r.priority == "q":
                    # Ramping down can leave P outside the circle for a moment: the inverter's
                    # current limit curtails it at once.
                    mw = clamp_abs(mw, headroom(r.s_max_mva, mvar))
                else:
                    q_goal = clamp_abs(q_goal, headroom(r.s_max_mva, mw))
                    mvar = ramp_toward(mvar, q_goal, lim.ramp_mw_per_s, h)
                    mvar = clamp_abs(mvar, headroom(r.s_max_mva, mw))
            if self.sd_mwh_per_s > 0.0:
                floor = min(soc, lim.soc_min_mwhr)
                soc = max(soc - self.sd_mwh_per_s * h, floor)
            if th is not None and temp is not None and ambient is not None:
                loss_mw = loss_mwhr(dis, chg, eff) * _S_PER_H / h
                temp = step_temperature(th, temp, ambient, loss_mw, h)
                if temp >= th.trip_c and not tripped:
                    tripped = True
                    over_temp = True
        if spec.capacity_mwhr > 0.0:
            soc = min(max(soc, 0.0), spec.capacity_mwhr)
        return ModelStep(soc, mw, mvar, temp, hits, over_temp, dis_total, chg_total)
