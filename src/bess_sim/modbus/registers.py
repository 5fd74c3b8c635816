"""Pure register codec (DESIGN §5): values ↔ 16-bit registers. No pymodbus here.

- Types uint16, int16, uint32, int32, float32; ``raw * scale = value``; 32-bit values in the
  map-wide word order (big = high word first) unless a point overrides it. Bytes inside a
  register are always big-endian (Modbus application protocol v1.1b3 §4.2).
- Encoding never raises: out-of-range values saturate (an int16 of 40000 is 32767), NaN
  becomes 0 for integer types, a finite float beyond float32 becomes ±FLT_MAX.
- :class:`ImageEncoder` precompiles a whole table (one ``struct`` call per object) so that the
  input registers of 10,000 assets can be refreshed every tick.
- :class:`HoldingDecoder` turns a holding-register write into a command, or into the
  Modbus exception code to answer (0x02 address problems, 0x03 bad values).
- :func:`check_request` checks the structure and quantities of a request PDU.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, Generic, TypeVar

from ..sim import Snapshot
from .points import Point, PointType, RegisterMap, Table, WordOrder

# Modbus exception codes (application protocol spec v1.1b3 §7).
ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

FLOAT32_MAX = 3.4028234663852886e38

# Function codes served (everything else answers 0x01).
FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
FC_READ_WRITE_MULTIPLE = 23
SUPPORTED_FUNCTION_CODES = frozenset(
    {FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE, FC_READ_WRITE_MULTIPLE}
)
# Quantity limits, application protocol spec v1.1b3 §6.3, §6.4, §6.12, §6.17.
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_RW_WRITE_REGISTERS = 121

#: Inclusive raw range of each integer type.
INT_LIMITS: dict[PointType, tuple[int, int]] = {
    PointType.UINT16: (0, 0xFFFF),
    PointType.INT16: (-0x8000, 0x7FFF),
    PointType.UINT32: (0, 0xFFFF_FFFF),
    PointType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
}
#: struct code of each type (big-endian bytes).
_STRUCT: dict[PointType, str] = {
    PointType.UINT16: "H",
    PointType.INT16: "h",
    PointType.UINT32: "I",
    PointType.INT32: "i",
    PointType.FLOAT32: "f",
}


# --------------------------------------------------------------------------- single values
def to_raw(ptype: PointType, scale: float, value: float) -> int | float:
    """Engineering value → raw number for ``ptype`` (``value / scale``), saturated."""
    if ptype is PointType.FLOAT32:
        raw = value / scale
        if math.isnan(raw) or math.isinf(raw):
            return raw
        return min(max(raw, -FLOAT32_MAX), FLOAT32_MAX)
    lo, hi = INT_LIMITS[ptype]
    if math.isnan(value):
        return 0
    raw = value / scale
    if raw >= hi:
        return hi
    if raw <= lo:
        return lo
    return round(raw)


def encode_value(
    ptype: PointType, value: float, scale: float = 1.0, word_order: WordOrder = WordOrder.BIG
) -> list[int]:
    """Registers carrying ``value`` (saturating, never raises)."""
    data = struct.pack(">" + _STRUCT[ptype], to_raw(ptype, scale, value))
    regs = list(struct.unpack(f">{len(data) // 2}H", data))
    if word_order is WordOrder.LITTLE and len(regs) == 2:
        regs.reverse()
    return regs


def decode_value(
    ptype: PointType,
    registers: Sequence[int],
    scale: float = 1.0,
    word_order: WordOrder = WordOrder.BIG,
) -> float:
    """Engineering value (``raw * scale``) of the registers of one point. Integer types with
    scale 1 give an ``int``."""
    regs = list(registers[: ptype.width])
    if len(regs) != ptype.width:
        raise ValueError(f"{ptype} needs {ptype.width} registers, got {len(regs)}")
    if word_order is WordOrder.LITTLE and len(regs) == 2:
        regs.reverse()
    raw = struct.unpack(">" + _STRUCT[ptype], struct.pack(f">{len(regs)}H", *regs))[0]
    if scale == 1.0:
        return raw  # type: ignore[no-any-return]
    return float(raw * scale)


def encode_point(point: Point, value: float) -> list[int]:
    return encode_value(point.type, value, point.scale, point.word_order)


def decode_point(point: Point, registers: Sequence[int]) -> float:
    return decode_value(point.type, registers, point.scale, point.word_order)


# --------------------------------------------------------------------------- table images
_T = TypeVar("_T")

#: Python type of each telemetry / command field, to decide what needs converting.
_INT_FIELDS = frozenset({"status", "alarms", "heartbeat", "fault_reset"})
_DATETIME_FIELDS = frozenset({"timestamp"})
#: Sources that may be None (DESIGN §10: temperature_c without a thermal model): NaN on the
#: wire for float32 (the usual "not available" of float registers), 0 for integer points.
_OPTIONAL_FIELDS = frozenset({"temperature_c"})
_NAN = float("nan")


def _unix_seconds(ts: datetime) -> float:
    return ts.timestamp()


class ImageEncoder(Generic[_T]):
    """Encodes every point of one table from an object's attributes (named like the points'
    ``source``) into the table's registers, 0..size-1; gaps between points read 0.

    Precompiled: one ``attrgetter`` fetches all sources, a few fix-ups scale/round the points
    that need it, then one ``struct.pack`` + one ``struct.unpack`` (+ one ``itemgetter`` when
    some point uses little word order). That is ~15* cheaper than per-value helpers
    (DESIGN §9). Values that do not fit (int overflow, NaN for an int) take a slow path that
    saturates, so encoding never raises.
    """

    def __init__(self, points: Iterable[Point], size: int | None = None) -> None:
        pts = sorted(points, key=lambda p: p.address)
        self.points: tuple[Point, ...] = tuple(pts)
        self.size = max((p.end for p in pts), default=0) if size is None else size
        fmt = [">"]
        pos = 0
        fixups: list[tuple[int, Callable[[Any], Any]]] = []
        swaps: list[int] = []
        for i, p in enumerate(pts):
            if p.address > pos:
                fmt.append(f"{(p.address - pos) * 2}x")  # pad bytes pack as zeros
            fmt.append(_STRUCT[p.type])
            pos = p.end
            if p.width == 2 and p.word_order is WordOrder.LITTLE:
                swaps.append(p.address)
            fix = _fixup(p)
            if fix is not None:
                fixups.append((i, fix))
        if self.size > pos:
            fmt.append(f"{(self.size - pos) * 2}x")
        if pos > self.size:
            raise ValueError(f"points reach register {pos - 1}, past the image size {self.size}")
        self._pack = struct.Struct("".join(fmt)).pack
        self._unpack = struct.Struct(f">{self.size}H").unpack
        self._repack = struct.Struct(f">{self.size}H").pack
        names = [p.source for p in pts]
        getter = attrgetter(*names) if names else None
        # attrgetter of one name returns the value itself, not a 1-tuple.
        if getter is not None and len(names) == 1:
            single = getter
            self._get: Callable[[Any], tuple[Any, ...]] = lambda obj: (single(obj),)
        elif getter is not None:
            self._get = getter
        else:
            self._get = lambda obj: ()
        self._fixups = tuple(fixups)
        perm = list(range(self.size))
        for a in swaps:
            perm[a], perm[a + 1] = perm[a + 1], perm[a]
        self._perm: Callable[[tuple[int, ...]], tuple[int, ...]] | None = (
            itemgetter(*perm) if swaps and self.size > 1 else None
        )

    def pack(self, obj: _T) -> bytes:
        """The table image of ``obj`` as bytes (2 per register, before word-order swaps).

        This is what the tick stores per asset: an immutable value swapped in by one
        assignment, so a reader sees one snapshot or the next, never a mix (no torn 32-bit
        values). Decoding into registers is left to the (rarer) reads."""
        values = list(self._get(obj))
        try:
            for i, fix in self._fixups:
                values[i] = fix(values[i])
            return self._pack(*values)
        except (struct.error, OverflowError, ValueError, TypeError):
            return self._pack(*self._saturated(obj))

    def registers(self, image: bytes) -> tuple[int, ...]:
        """Registers 0..size-1 of a :meth:`pack` image, in wire order."""
        regs: tuple[int, ...] = self._unpack(image)
        perm = self._perm
        return regs if perm is None else perm(regs)

    def wire(self, image: bytes) -> bytes:
        """A :meth:`pack` image in wire order (word-order swaps applied), for slicing straight
        into a read response (modbus/fastpath.py)."""
        perm = self._perm
        if perm is None:
            return image
        return self._repack(*perm(self._unpack(image)))

    def encode(self, obj: _T) -> tuple[int, ...]:
        """Registers 0..size-1 for ``obj``."""
        return self.registers(self.pack(obj))

    def _saturated(self, obj: _T) -> list[int | float]:
        values = list(self._get(obj))
        out: list[int | float] = []
        for p, v in zip(self.points, values, strict=True):
            scale = p.scale
            if v is None:
                v = _NAN
            if isinstance(v, datetime):
                v = _unix_seconds(v) / scale
                scale = 1.0
                if p.type is not PointType.FLOAT32 and math.isfinite(v):
                    v = math.floor(v)
            out.append(to_raw(p.type, scale, float(v)))
        return out


def _fixup(p: Point) -> Callable[[Any], Any] | None:
    """Conversion a source value needs before ``struct.pack`` (None: packs as is)."""
    scale = p.scale
    if p.source in _DATETIME_FIELDS:
        return _TimestampFixup(scale, p.type is not PointType.FLOAT32)
    if p.source in _OPTIONAL_FIELDS:
        ptype = p.type
        return lambda v: to_raw(ptype, scale, _NAN if v is None else v)
    if p.type is PointType.FLOAT32:
        return None if scale == 1.0 else (lambda v: v / scale)
    if scale == 1.0 and p.source in _INT_FIELDS:
        return None  # already ints (Snapshot.status / alarms are plain ints)
    return lambda v: round(v / scale)


class _TimestampFixup:
    """datetime → unix seconds / scale. All snapshots of one tick share one datetime object
    (Fleet.advance), so the last conversion is reused by identity: ~0.5 us saved per asset."""

    __slots__ = ("_last", "_last_value", "_scale", "_whole")

    def __init__(self, scale: float, whole: bool) -> None:
        self._scale = scale
        self._whole = whole
        self._last: datetime | None = None
        self._last_value: float = 0.0

    def __call__(self, ts: datetime) -> float:
        if ts is self._last:
            return self._last_value
        v = _unix_seconds(ts) / self._scale
        # Whole seconds of the snapshot: floor, not round (12:00:00.6 is still 12:00:00).
        value: float = math.floor(v) if self._whole else v
        self._last, self._last_value = ts, value
        return value


def input_encoder(register_map: RegisterMap) -> ImageEncoder[Snapshot]:
    """Encoder of the input table from a :class:`~bess_sim.sim.Snapshot`."""
    return ImageEncoder(register_map.table(Table.INPUT), register_map.size(Table.INPUT))


@dataclass(frozen=True, slots=True)
class HoldingState:
    """What the holding registers echo: the command state in effect (DESIGN §5)."""

    setpoint_mw: float
    duration_s: float
    heartbeat: int
    watchdog_timeout_s: float
    fault_reset: int = 0
    setpoint_mvar: float = 0.0  # DESIGN §10, holding 8


def holding_encoder(register_map: RegisterMap) -> ImageEncoder[HoldingState]:
    return ImageEncoder(register_map.table(Table.HOLDING), register_map.size(Table.HOLDING))


# --------------------------------------------------------------------------- holding writes
@dataclass(frozen=True, slots=True)
class HoldingWrite:
    """The commands carried by one holding-register write (None = not written)."""

    setpoint_mw: float | None = None
    duration_s: float | None = None
    heartbeat: int | None = None
    watchdog_timeout_s: float | None = None
    fault_reset: bool = False
    setpoint_mvar: float | None = None  # DESIGN §10: write → dispatch with this mvar


@dataclass(frozen=True, slots=True)
class WriteError:
    """A write to refuse with Modbus exception ``code``; ``reason`` is for the log."""

    code: int
    reason: str


class HoldingDecoder:
    """Decides what a write of ``registers`` at ``address`` means (FC06/FC16/FC23)."""

    def __init__(self, register_map: RegisterMap) -> None:
        self.points = tuple(sorted(register_map.table(Table.HOLDING), key=lambda p: p.address))
        self.size = register_map.size(Table.HOLDING)
        # register address → the holding point covering it
        self._at: dict[int, Point] = {}
        for p in self.points:
            for a in range(p.address, p.end):
                self._at[a] = p

    def decode(self, address: int, registers: Sequence[int]) -> HoldingWrite | WriteError:
        end = address + len(registers)
        if not registers:
            return WriteError(ILLEGAL_DATA_VALUE, "no registers written")
        touched: list[Point] = []
        for a in range(address, end):
            p = self._at.get(a)
            if p is None:
                return WriteError(ILLEGAL_DATA_ADDRESS, f"holding register {a} is not mapped")
            if p.address < address or p.end > end:
                return WriteError(
                    ILLEGAL_DATA_ADDRESS,
                    f"write {address}..{end - 1} covers only part of {p.type} point "
                    f"'{p.name}' ({p.address}..{p.end - 1})",
                )
            if not touched or touched[-1] is not p:
                touched.append(p)
        setpoints: list[tuple[Point, float]] = []
        fields: dict[str, Any] = {}
        for p in touched:
            off = p.address - address
            value = decode_point(p, registers[off : off + p.width])
            if not math.isfinite(value):
                return WriteError(ILLEGAL_DATA_VALUE, f"'{p.name}': {value} is not a finite number")
            src = p.source
            if src == "setpoint_mw":
                setpoints.append((p, float(value)))
            elif src == "duration_s" or src == "watchdog_timeout_s":
                if value < 0:
                    return WriteError(ILLEGAL_DATA_VALUE, f"'{p.name}' must be >= 0, got {value:g}")
                fields[src] = float(value)
            elif src == "heartbeat":
                fields[src] = round(value)
            elif src == "setpoint_mvar":
                fields[src] = float(value)
            elif src == "fault_reset":
                # 1 clears a trip; 0 is accepted as a no-op so that a master may write the
                # whole holding block back (read-modify-write); anything else is a mistake.
                if value not in (0, 1):
                    return WriteError(
                        ILLEGAL_DATA_VALUE, f"'{p.name}': write 1 to clear a trip, got {value:g}"
                    )
                fields[src] = value == 1
        if setpoints:
            mw = _one_setpoint(setpoints)
            if isinstance(mw, WriteError):
                return mw
            fields["setpoint_mw"] = mw
        return HoldingWrite(**fields)


def _resolution(p: Point) -> float:
    return 0.0 if p.type is PointType.FLOAT32 else abs(p.scale)


def _one_setpoint(setpoints: list[tuple[Point, float]]) -> float | WriteError:
    """Several setpoint points in one write (float32 and *10) must agree within the coarser
    one's resolution; the finest one is used. Disagreement is ambiguous → 0x03."""
    setpoints.sort(key=lambda pv: _resolution(pv[0]))
    best_point, best = setpoints[0]
    for p, v in setpoints[1:]:
        if abs(v - best) > _resolution(p) / 2 + 1e-9:
            return WriteError(
                ILLEGAL_DATA_VALUE,
                f"setpoints disagree: '{best_point.name}' = {best:g}, '{p.name}' = {v:g}",
            )
    return best


# --------------------------------------------------------------------------- requests
def check_request(fc: int, pdu: bytes) -> int | None:
    """Structure and quantity checks of a request PDU (function code first); the exception
    code to answer, or None. pymodbus's decoder rejects a quantity outside 1..125 by failing
    to decode (it would answer 0x01); the spec (§6.3, §6.4, §6.12, §6.17) requires 0x03."""
    n = len(pdu)
    if fc in (FC_READ_HOLDING, FC_READ_INPUT):
        if n != 5:
            return ILLEGAL_DATA_VALUE
        address = int.from_bytes(pdu[1:3], "big")
        count = int.from_bytes(pdu[3:5], "big")
        if not 1 <= count <= MAX_READ_REGISTERS:
            return ILLEGAL_DATA_VALUE
        if address + count > 0x10000:
            return ILLEGAL_DATA_ADDRESS
        return None
    if fc == FC_WRITE_SINGLE:
        return None if n == 5 else ILLEGAL_DATA_VALUE
    if fc == FC_WRITE_MULTIPLE:
        if n < 6:
            return ILLEGAL_DATA_VALUE
        address = int.from_bytes(pdu[1:3], "big")
        count = int.from_bytes(pdu[3:5], "big")
        if not 1 <= count <= MAX_WRITE_REGISTERS or pdu[5] != 2 * count or n != 6 + 2 * count:
            return ILLEGAL_DATA_VALUE
        return ILLEGAL_DATA_ADDRESS if address + count > 0x10000 else None
    if fc == FC_READ_WRITE_MULTIPLE:
        if n < 10:
            return ILLEGAL_DATA_VALUE
        r_address = int.from_bytes(pdu[1:3], "big")
        r_count = int.from_bytes(pdu[3:5], "big")
        w_address = int.from_bytes(pdu[5:7], "big")
        w_count = int.from_bytes(pdu[7:9], "big")
        if (
            not 1 <= r_count <= MAX_READ_REGISTERS
            or not 1 <= w_count <= MAX_RW_WRITE_REGISTERS
            or pdu[9] != 2 * w_count
            or n != 10 + 2 * w_count
        ):
            return ILLEGAL_DATA_VALUE
        if r_address + r_count > 0x10000 or w_address + w_count > 0x10000:
            return ILLEGAL_DATA_ADDRESS
        return None
    return ILLEGAL_FUNCTION
