"""One thermal node per asset (DESIGN §10): C dT/dt = P_loss − (T − T_amb)/R.

With P_loss constant over a sub-step the ODE has the closed form
T(h) = T_∞ + (T₀ − T_∞)·exp(−h/τ), T_∞ = T_amb + R·P_loss, τ = R·C; it is used instead of
an Euler step, so temperature never overshoots T_∞ (stable for any step length)."""

from __future__ import annotations

import math

from .params import ThermalParams


def step_temperature(
    p: ThermalParams, temp_c: float, ambient_c: float, loss_mw: float, dt_s: float
) -> float:
    """Temperature after ``dt_s`` seconds with ``loss_mw`` (MJ/s) of heat put into the node."""
    t_inf = ambient_c + p.resistance_k_per_mw * loss_mw
    tau_s = p.resistance_k_per_mw * p.heat_capacity_mj_per_k  # K/MW × MJ/K = s
    if tau_s <= 0.0:
        return t_inf
    return t_inf + (temp_c - t_inf) * math.exp(-dt_s / tau_s)


def derate_factor(p: ThermalParams | None, temp_c: float | None) -> float:
    """1 below derate_start_c, falling linearly to 0 at derate_end_c."""
    if p is None or temp_c is None or temp_c <= p.derate_start_c:
        return 1.0
    if temp_c >= p.derate_end_c:
        return 0.0
    return 1.0 - (temp_c - p.derate_start_c) / (p.derate_end_c - p.derate_start_c)
