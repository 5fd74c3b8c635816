"""What each SunSpec point says about an asset: the one place that maps bess-sim's state to
SunSpec point values (DESIGN §13). Values are engineering values in SunSpec units (W, Wh, %,
Hz, s), enum/bitfield integers or strings; ``None`` reads as SunSpec's not-implemented value.
Scale factors are chosen once per asset (:func:`scales_for`).

Sign: SunSpec W is + for export (discharge), − for import (charge), which is bess-sim's +MW =
discharge (DESIGN §3), so MW × 10⁶ = W with no sign change.

Reactive power (DESIGN §10): 701 Var is the snapshot's ``current_mvar`` (0 for an asset
without ``reactive``); the 704 reactive setpoint (VarSetEna, VarSetMod, VarSetPri, VarSet) is
implemented only for assets with ``reactive`` in assets.yaml and reads as not implemented
otherwise, as does 701 TmpCab without a thermal model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from ..sim import AssetSpec, Snapshot, Status
from ..sim.models.params import ReactiveParams

Value = int | float | str | None
Values = dict[tuple[int, str], Value]

W_PER_MW = 1_000_000.0
WH_PER_MWH = 1_000_000.0

# Alarm bits of the native alarm word (DESIGN §5, §10).
_SOC_LOW, _SOC_HIGH, _WATCHDOG, _TRIP = 1, 2, 4, 8
_OVER_TEMPERATURE = 32  # DESIGN §10 bit5

MANUFACTURER = "bess-sim"


@cache
def _software_version() -> str:
    # Read once per process: importlib.metadata parses the package's METADATA file on every
    # call (~0.7 ms), which was 16 of 35 s of a 10,000-asset start-up (cProfile).
    try:
        return version("bess-sim")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0"


@dataclass(frozen=True, slots=True)
class Scales:
    """Scale factors (powers of ten) of one asset, fixed at start-up so that clients can cache
    them: the smallest exponent whose 16-bit field holds the asset's rating without overflow."""

    w: int  # W in 701/702/802 (int16/uint16 fields)
    wset: int  # 704 WSet (int32)
    wh: int  # 713 WHRtg/WHAvail, 802 WHRtg (uint16)
    va: int = 0  # VA, Var in 701/702 (int16/uint16): max(P rating, S_max) must fit
    varset: int = 0  # 704 VarSet (int32)
    wset_pct: int = -2  # 704 WSetPct (int16, % of WMax): 0.01 % unless the charge side needs more
    pct: int = -2  # SoC/SoH/DoD: 0.01 % steps, 100 % = 10000 fits uint16
    hz: int = -3  # 701 Hz is uint32: mHz
    tmp: int = -1  # 701 temperatures, 0.1 °C


def _exponent(max_abs: float, limit: int, floor: int) -> int:
    """Smallest sf ≥ floor with ``max_abs / 10**sf <= limit``."""
    sf = floor
    while max_abs / 10.0**sf > limit:
        sf += 1
    return sf


def rating_w(spec: AssetSpec) -> float:
    """Largest power the asset can carry either way, in W."""
    return max(spec.max_mw, -spec.min_mw) * W_PER_MW


def reactive_of(spec: AssetSpec) -> ReactiveParams | None:
    """The asset's reactive capability (DESIGN §10), None without one."""
    return None if spec.model is None else spec.model.reactive


def rating_va(spec: AssetSpec) -> float:
    """Largest apparent (or reactive) power the asset can show, in VA: |P| never exceeds the
    active rating and P² + Q² is curtailed to S_max², so VA ≤ max(rating, S_max)."""
    reactive = reactive_of(spec)
    s_max = 0.0 if reactive is None else reactive.s_max_mva * W_PER_MW
    return max(rating_w(spec), s_max)


def scales_for(spec: AssetSpec) -> Scales:
    """Scale factors of ``spec``: int16 W fields limit ±32767, uint16 Wh fields 65534 (0xFFFF
    means not implemented), int32 WSet 2³¹−1; W resolution never finer than 1 W. WSetPct is
    % of WMax (= max_mw): a full charge setpoint is 100 × −min_mw / max_mw %."""
    # Capped at 10⁴ × WMax (SF ≤ 2): a near-zero max_mw would otherwise give an infinite span;
    # beyond that a full-charge percentage saturates (the watts mode still reaches it).
    ratio = -spec.min_mw / spec.max_mw if spec.max_mw > 0 else 1.0
    pct_span = 100.0 * min(max(ratio, 1.0), 1e4)
    return Scales(
        w=_exponent(rating_w(spec), 32767, 0),
        wset=_exponent(rating_w(spec), 0x7FFF_FFFF, 0),
        wh=_exponent(spec.capacity_mwhr * WH_PER_MWH, 0xFFFE, 0),
        va=_exponent(rating_va(spec), 32767, 0),
        varset=_exponent(rating_va(spec), 0x7FFF_FFFF, 0),
        wset_pct=_exponent(pct_span, 32767, -2),
    )


#: 704 WSetMod symbols (model_704.json): W_MAX_PCT 0 "percentage of maximum active power"
#: (WSetPct), WATTS 1 "in watts" (WSet).
WSET_MOD_W_MAX_PCT = 0
WSET_MOD_WATTS = 1
#: 704 VarSetMod symbol VARS 4 "Reactive power is in vars" (VarSet): the one that matches the
#: MVAr setpoint of DESIGN §10. The percentage modes 0–3 (of WMax, VarMax, VarAvail, VAMax,
#: all through VarSetPct) are not implemented.
VARSET_MOD_VARS = 4
#: 704 VarSetPri symbols: ACTIVE 0, REACTIVE 1 = assets.yaml reactive.priority p / q.
VARSET_PRI = {"p": 0, "q": 1}


@dataclass(frozen=True, slots=True)
class ControlEcho:
    """Command state the SunSpec controls read back (704 and 802)."""

    wset_ena: int  # 704 WSetEna as last written (0 disabled, 1 enabled)
    wset_w: float  # 704 WSet: staged value while disabled, else the setpoint in effect
    rvrt_tms_s: float  # 704 WSetRvrtTms = the watchdog timeout (DESIGN §4), 0 = off
    ctrl_hb: int  # 802 CtrlHb = the last heartbeat written (native or SunSpec)
    wset_mod: int = WSET_MOD_WATTS  # 704 WSetMod as last written
    varset_ena: int = 0  # 704 VarSetEna as last written
    varset_var: float = 0.0  # 704 VarSet: staged value while disabled, else setpoint_mvar


def static_values(spec: AssetSpec, sc: Scales) -> Values:
    """Points that never change while the simulator runs (nameplate, scale factors)."""
    reactive = reactive_of(spec)
    values: Values = {
        # Model 1 (common). SN: the asset UUID without hyphens (32 hex characters = the 16
        # registers of SN exactly; the hyphenated form would be cut).
        (1, "Mn"): MANUFACTURER,
        (1, "Md"): spec.name,
        (1, "Opt"): None,
        (1, "Vr"): _software_version(),
        (1, "SN"): spec.id.replace("-", ""),
        (1, "DA"): spec.modbus.unit_id,
        # Model 701 (DER AC measurement): the PCS is modelled as one balanced three-phase
        # connection; per-phase values, voltages and currents are not modelled.
        (701, "ACType"): 2,  # THREE_PHASE
        (701, "DERMode"): 1,  # bit0 GRID_FOLLOWING
        (701, "W_SF"): sc.w,
        (701, "VA_SF"): sc.va,
        (701, "Var_SF"): sc.va,
        (701, "Hz_SF"): sc.hz,
        (701, "Tmp_SF"): sc.tmp,
        # Model 702 (DER capacity): ratings from assets.yaml.
        (702, "WMaxRtg"): spec.max_mw * W_PER_MW,
        (702, "WChaRteMaxRtg"): -spec.min_mw * W_PER_MW,
        (702, "WDisChaRteMaxRtg"): spec.max_mw * W_PER_MW,
        # CtrlModes bit1 FIXED_W (704 WSet), bit2 FIXED_VAR (704 VarSet) with reactive.
        (702, "CtrlModes"): (1 << 1) | (0 if reactive is None else 1 << 2),
        (702, "WMax"): spec.max_mw * W_PER_MW,
        (702, "W_SF"): sc.w,
        (702, "VA_SF"): sc.va,
        (702, "Var_SF"): sc.va,
        # Model 704 (DER AC controls): WSet / WSetPct, and VarSet in vars with reactive.
        (704, "WSet_SF"): sc.wset,
        (704, "WSetPct_SF"): sc.wset_pct,
        (704, "VarSet_SF"): sc.varset,
        # Model 713 (DER storage capacity).
        (713, "WHRtg"): spec.capacity_mwhr * WH_PER_MWH,
        (713, "WH_SF"): sc.wh,
        (713, "Pct_SF"): sc.pct,
        # Model 802 (battery base).
        (802, "WHRtg"): spec.capacity_mwhr * WH_PER_MWH,
        (802, "SoCMax"): spec.soc_max_pct,
        (802, "SoCMin"): spec.soc_min_pct,
        (802, "LocRemCtl"): 0,  # REMOTE
        (802, "Typ"): 4,  # LITHIUM_ION
        (802, "Evt2"): 0,
        (802, "EvtVnd2"): 0,
        (802, "WHRtg_SF"): sc.wh,
        (802, "WChaDisChaMax_SF"): sc.w,
        (802, "SoC_SF"): sc.pct,
        (802, "DoD_SF"): sc.pct,
        (802, "SoH_SF"): sc.pct,
        (802, "W_SF"): sc.w,
    }
    if reactive is not None:
        # 702 reactive ratings = the configured capability; Abs is a magnitude (uint16).
        values.update({
            (702, "VAMaxRtg"): reactive.s_max_mva * W_PER_MW,
            (702, "VarMaxInjRtg"): reactive.q_max_mvar * W_PER_MW,
            (702, "VarMaxAbsRtg"): -reactive.q_min_mvar * W_PER_MW,
            (702, "VAMax"): reactive.s_max_mva * W_PER_MW,
            (702, "VarMaxInj"): reactive.q_max_mvar * W_PER_MW,
            (702, "VarMaxAbs"): -reactive.q_min_mvar * W_PER_MW,
            (704, "VarSetMod"): VARSET_MOD_VARS,
            (704, "VarSetPri"): VARSET_PRI[reactive.priority],
        })  # fmt: skip
    return values


def _optional(snap: Snapshot, field: str) -> float | None:
    """A DESIGN §10 snapshot field when the snapshot has it and it is set, else None."""
    value = getattr(snap, field, None)
    return None if value is None else float(value)


def live_values(spec: AssetSpec, snap: Snapshot, ctl: ControlEcho) -> Values:
    """Points that follow each tick's snapshot and the command state: the one function that
    maps a :class:`Snapshot` to SunSpec. Everything comes from ``snap`` (one tick), so a read
    never mixes two ticks."""
    status = snap.status
    alarms = snap.alarms
    fault = status == Status.FAULT
    w = snap.current_mw * W_PER_MW
    soc = snap.soc_pct
    if fault:
        cha_st = 1  # OFF
    elif status == Status.DISCHARGING:
        cha_st = 3
    elif status == Status.CHARGING:
        cha_st = 4
    elif alarms & _SOC_LOW or soc <= spec.soc_min_pct:
        cha_st = 2  # EMPTY
    elif alarms & _SOC_HIGH or soc >= spec.soc_max_pct:
        cha_st = 5  # FULL
    else:
        cha_st = 6  # HOLDING
    # WHAvail: energy the grid can still receive: stored energy above soc_min, less the
    # one-way conversion loss (discharging E at the grid removes E / efficiency, DESIGN §3).
    wh_avail = max(snap.soc_mwhr - spec.soc_min_mwhr, 0.0) * spec.efficiency * WH_PER_MWH
    # DESIGN §10: reactive power, frequency, temperature and available limits.
    mvar = _optional(snap, "current_mvar")
    var = None if mvar is None else mvar * W_PER_MW
    hz = _optional(snap, "frequency_hz")
    temp_c = _optional(snap, "temperature_c")
    avail_cha = _optional(snap, "available_charge_mw")  # <= 0, like min_mw
    avail_dis = _optional(snap, "available_discharge_mw")
    no_q = reactive_of(spec) is None
    wset_pct = None if spec.max_mw <= 0 else ctl.wset_w / (spec.max_mw * W_PER_MW) * 100.0
    cha_max_w = -(spec.min_mw if avail_cha is None else avail_cha) * W_PER_MW
    dis_max_w = (spec.max_mw if avail_dis is None else avail_dis) * W_PER_MW
    return {
        # 701
        (701, "St"): 0 if fault else 1,  # OFF / ON
        (701, "InvSt"): 6 if fault else (7 if status == Status.IDLE else 3),
        (701, "ConnSt"): 0 if fault else 1,  # a trip opens the breaker
        (701, "Alrm"): (1 << 7) if alarms & _OVER_TEMPERATURE else 0,  # bit7 OVER_TEMP
        (701, "W"): w,
        (701, "VA"): abs(w) if var is None else math.hypot(w, var),
        (701, "Var"): var,
        (701, "Hz"): hz,
        (701, "TmpCab"): temp_c,  # the thermal node is the cabinet; None without one
        # 702 settings = what the asset can do now (DESIGN §10 available limits)
        (702, "WChaRteMax"): cha_max_w,
        (702, "WDisChaRteMax"): dis_max_w,
        # 713
        (713, "WHAvail"): wh_avail,
        (713, "SoC"): soc,
        (713, "SoH"): 100.0,  # no degradation model: state of health is constant
        (713, "Sta"): 2 if fault else (1 if alarms & (_SOC_LOW | _SOC_HIGH) else 0),
        # 802
        (802, "SoC"): soc,
        (802, "DoD"): 100.0 - soc,
        (802, "SoH"): 100.0,
        (802, "ChaSt"): cha_st,
        (802, "State"): 99 if fault else 3,  # FAULT / CONNECTED
        # Evt1 bit1 OVER_TEMP_ALARM; the native alarm word (bit0 soc_low, bit1 soc_high,
        # bit2 watchdog, bit3 trip, bit4 derated, bit5 over_temperature) as vendor events.
        (802, "Evt1"): (1 << 1) if alarms & _OVER_TEMPERATURE else 0,
        (802, "EvtVnd1"): alarms,
        # Hb "incremented every second": whole simulated seconds, wrapping at 16 bits.
        (802, "Hb"): int(snap.sim_time_s) & 0xFFFF if math.isfinite(snap.sim_time_s) else 0,
        (802, "W"): w,
        (802, "WChaRteMax"): cha_max_w,
        (802, "WDisChaRteMax"): dis_max_w,
        (802, "SetOp"): 2 if fault else 1,  # DISCONNECT / CONNECT
        (802, "SetInvState"): 1 if fault else 3,  # INVERTER_STOPPED / INVERTER_STARTED
        (802, "AlmRst"): 0,
        # 704 / 802 command echo
        (704, "WSetEna"): ctl.wset_ena,
        (704, "WSetMod"): ctl.wset_mod,
        (704, "WSet"): ctl.wset_w,
        # the same setpoint as % of WMax (702 WMax = max_mw), whichever WSetMod is selected
        (704, "WSetPct"): wset_pct,
        (704, "WSetRvrtTms"): ctl.rvrt_tms_s,
        (704, "VarSetEna"): None if no_q else ctl.varset_ena,
        (704, "VarSet"): None if no_q else ctl.varset_var,
        (802, "CtrlHb"): ctl.ctrl_hb,
    }
