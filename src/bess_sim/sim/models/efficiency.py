"""One-way conversion efficiency (DESIGN §10) and the loss it implies."""

from __future__ import annotations

from .curve import Curve


def efficiency_at(curve: Curve | None, constant: float, power_mw: float, rating_mw: float) -> float:
    """η at ``|power_mw|``: the curve of |P| / rating in % when given, else the constant."""
    if curve is None or rating_mw <= 0.0:
        return constant
    return curve(abs(power_mw) / rating_mw * 100.0)


def loss_mwhr(discharged_mwhr: float, charged_mwhr: float, eff: float) -> float:
    """Conversion loss for terminal energies: discharging draws E/η from the cells
    (loss E(1/η − 1)), charging stores Eη (loss E(1 − η)) — the P_loss of DESIGN §10."""
    return discharged_mwhr * (1.0 / eff - 1.0) + charged_mwhr * (1.0 - eff)
