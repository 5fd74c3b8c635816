"""Per-asset physics for one tick (DESIGN §3). Pure functions of (spec, state, target, dt_s).

Power over a tick is piecewise linear: a ramp at ``ramp_rate_mw_per_min / 60`` MW/s toward
the target, then flat at the target. Energy is integrated exactly over each linear piece
(trapezoid), split where the ramp crosses zero so that each piece is all-discharge or
all-charge and the right efficiency applies. Because the integration is exact, one tick of
60 s and sixty ticks of 1 s give the same result (up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .model import ALARM_BY_BITS, Alarm, AssetSpec, PhysicalState

# SOC is compared with its bounds with this slack so that float rounding in the integration
# (relative 1e-16 of a few hundred MWh) cannot leave SOC a hair inside a bound it was clamped to.
SOC_EPS_MWH = 1e-9

_S_PER_H = 3600.0
_SOC_LOW = int(Alarm.SOC_LOW)
_SOC_HIGH = int(Alarm.SOC_HIGH)


@dataclass(frozen=True, slots=True)
class StepResult:
    state: PhysicalState
    #: SOC_LOW / SOC_HIGH when SOC reached that bound inside the tick (MW was forced to 0).
    hit_bound: Alarm
    #: energy delivered at the terminals in the tick, MWh, both >= 0
    discharged_mwhr: float
    charged_mwhr: float


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-asset constants of the physics, computed once from the spec (the tick reads them
    for every asset, so they are plain fields rather than properties)."""

    min_mw: float
    max_mw: float
    soc_min_mwhr: float
    soc_max_mwhr: float
    ramp_mw_per_s: float
    efficiency: float

    @classmethod
    def of(cls, spec: AssetSpec) -> Limits:
        return cls(
            spec.min_mw,
            spec.max_mw,
            spec.soc_min_mwhr,
            spec.soc_max_mwhr,
            spec.ramp_mw_per_s,
            spec.efficiency,
        )


def target_for(
    lim: Limits, soc_mwhr: float, setpoint_mw: float, tripped: bool, current_mw: float
) -> float:
    """DESIGN §3.1: setpoint clamped to limits, no further discharge at soc_min nor charge at
    soc_max, 0 while tripped.

    At a bound the block applies only while the asset is not already moving away from it
    (charging at soc_min, discharging at soc_max): then SOC leaves the bound at once and the
    block would last zero time. This is the continuous-time reading of §3.1 and keeps one long
    tick equal to many short ones.
    """
    if tripped or not math.isfinite(setpoint_mw):
        return 0.0
    target = min(max(setpoint_mw, lim.min_mw), lim.max_mw)
    if target > 0.0 and current_mw >= 0.0 and soc_mwhr <= lim.soc_min_mwhr + SOC_EPS_MWH:
        return 0.0
    if target < 0.0 and current_mw <= 0.0 and soc_mwhr >= lim.soc_max_mwhr - SOC_EPS_MWH:
        return 0.0
    return target


def target_mw(
    spec: AssetSpec,
    soc_mwhr: float,
    setpoint_mw: float,
    tripped: bool,
    current_mw: float = 0.0,
) -> float:
    """:func:`target_for` from an :class:`AssetSpec`."""
    return target_for(Limits.of(spec), soc_mwhr, setpoint_mw, tripped, current_mw)


def _segments(
    p0: float, target: float, ramp_mw_per_s: float, dt_s: float
) -> list[tuple[float, float, float]]:
    """Linear pieces (duration_s, p_start, p_end) covering ``dt_s``, none crossing zero."""
    pieces: list[tuple[float, float, float]] = []
    diff = target - p0
    if diff == 0.0 or ramp_mw_per_s <= 0.0:
        ramp_s = 0.0 if diff == 0.0 else math.inf
    else:
        ramp_s = abs(diff) / ramp_mw_per_s
    slope = math.copysign(ramp_mw_per_s, diff) if diff != 0.0 else 0.0
    ramp_end_s = min(ramp_s, dt_s)
    if ramp_end_s > 0.0:
        # Land exactly on the target when the ramp completes, so no rounding residue remains.
        p_end = target if ramp_s <= dt_s else p0 + slope * ramp_end_s
        if abs(p_end - target) < 1e-12:
            p_end = target
        if (p0 > 0.0 > p_end) or (p0 < 0.0 < p_end):
            zero_s = -p0 / slope
            pieces.append((zero_s, p0, 0.0))
            pieces.append((ramp_end_s - zero_s, 0.0, p_end))
        else:
            pieces.append((ramp_end_s, p0, p_end))
    if dt_s > ramp_end_s:
        pieces.append((dt_s - ramp_end_s, target, target))
    return pieces


def _time_to_energy(duration_s: float, pa: float, pb: float, energy_mwhr: float) -> float:
    """Seconds into a one-signed linear piece (|power| pa → pb, both >= 0) at which the
    delivered energy reaches ``energy_mwhr``: the root of pa·t + (pb−pa)/(2d)·t² = 3600·E,
    in the cancellation-free form 2c / (pa + sqrt(pa² + 4kc))."""
    c = energy_mwhr * _S_PER_H
    if c <= 0.0:
        return 0.0
    k = (pb - pa) / (2.0 * duration_s)
    denom = pa + math.sqrt(max(pa * pa + 4.0 * k * c, 0.0))
    if denom <= 0.0:
        return duration_s
    return min(max(2.0 * c / denom, 0.0), duration_s)


def integrate(
    lim: Limits, soc: float, p0: float, target: float, dt_s: float
) -> tuple[float, float, int, float, float]:
    """Advance one asset by ``dt_s`` simulated seconds toward ``target`` MW (DESIGN §3.2–3.4).

    Returns ``(soc_mwhr, current_mw, hit_bits, discharged_mwhr, charged_mwhr)``; ``hit_bits``
    holds Alarm.SOC_LOW / SOC_HIGH when SOC reached that bound inside the tick. Plain values,
    because the tick calls this for every asset (see :func:`step` for the typed form).

    When SOC reaches a bound inside the tick, SOC stops there and MW drops to 0 at that
    instant; the rest of the tick continues from 0 MW toward the target as §3.1 re-evaluates
    it at the bound (0 if it pushes further into the bound, unchanged if it leads away).
    """
    if dt_s <= 0.0:
        return soc, p0, 0, 0.0, 0.0
    if p0 == target:
        if p0 == 0.0:  # idle: nothing moves (the common case in a large fleet)
            return soc, 0.0, 0, 0.0, 0.0
        pieces: Sequence[tuple[float, float, float]] = ((dt_s, p0, p0),)
    else:
        pieces = _segments(p0, target, lim.ramp_mw_per_s, dt_s)
    eff = lim.efficiency
    soc_min = lim.soc_min_mwhr
    soc_max = lim.soc_max_mwhr
    discharged = 0.0
    charged = 0.0
    p_last = p0
    elapsed = 0.0
    for duration, pa, pb in pieces:
        if duration <= 0.0:
            continue
        energy = (pa + pb) * 0.5 * duration / _S_PER_H  # MWh at the terminals, signed
        hit = 0
        if energy > 0.0:
            # Discharge: SOC loses E / efficiency (one-way efficiency, DESIGN §3.3).
            room = max(soc - soc_min, 0.0) * eff  # terminal energy available before soc_min
            if energy > room:
                hit, bound, delivered = _SOC_LOW, soc_min, room
                discharged += room
            else:
                soc -= energy / eff
                discharged += energy
        elif energy < 0.0:
            # Charge: SOC gains |E| × efficiency.
            room = max(soc_max - soc, 0.0) / eff  # terminal energy accepted before soc_max
            if -energy > room:
                hit, bound, delivered = _SOC_HIGH, soc_max, room
                charged += room
            else:
                soc -= energy * eff
                charged -= energy
        if hit:
            at_s = elapsed + _time_to_energy(duration, abs(pa), abs(pb), delivered)
            r_soc, r_mw, r_hit, r_dis, r_chg = integrate(
                lim, bound, 0.0, target_for(lim, bound, target, False, 0.0), dt_s - at_s
            )
            return r_soc, r_mw, hit | r_hit, discharged + r_dis, charged + r_chg
        elapsed += duration
        p_last = pb
    soc = min(max(soc, soc_min), soc_max)
    return soc, p_last, 0, discharged, charged


def step(spec: AssetSpec, state: PhysicalState, target: float, dt_s: float) -> StepResult:
    """Typed form of :func:`integrate` for one asset."""
    soc, mw, hit, dis, chg = integrate(
        Limits.of(spec), state.soc_mwhr, state.current_mw, target, dt_s
    )
    return StepResult(PhysicalState(soc, mw), ALARM_BY_BITS[hit], dis, chg)
