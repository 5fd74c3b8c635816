"""Holding-register writes into the SunSpec block → a command, or the Modbus exception code
to answer (DESIGN §5, §13). Nothing is applied here; a refused write changes nothing.

- Every register written must belong to a point and cover it whole; the marker, model headers
  and read-only points (access R in the model definition) → 0x02 (illegal data address).
- Writable (RW) points that bess-sim does not act on (702 settings, 704 power-factor, limit,
  reversion, percent-reactive and ramp controls, 802 SetOp/SetInvState/reserve SoC, 1 DA),
  and the 704 reactive points of an asset without ``reactive`` → 0x02 as well: to the master
  they are addresses this device does not implement.
- Values outside a point's meaning (WSetEna/VarSetEna ∉ {0, 1}, WSetMod ∉ {0 W_MAX_PCT,
  1 WATTS} or W_MAX_PCT with WMax = 0, VarSetMod ≠ 4 VARS, VarSetPri ≠ the configured
  priority, AlmRst ∉ {0, 1}, WSetRvrtTms > 65535 s, a not-implemented value) → 0x03 (illegal
  data value). A setpoint outside the limits is refused by the dispatch validation (DESIGN
  §4, §10), also 0x03.

Symbols from pysunspec2's ``model_704.json``: WSetMod W_MAX_PCT 0 ("active power setting is
percentage of maximum active power", WSetPct) / WATTS 1 ("in watts", WSet); VarSetMod VARS 4
("reactive power is in vars", VarSet); VarSetPri ACTIVE 0 / REACTIVE 1 / VENDOR 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import types
from .image import SunSpecDevice
from .layout import BASE_ADDRESS
from .live import VARSET_MOD_VARS, VARSET_PRI, WSET_MOD_WATTS, reactive_of

ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

#: The 704 reactive setpoint points, writable on assets with ``reactive`` (DESIGN §10).
REACTIVE_WRITABLE = frozenset(
    {(704, "VarSetEna"), (704, "VarSetMod"), (704, "VarSetPri"), (704, "VarSet")}
)

#: Points a SunSpec master may write (model, name).
WRITABLE = frozenset(
    {(704, "WSetEna"), (704, "WSetMod"), (704, "WSet"), (704, "WSetPct"), (704, "WSetRvrtTms"),
     (802, "CtrlHb"), (802, "AlmRst")}
) | REACTIVE_WRITABLE  # fmt: skip

#: Largest watchdog timeout: the native holding register carrying it is a uint16 (DESIGN §5).
MAX_REVERT_S = 65535


@dataclass(frozen=True, slots=True)
class SunSpecWrite:
    """A decoded write; ``None`` fields were not written."""

    wset_ena: int | None = None
    wset_mod: int | None = None
    wset_w: float | None = None
    wset_pct: float | None = None  # % of WMax, scaled by WSetPct_SF
    varset_ena: int | None = None
    varset_var: float | None = None  # var, scaled by VarSet_SF
    rvrt_tms_s: float | None = None
    ctrl_hb: int | None = None
    alm_rst: int | None = None


@dataclass(frozen=True, slots=True)
class SunSpecWriteError:
    code: int
    reason: str


def decode_write(
    device: SunSpecDevice, address: int, values: list[int]
) -> SunSpecWrite | SunSpecWriteError:
    """Decode registers ``values`` written at absolute ``address``."""
    lay = device.layout
    end = address + len(values)
    if address < BASE_ADDRESS or end > BASE_ADDRESS + lay.size:
        return SunSpecWriteError(
            ILLEGAL_DATA_ADDRESS,
            f"registers {address}..{end - 1} leave the SunSpec block "
            f"{BASE_ADDRESS}..{BASE_ADDRESS + lay.size - 1}",
        )
    covered = [p for p in lay.points if p.address < end and address < p.end]
    for p in covered:
        if p.address < address or p.end > end:
            return SunSpecWriteError(
                ILLEGAL_DATA_ADDRESS,
                f"write covers only part of {p.model_id}.{p.name} ({p.address}..{p.end - 1})",
            )
    if sum(p.size for p in covered) != len(values):
        return SunSpecWriteError(
            ILLEGAL_DATA_ADDRESS, "the SunSpec marker and end model are read-only"
        )
    spec = device.spec
    reactive = reactive_of(spec)
    fields: dict[str, int | float] = {}
    for p in covered:
        label = f"{p.model_id}.{p.name}"
        if p.access != "RW":
            return SunSpecWriteError(ILLEGAL_DATA_ADDRESS, f"{label} is read-only")
        if p.key not in WRITABLE:
            return SunSpecWriteError(ILLEGAL_DATA_ADDRESS, f"{label} is not implemented")
        if p.key in REACTIVE_WRITABLE and reactive is None:
            return SunSpecWriteError(
                ILLEGAL_DATA_ADDRESS,
                f"{label} is not implemented: the asset has no 'reactive' in assets.yaml",
            )
        raw = types.decode(p.type, values[p.address - address : p.end - address])
        if raw is None:
            return SunSpecWriteError(ILLEGAL_DATA_VALUE, f"{label}: not-implemented value")
        fields[p.name] = raw
    if "WSetEna" in fields and fields["WSetEna"] not in (0, 1):
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "704.WSetEna must be 0 or 1")
    if "WSetMod" in fields and fields["WSetMod"] not in (0, 1):
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, "704.WSetMod must be 0 (W_MAX_PCT) or 1 (WATTS)"
        )
    if fields.get("WSetMod", WSET_MOD_WATTS) != WSET_MOD_WATTS and spec.max_mw <= 0:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, "704.WSetMod 0 (W_MAX_PCT) needs WMax > 0; max_mw is 0"
        )
    if "VarSetEna" in fields and fields["VarSetEna"] not in (0, 1):
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "704.VarSetEna must be 0 or 1")
    if "VarSetMod" in fields and fields["VarSetMod"] != VARSET_MOD_VARS:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, f"704.VarSetMod: only {VARSET_MOD_VARS} (VARS) is supported"
        )
    if reactive is not None and "VarSetPri" in fields:
        pri = VARSET_PRI[reactive.priority]
        if fields["VarSetPri"] != pri:
            return SunSpecWriteError(
                ILLEGAL_DATA_VALUE,
                f"704.VarSetPri is {pri} (reactive.priority {reactive.priority!r} in "
                "assets.yaml) and cannot be changed over Modbus",
            )
    if "AlmRst" in fields and fields["AlmRst"] not in (0, 1):
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "802.AlmRst must be 0 or 1")
    if fields.get("WSetRvrtTms", 0) > MAX_REVERT_S:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, f"704.WSetRvrtTms must be <= {MAX_REVERT_S} s (0 = off)"
        )
    return SunSpecWrite(
        wset_ena=_int(fields.get("WSetEna")),
        wset_mod=_int(fields.get("WSetMod")),
        wset_w=_scaled(device, fields, "WSet"),
        wset_pct=_scaled(device, fields, "WSetPct"),
        varset_ena=_int(fields.get("VarSetEna")),
        varset_var=_scaled(device, fields, "VarSet"),
        rvrt_tms_s=None if "WSetRvrtTms" not in fields else float(fields["WSetRvrtTms"]),
        ctrl_hb=_int(fields.get("CtrlHb")),
        alm_rst=_int(fields.get("AlmRst")),
    )


def _scaled(device: SunSpecDevice, fields: dict[str, int | float], name: str) -> float | None:
    """Engineering value of a written 704 point: raw × 10^SF."""
    if name not in fields:
        return None
    exp = device.scale_exponent(704, name) or 0
    return float(fields[name]) * 10.0**exp


def _int(value: int | float | None) -> int | None:
    return None if value is None else int(value)
