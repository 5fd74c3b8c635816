"""SunSpec register layout built from the model definitions pysunspec2 ships (JSON files in
``sunspec2/models/json``): ids, lengths, point offsets, types, scale-factor references and
access come from there, never from hand-typed tables (DESIGN §13).

The map starts at holding register 40000 (SunSpec Information Model Specification §4: the
well-known base address; pysunspec2's client tries 40000 first): 'SunS' (0x5375 0x6E53),
then each model as ID, L (length after those two registers), its points, and the end model
ID 0xFFFF with L = 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

BASE_ADDRESS = 40000
MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL_ID = 0xFFFF
#: Models served, in map order (DESIGN §13).
MODEL_IDS = (1, 701, 702, 704, 713, 802)


class LayoutError(Exception):
    """A model definition cannot be laid out (missing file, repeating group, bad size)."""


@dataclass(frozen=True, slots=True)
class SunSpecPoint:
    """One point of one model at its absolute holding-register address."""

    model_id: int
    name: str  # group-qualified below the top group, e.g. "PFWInj.PF"
    address: int
    size: int  # registers
    type: str  # SunSpec type: int16, uint32, enum16, string, sunssf, ...
    sf: str | None  # name of the scale-factor point in the same model, if any
    access: str  # "R" or "RW"
    units: str
    mandatory: bool
    static: bool
    label: str

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def key(self) -> tuple[int, str]:
        return (self.model_id, self.name)


@dataclass(frozen=True, slots=True)
class ModelBlock:
    model_id: int
    address: int  # of its ID register
    length: int  # L: registers after ID and L

    @property
    def end(self) -> int:
        return self.address + 2 + self.length


@dataclass(frozen=True, slots=True)
class Layout:
    """The whole SunSpec block: models and points at absolute addresses."""

    models: tuple[ModelBlock, ...]
    points: tuple[SunSpecPoint, ...]
    end_address: int  # address of the end model's ID

    @property
    def size(self) -> int:
        """Registers from BASE_ADDRESS through the end model's L."""
        return self.end_address + 2 - BASE_ADDRESS

    def point(self, model_id: int, name: str) -> SunSpecPoint:
        for p in self.points:
            if p.model_id == model_id and p.name == name:
                return p
        raise KeyError(f"model {model_id} has no point {name!r}")


def model_definition(model_id: int) -> dict[str, Any]:
    """The parsed JSON definition of ``model_id`` shipped with pysunspec2."""
    try:
        ref = resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
        data: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise LayoutError(f"SunSpec model {model_id}: cannot load its definition: {exc}") from None
    return data


def _flatten(
    model_id: int, group: dict[str, Any], prefix: str, start: int, out: list[SunSpecPoint]
) -> int:
    """Append the points of ``group`` from register offset ``start``; returns the next offset."""
    offset = start
    for p in group.get("points", []):
        size = int(p["size"])
        out.append(
            SunSpecPoint(
                model_id=model_id,
                name=prefix + p["name"],
                address=offset,
                size=size,
                type=p["type"],
                sf=p.get("sf") if isinstance(p.get("sf"), str) else None,
                access=p.get("access", "R"),
                units=p.get("units", ""),
                mandatory=p.get("mandatory") == "M",
                static=p.get("static") == "S",
                label=p.get("label", ""),
            )
        )
        offset += size
    for sub in group.get("groups", []):
        count = sub.get("count", 1)
        if not isinstance(count, int):
            # Repeating groups sized by a point (e.g. model 802 variants with modules) would
            # need a count chosen per device; none of the served models has one.
            raise LayoutError(f"SunSpec model {model_id}: group {sub['name']} repeats {count!r}")
        for i in range(count):
            name = sub["name"] if count == 1 else f"{sub['name']}[{i + 1}]"
            offset = _flatten(model_id, sub, f"{prefix}{name}.", offset, out)
    return offset


@cache
def load_layout(model_ids: tuple[int, ...] = MODEL_IDS) -> Layout:
    """Lay out ``model_ids`` from BASE_ADDRESS (cached: the definitions never change)."""
    address = BASE_ADDRESS + len(MARKER)
    models: list[ModelBlock] = []
    points: list[SunSpecPoint] = []
    for mid in model_ids:
        definition = model_definition(mid)
        if int(definition.get("id", -1)) != mid:
            raise LayoutError(f"SunSpec model {mid}: definition has id {definition.get('id')}")
        local: list[SunSpecPoint] = []
        length = _flatten(mid, definition["group"], "", 0, local)
        if [p.name for p in local[:2]] != ["ID", "L"]:
            raise LayoutError(f"SunSpec model {mid}: does not start with ID, L")
        points.extend(replace(p, address=address + p.address) for p in local)
        models.append(ModelBlock(mid, address, length - 2))
        address += length
    return Layout(models=tuple(models), points=tuple(points), end_address=address)
