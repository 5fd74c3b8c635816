"""How the 704 setpoint controls of one asset combine into one dispatch (DESIGN §4, §10, §13).

SunSpec DER 704 (pysunspec2 ``model_704.json``) gives each setpoint an enable: WSet/WSetPct
apply while WSetEna = 1 ("Set active power enable"), VarSet while VarSetEna = 1 ("Set reactive
power enable"). bess-sim has one dispatch per asset carrying both P and Q, so one write turns
into at most one dispatch (:class:`Plan`):

- a WSet (WSetMod = 1 WATTS, in W) or WSetPct (WSetMod = 0 W_MAX_PCT, in % of WMax = max_mw)
  written while WSetEna = 1, or in the write that sets it, sets the MW setpoint; one written
  while disabled is staged and applied when WSetEna goes 0 → 1;
- WSetEna = 0 ends the active-power function: the MW setpoint goes to 0 (a battery whose
  fixed-W control is off holds no power), whoever set it; nothing happens when it already is 0;
- VarSet / VarSetEna work the same way on the MVAr setpoint; VarSetEna = 0 sets it to 0;
- the component a write does not touch is kept: a VarSet keeps the MW setpoint in effect
  (and what is left of its duration, see ``modbus/sunspec_face.py``), a WSet keeps the MVAr one.

Writing the setpoint register of the mode that is not selected (WSet while WSetMod = 0,
WSetPct while WSetMod = 1) is refused (0x03) rather than stored and ignored, so an EMS that
writes the wrong register learns it at once. Pure: no fleet, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..sim import AssetSpec
from .live import W_PER_MW, WSET_MOD_W_MAX_PCT, WSET_MOD_WATTS, ControlEcho
from .writes import ILLEGAL_DATA_VALUE, SunSpecWrite, SunSpecWriteError


@dataclass(frozen=True, slots=True)
class ControlState:
    """The 704 command state a SunSpec master wrote (none of it is in the fleet)."""

    wset_ena: int = 0
    wset_mod: int = WSET_MOD_WATTS
    pending_w: float | None = None  # WSet (in W) written while WSetEna = 0
    varset_ena: int = 0
    pending_var: float | None = None  # VarSet (in var) written while VarSetEna = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """What a write does: the state afterwards and the setpoints to dispatch (None = keep the
    one in effect; both None = no dispatch). The state applies only if the dispatch is
    accepted (DESIGN §5: a rejected write changes nothing)."""

    state: ControlState
    mw: float | None
    mvar: float | None

    @property
    def dispatches(self) -> bool:
        return self.mw is not None or self.mvar is not None


def plan(
    state: ControlState,
    w: SunSpecWrite,
    spec: AssetSpec,
    setpoint_mw: float,
    setpoint_mvar: float,
) -> Plan | SunSpecWriteError:
    """The effect of write ``w`` given the setpoints in effect."""
    mod = state.wset_mod if w.wset_mod is None else w.wset_mod
    if w.wset_w is not None and mod != WSET_MOD_WATTS:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, "704.WSet is not used while WSetMod = 0 (W_MAX_PCT): write "
            "WSetPct, or WSetMod = 1 (WATTS) first",
        )  # fmt: skip
    if w.wset_pct is not None and mod != WSET_MOD_W_MAX_PCT:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, "704.WSetPct is not used while WSetMod = 1 (WATTS): write "
            "WSet, or WSetMod = 0 (W_MAX_PCT) first",
        )  # fmt: skip
    new_w = w.wset_w
    if w.wset_pct is not None:
        new_w = w.wset_pct / 100.0 * spec.max_mw * W_PER_MW  # % of 702 WMax
    ena, pending_w, w_target = _enable(
        state.wset_ena, state.pending_w, w.wset_ena, new_w, setpoint_mw * W_PER_MW
    )
    vena, pending_var, var_target = _enable(
        state.varset_ena, state.pending_var, w.varset_ena, w.varset_var, setpoint_mvar * W_PER_MW
    )
    after = replace(
        state,
        wset_ena=ena,
        wset_mod=mod,
        pending_w=pending_w,
        varset_ena=vena,
        pending_var=pending_var,
    )
    return Plan(
        after,
        None if w_target is None else w_target / W_PER_MW,
        None if var_target is None else var_target / W_PER_MW,
    )


def _enable(
    enabled: int, pending: float | None, ena: int | None, value: float | None, in_effect: float
) -> tuple[int, float | None, float | None]:
    """One setpoint with its enable: (enable after, staged value after, value to dispatch)."""
    now = enabled if ena is None else ena
    target: float | None = None
    if value is not None and now == 1:
        target = value  # written while enabled (or with the enable): takes effect at once
    elif ena == 1 and enabled == 0 and pending is not None:
        target = pending  # enabling applies what was staged while disabled
    elif ena == 0 and in_effect != 0.0:
        target = 0.0  # disabling the function releases the setpoint
    if value is not None and now == 0:
        pending = value
    elif target is not None or now == 1:
        pending = None
    return now, pending, target


def echo(
    state: ControlState,
    setpoint_mw: float,
    setpoint_mvar: float,
    rvrt_tms_s: float,
    ctrl_hb: int,
) -> ControlEcho:
    """What 704/802 read back: a staged value while its function is disabled, else the
    setpoint in effect whoever set it (REST, native map, scenario or SunSpec)."""
    wset = state.pending_w if state.pending_w is not None else setpoint_mw * W_PER_MW
    var = state.pending_var if state.pending_var is not None else setpoint_mvar * W_PER_MW
    return ControlEcho(
        state.wset_ena, wset, rvrt_tms_s, ctrl_hb, state.wset_mod, state.varset_ena, var
    )
