"""SOC taper: the power limit in each direction as a % of rating vs SOC (DESIGN §10,
OpenEMS-style: full power in mid SOC, falling toward the bound)."""

from __future__ import annotations

from .curve import Curve


def taper_factor(curve: Curve | None, soc_pct: float) -> float:
    """Fraction (0..1) of the rated limit allowed at ``soc_pct``; 1 without a taper."""
    if curve is None:
        return 1.0
    return min(max(curve(soc_pct) / 100.0, 0.0), 1.0)
