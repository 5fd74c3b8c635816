"""Device faults as per-asset inputs of the physics (DESIGN §11: ``derate``, ``stuck``).

The fault room (:mod:`bess_sim.faults`) decides which faults are in effect; the fleet only
receives one :class:`DeviceFault` per asset (or None) and folds it into the constants the tick
already reads (:class:`~bess_sim.sim.physics.Limits`, the §10 model's available limits), so
the tick itself has no fault branches.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import AssetSpec
from .physics import Limits


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """What the device faults in effect do to one asset.

    ``discharge_pct`` / ``charge_pct``: the available limit in each direction as % of the
    rated one (a ``derate``; several derates multiply). ``stuck``: the power stage ignores new
    targets, so MW stays where it is (modelled as a ramp rate of 0: energy still integrates,
    and an SOC bound still forces MW to 0 as the BMS would).
    """

    discharge_pct: float = 100.0
    charge_pct: float = 100.0
    stuck: bool = False

    @property
    def derated(self) -> bool:
        return self.discharge_pct < 100.0 or self.charge_pct < 100.0


def faulted_limits(spec: AssetSpec, fault: DeviceFault | None) -> Limits:
    """The physics constants of ``spec`` with ``fault`` applied (rated ones for None)."""
    lim = Limits.of(spec)
    if fault is None:
        return lim
    return Limits(
        lim.min_mw * fault.charge_pct / 100.0,
        lim.max_mw * fault.discharge_pct / 100.0,
        lim.soc_min_mwhr,
        lim.soc_max_mwhr,
        0.0 if fault.stuck else lim.ramp_mw_per_s,
        lim.efficiency,
    )
