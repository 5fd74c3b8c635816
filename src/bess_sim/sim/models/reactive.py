"""Reactive power within the P/Q capability circle (DESIGN §10)."""

from __future__ import annotations

import math

from .params import ReactiveParams


def q_target(p: ReactiveParams, setpoint_mvar: float) -> float:
    """Reactive setpoint clamped to [q_min, q_max] and to ±S_max."""
    q = min(max(setpoint_mvar, p.q_min_mvar), p.q_max_mvar)
    return min(max(q, -p.s_max_mva), p.s_max_mva)


def headroom(s_max_mva: float, other: float) -> float:
    """Largest |x| with x² + other² ≤ S²."""
    return math.sqrt(max(s_max_mva * s_max_mva - other * other, 0.0))


def clamp_abs(x: float, limit: float) -> float:
    return min(max(x, -limit), limit)


def ramp_toward(x: float, target: float, rate_per_s: float, dt_s: float) -> float:
    """Move ``x`` toward ``target`` by at most ``rate_per_s · dt_s`` (Q ramps at the MW rate)."""
    step = rate_per_s * dt_s
    if target > x:
        return min(target, x + step)
    return max(target, x - step)
