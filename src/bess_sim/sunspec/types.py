"""SunSpec point types: register width, encoding and not-implemented values.

Values from the SunSpec Information Model Specification (v1.2, §"Unimplemented values") as
pysunspec2 states them in ``sunspec2/mb.py``: a point a device does not implement reads
0x8000 (int16, sunssf), 0xFFFF (uint16, enum16, bitfield16, count), 0 (acc*, pad, strings,
ipaddr) and so on. Encoding saturates instead of raising, like ``modbus/registers.py``.
"""

from __future__ import annotations

import math
import struct

#: struct code of each numeric SunSpec type (big-endian, Modbus byte order within a register).
STRUCT: dict[str, str] = {
    "int16": "h", "uint16": "H", "count": "H", "acc16": "H", "enum16": "H", "bitfield16": "H",
    "sunssf": "h", "pad": "H",
    "int32": "i", "uint32": "I", "acc32": "I", "enum32": "I", "bitfield32": "I", "ipaddr": "I",
    "int64": "q", "uint64": "Q", "acc64": "Q",
    "float32": "f", "float64": "d",
}  # fmt: skip

#: Raw not-implemented value of each numeric type (pysunspec2 mb.SUNS_UNIMPL_*).
NOT_IMPLEMENTED: dict[str, int] = {
    "int16": -0x8000, "uint16": 0xFFFF, "count": 0xFFFF, "acc16": 0, "enum16": 0xFFFF,
    "bitfield16": 0xFFFF, "sunssf": -0x8000, "pad": 0,
    "int32": -0x8000_0000, "uint32": 0xFFFF_FFFF, "acc32": 0, "enum32": 0xFFFF_FFFF,
    "bitfield32": 0xFFFF_FFFF, "ipaddr": 0,
    "int64": -0x8000_0000_0000_0000, "uint64": 0xFFFF_FFFF_FFFF_FFFF, "acc64": 0,
}  # fmt: skip
# float32/float64 not-implemented are NaN bit patterns (0x7FC00000 / 0x7FF8000000000000).
_FLOAT_NI = {"float32": b"\x7f\xc0\x00\x00", "float64": b"\x7f\xf8" + b"\x00" * 6}


def int_limits(ptype: str) -> tuple[int, int]:
    """Inclusive raw range of an integer type, not-implemented value excluded."""
    code = STRUCT[ptype]
    bits = struct.calcsize(code) * 8
    if code.islower():  # signed: the most negative value means not implemented
        return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1
    hi = (1 << bits) - 1
    # unsigned: all ones means not implemented, except accumulators (0 means that).
    return (0, hi) if ptype.startswith("acc") else (0, hi - 1)


def registers_of(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def encode(ptype: str, size: int, raw: int | float | str | None) -> list[int]:
    """``size`` registers holding ``raw`` (already divided by the scale factor), or the
    not-implemented value when ``raw`` is None. Integers saturate within the type."""
    if ptype == "string":
        text = "" if raw is None else str(raw)
        data = text.encode("utf-8")[: size * 2]
        return registers_of(data.ljust(size * 2, b"\x00"))
    if ptype in ("ipv6addr", "eui48"):
        return [0] * size if raw is None else registers_of(bytes(size * 2))
    code = STRUCT[ptype]
    if ptype in _FLOAT_NI:
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return registers_of(_FLOAT_NI[ptype])
        return registers_of(struct.pack(">" + code, float(raw)))
    if raw is None:
        value = NOT_IMPLEMENTED[ptype]
    else:
        lo, hi = int_limits(ptype)
        num = float(raw)
        value = 0 if math.isnan(num) else int(min(max(round(num), lo), hi))
    return registers_of(struct.pack(">" + code, value))


def decode(ptype: str, registers: list[int]) -> int | float | None:
    """Raw value of a numeric point; None for the not-implemented value."""
    data = struct.pack(f">{len(registers)}H", *registers)
    value: int | float = struct.unpack(">" + STRUCT[ptype], data)[0]
    if ptype in _FLOAT_NI:
        return None if isinstance(value, float) and math.isnan(value) else value
    if value == NOT_IMPLEMENTED[ptype] and not ptype.startswith("acc") and ptype != "pad":
        return None
    return value
