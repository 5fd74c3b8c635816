"""Droop frequency response (DESIGN §10):
ΔP = −(|f − f0| − deadband) · sign(f − f0) / (droop/100 · f0) · rating, clamped to ±max_mw,
zero inside the deadband. Under-frequency gives +ΔP (discharge)."""

from __future__ import annotations

import math

from .params import FrequencyParams


def droop_mw(p: FrequencyParams | None, frequency_hz: float, rating_mw: float) -> float:
    if p is None or not math.isfinite(frequency_hz):
        return 0.0
    dev = frequency_hz - p.nominal_hz
    excess = abs(dev) - p.deadband_hz
    if excess <= 0.0 or p.droop_pct <= 0.0:
        return 0.0
    dp = -math.copysign(excess, dev) / (p.droop_pct / 100.0 * p.nominal_hz) * rating_mw
    return min(max(dp, -p.max_mw), p.max_mw)
