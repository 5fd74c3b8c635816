"""Holding-register writes into the SunSpec block → a command, or the Modbus exception code
to answer (DESIGN §5, §13). Nothing is applied here; a refused write changes nothing.

- Every register written must belong to a point and cover it whole; the marker, model headers
  and read-only points (access R in the model definition) → 0x02 (illegal data address).
- Writable (RW) points that bess-sim does not act on (702 settings, 704 power-factor, limit,
  reactive and ramp controls, 802 SetOp/SetInvState/reserve SoC, 1 DA) → 0x02 as well: to
  the master they are addresses this device does not implement.
- Values outside a point's meaning (WSetEna ∉ {0, 1}, WSetMod ≠ WATTS, AlmRst ∉ {0, 1},
  WSetRvrtTms > 65535 s, a not-implemented value) → 0x03 (illegal data value). A WSet outside
  [min_mw, max_mw] is refused by the dispatch validation (DESIGN §4), also 0x03.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import types
from .image import SunSpecDevice
from .layout import BASE_ADDRESS

ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

#: Points a SunSpec master may write (model, name). ISSUE 10: add (704, "VarSetEna") and
#: (704, "VarSet") once the reactive setpoint exists.
WRITABLE = frozenset(
    {(704, "WSetEna"), (704, "WSetMod"), (704, "WSet"), (704, "WSetRvrtTms"),
     (802, "CtrlHb"), (802, "AlmRst")}
)  # fmt: skip

#: Largest watchdog timeout: the native holding register carrying it is a uint16 (DESIGN §5).
MAX_REVERT_S = 65535


@dataclass(frozen=True, slots=True)
class SunSpecWrite:
    """A decoded write; ``None`` fields were not written."""

    wset_ena: int | None = None
    wset_mod: int | None = None
    wset_w: float | None = None
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
    fields: dict[str, int | float] = {}
    for p in covered:
        label = f"{p.model_id}.{p.name}"
        if p.access != "RW":
            return SunSpecWriteError(ILLEGAL_DATA_ADDRESS, f"{label} is read-only")
        if p.key not in WRITABLE:
            return SunSpecWriteError(ILLEGAL_DATA_ADDRESS, f"{label} is not implemented")
        raw = types.decode(p.type, values[p.address - address : p.end - address])
        if raw is None:
            return SunSpecWriteError(ILLEGAL_DATA_VALUE, f"{label}: not-implemented value")
        fields[p.name] = raw
    if "WSetEna" in fields and fields["WSetEna"] not in (0, 1):
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "704.WSetEna must be 0 or 1")
    if "WSetMod" in fields and fields["WSetMod"] != 1:
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "704.WSetMod: only 1 (WATTS) is supported")
    if "AlmRst" in fields and fields["AlmRst"] not in (0, 1):
        return SunSpecWriteError(ILLEGAL_DATA_VALUE, "802.AlmRst must be 0 or 1")
    if fields.get("WSetRvrtTms", 0) > MAX_REVERT_S:
        return SunSpecWriteError(
            ILLEGAL_DATA_VALUE, f"704.WSetRvrtTms must be <= {MAX_REVERT_S} s (0 = off)"
        )
    wset_w: float | None = None
    if "WSet" in fields:
        exp = device.scale_exponent(704, "WSet") or 0
        wset_w = float(fields["WSet"]) * 10.0**exp
    return SunSpecWrite(
        wset_ena=_int(fields.get("WSetEna")),
        wset_mod=_int(fields.get("WSetMod")),
        wset_w=wset_w,
        rvrt_tms_s=None if "WSetRvrtTms" not in fields else float(fields["WSetRvrtTms"]),
        ctrl_hb=_int(fields.get("CtrlHb")),
        alm_rst=_int(fields.get("AlmRst")),
    )


def _int(value: int | float | None) -> int | None:
    return None if value is None else int(value)
