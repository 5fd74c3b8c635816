"""register_map.yaml → validated, frozen point definitions (DESIGN §5). Pure: no pymodbus."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import ConfigError, read_yaml


class Table(enum.StrEnum):
    INPUT = "input"  # FC04, read-only
    HOLDING = "holding"  # FC03 read, FC06/FC16 write


class PointType(enum.StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def width(self) -> int:
        """Registers taken by the type."""
        return 1 if self in (PointType.UINT16, PointType.INT16) else 2


class WordOrder(enum.StrEnum):
    BIG = "big"  # high word first (Modbus convention for 32-bit values; mbpoll -B)
    LITTLE = "little"  # low word first (mbpoll's default)


#: Telemetry fields an input point may publish.
INPUT_SOURCES = frozenset(
    {
        "status", "alarms", "soc_pct", "soc_mwhr", "current_mw", "setpoint_mw",
        "capacity_mwhr", "max_mw", "min_mw", "timestamp", "heartbeat",
        # DESIGN §10
        "current_mvar", "setpoint_mvar", "available_discharge_mw", "available_charge_mw",
        "temperature_c", "frequency_hz",
    }
)  # fmt: skip
#: Commands a holding point may carry.
HOLDING_SOURCES = frozenset(
    {"setpoint_mw", "duration_s", "heartbeat", "watchdog_timeout_s", "fault_reset", "setpoint_mvar"}
)


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    table: Table
    address: int
    type: PointType
    scale: float
    unit: str
    source: str
    word_order: WordOrder
    description: str = ""

    @property
    def width(self) -> int:
        return self.type.width

    @property
    def end(self) -> int:
        """One past the last register of the point."""
        return self.address + self.type.width

    @property
    def access(self) -> str:
        return "R" if self.table is Table.INPUT else "RW"


@dataclass(frozen=True, slots=True)
class RegisterMap:
    word_order: WordOrder
    points: tuple[Point, ...]
    source: str

    def table(self, table: Table) -> tuple[Point, ...]:
        return tuple(p for p in self.points if p.table is table)

    def size(self, table: Table) -> int:
        """Registers needed to hold every point of ``table``."""
        return max((p.end for p in self.points if p.table is table), default=0)


_POINT_FIELDS = {
    "name", "table", "address", "type", "scale", "unit", "source", "word_order", "description",
}  # fmt: skip


def parse_register_map(data: Any, file: str) -> RegisterMap:
    """Validate the parsed YAML of a register map file."""
    if not isinstance(data, dict):
        raise ConfigError(file, "top level must be a mapping with 'points' (and 'word_order')")
    unknown = sorted(str(k) for k in data if k not in ("word_order", "points"))
    if unknown:
        raise ConfigError(file, "unknown top-level key", field=unknown[0])
    map_order = _enum(WordOrder, data.get("word_order", "big"), file, None, "word_order")
    raw_points = data.get("points")
    if not isinstance(raw_points, list) or not raw_points:
        raise ConfigError(file, "'points' must be a non-empty list", field="points")
    points: list[Point] = []
    for i, raw in enumerate(raw_points):
        point = _parse_point(raw, i, file, map_order)
        entry = f"point '{point.name}'"
        for other in points:
            if other.name == point.name and other.table is point.table:
                raise ConfigError(file, f"duplicate {point.table} point name", entry, "name")
            if (
                other.table is point.table
                and point.address < other.end
                and other.address < point.end
            ):
                raise ConfigError(
                    file,
                    f"{point.table} registers {point.address}..{point.end - 1} overlap point "
                    f"'{other.name}' ({other.address}..{other.end - 1})",
                    entry,
                    "address",
                )
        points.append(point)
    return RegisterMap(word_order=map_order, points=tuple(points), source=file)


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum(kind: type[_E], value: Any, file: str, entry: str | None, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ConfigError(file, f"must be one of {allowed}, got {value!r}", entry, field) from None


def _parse_point(raw: Any, index: int, file: str, map_order: WordOrder) -> Point:
    if not isinstance(raw, dict):
        raise ConfigError(file, "must be a mapping", f"point #{index + 1}")
    name = raw.get("name")
    entry = f"point '{name}'" if isinstance(name, str) and name else f"point #{index + 1}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(file, f"must be a non-empty string, got {name!r}", entry, "name")
    unknown = sorted(str(k) for k in raw if k not in _POINT_FIELDS)
    if unknown:
        raise ConfigError(file, "unknown field (check the spelling)", entry, unknown[0])
    table = _enum(Table, raw.get("table"), file, entry, "table")
    ptype = _enum(PointType, raw.get("type"), file, entry, "type")
    address = raw.get("address")
    if isinstance(address, bool) or not isinstance(address, int) or address < 0:
        raise ConfigError(file, f"must be an integer >= 0, got {address!r}", entry, "address")
    if address + ptype.width > 65536:
        raise ConfigError(file, f"{ptype} at {address} runs past register 65535", entry, "address")
    scale = raw.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise ConfigError(file, f"must be a finite number, got {scale!r}", entry, "scale")
    if scale == 0:
        raise ConfigError(file, "must not be 0 (raw × scale = value)", entry, "scale")
    source = raw.get("source", name)
    allowed = INPUT_SOURCES if table is Table.INPUT else HOLDING_SOURCES
    if source not in allowed:
        raise ConfigError(
            file,
            f"{source!r} is not a {table} source; one of {', '.join(sorted(allowed))}",
            entry,
            "source",
        )
    unit = raw.get("unit", "")
    if unit is None:
        unit = ""
    if not isinstance(unit, str):
        raise ConfigError(file, f"must be a string, got {unit!r}", entry, "unit")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(file, f"must be a string, got {description!r}", entry, "description")
    order = _enum(WordOrder, raw.get("word_order", map_order.value), file, entry, "word_order")
    return Point(
        name=name,
        table=table,
        address=address,
        type=ptype,
        scale=float(scale),
        unit=unit,
        source=str(source),
        word_order=order,
        description=description,
    )


def load_register_map(path: Path) -> RegisterMap:
    """Load register_map.yaml; a missing file gives the built-in default map of DESIGN §5."""
    if not path.exists():
        return parse_register_map(default_register_map_data(), "built-in default register map")
    return parse_register_map(read_yaml(path), str(path))


def default_register_map_data() -> dict[str, Any]:
    """The default map of DESIGN §5 as YAML-shaped data (register_map.yaml ships the same)."""

    def p(name: str, table: str, addr: int, typ: str, unit: str, source: str | None = None,
          scale: float = 1, description: str = "") -> dict[str, Any]:  # fmt: skip
        return {
            "name": name, "table": table, "address": addr, "type": typ, "unit": unit,
            "source": source or name, "scale": scale, "description": description,
        }  # fmt: skip

    return {
        "word_order": "big",
        "points": [
            p(
                "status",
                "input",
                0,
                "uint16",
                "",
                description="0 idle, 1 charging, 2 discharging, 3 fault",
            ),
            p(
                "alarms",
                "input",
                1,
                "uint16",
                "",
                description=(
                    "bit0 soc_low, bit1 soc_high, bit2 watchdog, bit3 trip, bit4 derated, "
                    "bit5 over_temperature"
                ),
            ),
            p("soc_pct", "input", 2, "float32", "%"),
            p("soc_mwhr", "input", 4, "float32", "MWh"),
            p("current_mw", "input", 6, "float32", "MW", description="+ discharge, - charge"),
            p("setpoint_mw", "input", 8, "float32", "MW", description="setpoint in effect"),
            p("capacity_mwhr", "input", 10, "float32", "MWh"),
            p("max_mw", "input", 12, "float32", "MW"),
            p("min_mw", "input", 14, "float32", "MW"),
            p("soc_pct_x100", "input", 16, "uint16", "%", "soc_pct", 0.01),
            p("current_mw_x10", "input", 17, "int16", "MW", "current_mw", 0.1),
            p("timestamp", "input", 18, "uint32", "s", description="unix seconds of the snapshot"),
            p(
                "heartbeat_echo",
                "input",
                20,
                "uint16",
                "",
                "heartbeat",
                description="last heartbeat written",
            ),
            # DESIGN §10 additions (existing addresses never move).
            p("current_mvar", "input", 22, "float32", "MVAr", description="+ export"),
            p("setpoint_mvar", "input", 24, "float32", "MVAr", description="in effect"),
            p(
                "available_discharge_mw",
                "input",
                26,
                "float32",
                "MW",
                description=">= 0: after taper, derating, trip, SOC bound",
            ),
            p(
                "available_charge_mw",
                "input",
                28,
                "float32",
                "MW",
                description="<= 0: after taper, derating, trip, SOC bound",
            ),
            p("temperature_c", "input", 30, "float32", "degC", description="NaN: no thermal model"),
            p("frequency_hz", "input", 32, "float32", "Hz", description="grid frequency"),
            p("setpoint_mw", "holding", 0, "float32", "MW", description="write -> dispatch"),
            p(
                "duration_s",
                "holding",
                2,
                "uint32",
                "s",
                description="used by the next setpoint write; 0 = hold",
            ),
            p("heartbeat", "holding", 4, "uint16", "", description="any change counts"),
            p("watchdog_timeout_s", "holding", 5, "uint16", "s", description="0 = off"),
            p("fault_reset", "holding", 6, "uint16", "", description="write 1 -> clear trip"),
            p(
                "setpoint_mw_x10",
                "holding",
                7,
                "int16",
                "MW",
                "setpoint_mw",
                0.1,
                "for FC06-only masters",
            ),
            p("setpoint_mvar", "holding", 8, "float32", "MVAr", description="write -> dispatch"),
        ],
    }
