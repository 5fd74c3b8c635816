"""The DESIGN §10 model step for many assets at once (numpy columns), for the common case.

The per-asset path (:meth:`bess_sim.sim.models.AssetModel.step` through the fleet) is the
reference. This module repeats its arithmetic operation for operation on arrays, so an asset
stepped here ends in the very same floats (IEEE-754 ``+ - * / sqrt`` are correctly rounded in
numpy as in Python; ``exp`` is taken from :func:`math.exp` element by element because numpy's
own may differ in the last bit; curves are evaluated with the same formula as
:class:`~bess_sim.sim.models.curve.Curve`, not ``np.interp``). tests/sim/test_columnar.py
compares both paths field by field on random fleets.

It covers a tick of one sub-step (``dt_s`` ≤ 1 s, or a model with the exact closed form) with
no event inside: no dispatch end or watchdog expiry, no trip, no device fault, a finite
setpoint. An asset for which the step itself turns out not to be the simple case — its power
ramp crosses zero, it reaches an SOC bound, or it reaches trip_c — is flagged ``ok = False``
and the caller steps it on the per-asset path from its unchanged state. Measured with
``python -m bench --only model`` (bench/RESULTS.md): 10,000 assets with every effect on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .models import AssetModel
from .models.asset import MAX_SUBSTEP_S
from .models.curve import Curve
from .physics import SOC_EPS_MWH

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_S_PER_H = 3600.0
_STATUS_DEADBAND_MW = 0.1  # DESIGN §3.5 (the same constant as the fleet's snapshots)


def _col(models: Sequence[AssetModel], get: Callable[[AssetModel], float]) -> F:
    return np.fromiter((get(m) for m in models), np.float64, len(models))


def _flag(models: Sequence[AssetModel], get: Callable[[AssetModel], bool]) -> B:
    return np.fromiter((get(m) for m in models), np.bool_, len(models))


class _CurveGroups:
    """One curve per asset (or none), evaluated per group of assets sharing an equal curve."""

    def __init__(self, curves: Sequence[Curve | None]) -> None:
        by_curve: dict[Curve, list[int]] = {}
        for i, c in enumerate(curves):
            if c is not None:
                by_curve.setdefault(c, []).append(i)
        self.groups = [
            (np.asarray(c.xs, np.float64), np.asarray(c.ys, np.float64), np.asarray(ix))
            for c, ix in by_curve.items()
        ]
        self.present = np.zeros(len(curves), np.bool_)
        for _, _, ix in self.groups:
            self.present[ix] = True

    def evaluate(self, x: F, default: F | float) -> F:
        """``curve(x)`` where an asset has a curve, ``default`` elsewhere."""
        out = np.array(np.broadcast_to(default, x.shape), np.float64)
        for xs, ys, ix in self.groups:
            out[ix] = _curve(xs, ys, x[ix])
        return out


def _curve(xs: F, ys: F, x: F) -> F:
    # Curve.__call__: flat outside, else y0 + (y1 - y0) * (x - x0) / (x1 - x0) with
    # i = bisect_right(xs, x) — the same expression, so the same rounding.
    i = np.clip(np.searchsorted(xs, x, side="right"), 1, len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    inner = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return np.where(x <= xs[0], ys[0], np.where(x >= xs[-1], ys[-1], inner))


def _ramp_toward(x: F, target: F, rate: F, dt_s: float) -> F:
    step = rate * dt_s
    return np.where(target > x, np.minimum(target, x + step), np.maximum(target, x - step))


def _headroom(s_max: F, other: F) -> F:
    return np.sqrt(np.maximum(s_max * s_max - other * other, 0.0))


def _clamp_abs(x: F, limit: F) -> F:
    return np.minimum(np.maximum(x, -limit), limit)


class ModelColumns:
    """The constants of a list of §10 asset models (no device fault), one array each."""

    def __init__(self, models: Sequence[AssetModel]) -> None:
        self.n = n = len(models)
        self.capacity = _col(models, lambda m: m.spec.capacity_mwhr)
        self.max_mw = _col(models, lambda m: m.spec.max_mw)
        self.min_mw = _col(models, lambda m: m.spec.min_mw)
        self.soc_min = _col(models, lambda m: m.lim.soc_min_mwhr)
        self.soc_max = _col(models, lambda m: m.lim.soc_max_mwhr)
        self.ramp = _col(models, lambda m: m.lim.ramp_mw_per_s)
        self.eff = _col(models, lambda m: m.lim.efficiency)
        self.rating = _col(models, lambda m: m.rating_mw)
        self.sd = _col(models, lambda m: m.sd_mwh_per_s)
        self.dis_factor = _col(models, lambda m: m.dis_factor)
        self.chg_factor = _col(models, lambda m: m.chg_factor)
        self.exact = _flag(models, lambda m: m.exact)
        params = [m.params for m in models]
        self.eff_curve = _CurveGroups([p.efficiency_curve for p in params])
        self.dis_taper = _CurveGroups([p.discharge_taper for p in params])
        self.chg_taper = _CurveGroups([p.charge_taper for p in params])
        zero = np.zeros(n, np.float64)
        reactive = [p.reactive for p in params]
        self.has_r = np.fromiter((r is not None for r in reactive), np.bool_, n)
        self.prio_q = np.fromiter(
            (r is not None and r.priority == "q" for r in reactive), np.bool_, n
        )
        self.s_max, self.q_min, self.q_max = (
            np.fromiter((0.0 if r is None else getattr(r, k) for r in reactive), np.float64, n)
            if self.has_r.any()
            else zero
            for k in ("s_max_mva", "q_min_mvar", "q_max_mvar")
        )
        fr = [p.frequency_response for p in params]
        self.has_f = np.fromiter((f is not None for f in fr), np.bool_, n)
        self.nominal, self.deadband, self.droop_pct, self.f_max = (
            np.fromiter((1.0 if f is None else getattr(f, k) for f in fr), np.float64, n)
            for k in ("nominal_hz", "deadband_hz", "droop_pct", "max_mw")
        )
        th = [p.thermal for p in params]
        self.has_th = np.fromiter((t is not None for t in th), np.bool_, n)
        self.th_ambient, self.heat_cap, self.resistance, self.d_start, self.d_end, self.trip = (
            np.fromiter((1.0 if t is None else getattr(t, k) for t in th), np.float64, n)
            for k in (
                "ambient_c",
                "heat_capacity_mj_per_k",
                "resistance_k_per_mw",
                "derate_start_c",
                "derate_end_c",
                "trip_c",
            )
        )

    # ------------------------------------------------------------------ pieces
    def derate(self, temp: F) -> F:
        """thermal.derate_factor (1 without a thermal model)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            falling = 1.0 - (temp - self.d_start) / (self.d_end - self.d_start)
        return np.where(
            ~self.has_th | (temp <= self.d_start),
            1.0,
            np.where(temp >= self.d_end, 0.0, falling),
        )

    def available(self, soc: F, temp: F, mw: F, mvar: F) -> tuple[F, F, F]:
        """AssetModel.available for untripped assets, and the thermal derate factor."""
        soc_pct = soc / self.capacity * 100.0
        derate = self.derate(temp)
        d_taper = np.minimum(np.maximum(self.dis_taper.evaluate(soc_pct, 100.0) / 100.0, 0.0), 1.0)
        c_taper = np.minimum(np.maximum(self.chg_taper.evaluate(soc_pct, 100.0) / 100.0, 0.0), 1.0)
        d_taper = np.where(self.dis_taper.present, d_taper, 1.0)
        c_taper = np.where(self.chg_taper.present, c_taper, 1.0)
        dis = self.max_mw * d_taper * derate * self.dis_factor
        chg = self.min_mw * c_taper * derate * self.chg_factor
        dis = np.where((mw >= 0.0) & (soc <= self.soc_min + SOC_EPS_MWH), 0.0, dis)
        chg = np.where((mw <= 0.0) & (soc >= self.soc_max - SOC_EPS_MWH), 0.0, chg)
        s_lim = np.where(self.prio_q, _headroom(self.s_max, mvar), self.s_max)
        dis = np.where(self.has_r, np.minimum(dis, s_lim), dis)
        chg = np.where(self.has_r, np.maximum(chg, -s_lim), chg)
        return dis, chg + 0.0, derate

    def droop(self, frequency_hz: float) -> F:
        """frequency.droop_mw for every asset (0 without frequency response)."""
        if not math.isfinite(frequency_hz):
            return np.zeros(self.n, np.float64)
        dev = frequency_hz - self.nominal
        excess = np.abs(dev) - self.deadband
        with np.errstate(invalid="ignore", divide="ignore"):
            dp = -np.copysign(excess, dev) / (self.droop_pct / 100.0 * self.nominal) * self.rating
        dp = np.minimum(np.maximum(dp, -self.f_max), self.f_max)
        return np.where(self.has_f & (excess > 0.0) & (self.droop_pct > 0.0), dp, 0.0)


@dataclass(frozen=True, slots=True)
class Stepped:
    """New state and snapshot values per asset, as Python lists (the caller builds snapshots);
    ``ok[i]`` False: step asset i on the per-asset path instead."""

    ok: list[bool]
    soc_mwhr: list[float]
    current_mw: list[float]
    current_mvar: list[float]
    temperature_c: list[float]
    soc_pct: list[float]
    status: list[int]
    extra_alarms: list[int]  # SOC_LOW / SOC_HIGH / DERATED bits
    available_discharge_mw: list[float]
    available_charge_mw: list[float]


def step(
    c: ModelColumns,
    state: dict[str, F],
    eligible: B,
    frequency_hz: float,
    ambient_c: float | None,
    h: float,
    alarm_bits: tuple[int, int, int],
    status_codes: tuple[int, int, int],
) -> Stepped:
    """One tick of ``h`` seconds for every asset of ``c`` (``state``: soc, mw, mvar, temp —
    NaN without thermal —, sp_mw, sp_mvar). ``alarm_bits`` = (SOC_LOW, SOC_HIGH, DERATED),
    ``status_codes`` = (IDLE, CHARGING, DISCHARGING)."""
    with np.errstate(all="ignore"):  # ineligible rows may hold anything; never read back
        return _step(c, state, eligible, frequency_hz, ambient_c, h, alarm_bits, status_codes)


def _step(
    c: ModelColumns,
    state: dict[str, F],
    eligible: B,
    frequency_hz: float,
    ambient_c: float | None,
    h: float,
    alarm_bits: tuple[int, int, int],
    status_codes: tuple[int, int, int],
) -> Stepped:
    soc, mw, mvar, temp = state["soc"], state["mw"], state["mvar"], state["temp"]
    sp_mw, sp_mvar = state["sp_mw"], state["sp_mvar"]
    ok = eligible & np.isfinite(sp_mw) & (c.exact | (h <= MAX_SUBSTEP_S))
    # Reactive goal, and Q first when it has priority (AssetModel.step).
    q = np.minimum(np.maximum(sp_mvar, c.q_min), c.q_max)
    q_goal = np.where(c.has_r, np.minimum(np.maximum(q, -c.s_max), c.s_max), 0.0)
    mvar = np.where(c.prio_q, _ramp_toward(mvar, q_goal, c.ramp, h), mvar)
    # Target: setpoint + droop, rated limits, then available limits (AssetModel.target).
    sp = np.minimum(np.maximum(sp_mw + c.droop(frequency_hz), c.min_mw), c.max_mw)
    dis_av, chg_av, _ = c.available(soc, temp, mw, mvar)
    target = np.minimum(np.maximum(sp, chg_av), dis_av)
    # η at the mid-point power of the step (efficiency.efficiency_at).
    eff = c.eff
    if c.eff_curve.groups:
        mid = _ramp_toward(mw, target, c.ramp, h / 2.0)
        curve_eff = c.eff_curve.evaluate(np.abs(mid) / c.rating * 100.0, c.eff)
        eff = np.where(c.eff_curve.present & (c.rating > 0.0), curve_eff, c.eff)
    # physics.integrate, the cases without a zero crossing or an SOC bound reached.
    idle = (mw == target) & (mw == 0.0)
    const = (mw == target) & ~idle
    ramping = mw != target
    diff = target - mw
    ramp_s = np.abs(diff) / c.ramp
    slope = np.copysign(c.ramp, diff)
    ramp_end = np.minimum(ramp_s, h)
    p_end = np.where(ramp_s <= h, target, mw + slope * ramp_end)
    p_end = np.where(np.abs(p_end - target) < 1e-12, target, p_end)
    crosses = ((mw > 0.0) & (p_end < 0.0)) | ((mw < 0.0) & (p_end > 0.0))
    ok &= ~(ramping & (crosses | (ramp_end <= 0.0) | (c.ramp <= 0.0)))
    d1 = np.where(const, h, ramp_end)
    pb1 = np.where(const, mw, p_end)
    soc1, dis1, chg1, hit1 = _piece(c, eff, soc, 0.0, 0.0, d1, mw, pb1, ~idle)
    second = ramping & (h > ramp_end)
    soc2, dis2, chg2, hit2 = _piece(c, eff, soc1, dis1, chg1, h - ramp_end, target, target, second)
    ok &= ~(hit1 | hit2)
    new_mw = np.where(idle, 0.0, np.where(second, target, pb1))
    new_soc = np.where(idle, soc, np.minimum(np.maximum(soc2, c.soc_min), c.soc_max))
    discharged = np.where(idle, 0.0, dis2)
    charged = np.where(idle, 0.0, chg2)
    # Reactive after P (AssetModel.step).
    q_only = c.has_r & ~c.prio_q
    new_mw = np.where(c.prio_q, _clamp_abs(new_mw, _headroom(c.s_max, mvar)), new_mw)
    q_goal2 = _clamp_abs(q_goal, _headroom(c.s_max, new_mw))
    mvar_p = _ramp_toward(mvar, q_goal2, c.ramp, h)
    mvar_p = _clamp_abs(mvar_p, _headroom(c.s_max, new_mw))
    new_mvar = np.where(q_only, mvar_p, mvar)
    # Self-discharge, never below soc_min.
    floor = np.minimum(new_soc, c.soc_min)
    new_soc = np.where(c.sd > 0.0, np.maximum(new_soc - c.sd * h, floor), new_soc)
    # One thermal node, closed form (thermal.step_temperature); trip_c → per-asset path.
    new_temp = temp
    if c.has_th.any():
        loss_mw = (discharged * (1.0 / eff - 1.0) + charged * (1.0 - eff)) * _S_PER_H / h
        ambient = c.th_ambient if ambient_c is None else np.full(c.n, ambient_c)
        t_inf = ambient + c.resistance * loss_mw
        tau = c.resistance * c.heat_cap
        decay = np.fromiter(map(math.exp, (-h / tau).tolist()), np.float64, c.n)
        stepped = np.where(tau <= 0.0, t_inf, t_inf + (temp - t_inf) * decay)
        new_temp = np.where(c.has_th, stepped, temp)
        ok &= ~(c.has_th & (new_temp >= c.trip))
    new_soc = np.minimum(np.maximum(new_soc, 0.0), c.capacity)
    # Snapshot values (the fleet's _snapshot for an untripped §10 asset).
    avail_dis, avail_chg, derate = c.available(new_soc, new_temp, new_mw, new_mvar)
    low, high, derated = alarm_bits
    extra = (
        np.where(new_soc <= c.soc_min + SOC_EPS_MWH, low, 0)
        | np.where(new_soc >= c.soc_max - SOC_EPS_MWH, high, 0)
        | np.where(derate < 1.0, derated, 0)
    )
    idle_code, charging, discharging = status_codes
    status = np.where(
        new_mw > _STATUS_DEADBAND_MW,
        discharging,
        np.where(new_mw < -_STATUS_DEADBAND_MW, charging, idle_code),
    )
    return Stepped(
        ok.tolist(),
        new_soc.tolist(),
        new_mw.tolist(),
        new_mvar.tolist(),
        new_temp.tolist(),
        (new_soc / c.capacity * 100.0).tolist(),
        status.tolist(),
        extra.tolist(),
        avail_dis.tolist(),
        avail_chg.tolist(),
    )


def _piece(
    c: ModelColumns,
    eff: F,
    soc: F,
    discharged: Any,
    charged: Any,
    duration: F | float,
    pa: F,
    pb: F,
    active: B,
) -> tuple[F, F, F, B]:
    """One linear piece of physics.integrate (no bound reached; ``hit`` where one is)."""
    energy = (pa + pb) * 0.5 * duration / _S_PER_H
    pos = active & (energy > 0.0)
    neg = active & (energy < 0.0)
    room_dis = np.maximum(soc - c.soc_min, 0.0) * eff
    room_chg = np.maximum(c.soc_max - soc, 0.0) / eff
    hit = (pos & (energy > room_dis)) | (neg & (-energy > room_chg))
    soc = np.where(pos, soc - energy / eff, np.where(neg, soc - energy * eff, soc))
    discharged = np.where(pos, discharged + energy, discharged)
    charged = np.where(neg, charged - energy, charged)
    return soc, discharged, charged, hit
