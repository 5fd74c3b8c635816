"""register_map.yaml validation: one case per rule, through ``bess-sim check-config`` (exit 2,
the file and the field named on stderr, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT


def point(**overrides: Any) -> dict[str, Any]:
    base = {"name": "p", "table": "input", "address": 0, "type": "uint16", "source": "status"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bess_sim", "check-config", "--register-map", str(path),
         "--assets", str(ROOT / "assets.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


HOLDING_SP = {"name": "sp", "table": "holding", "address": 0, "type": "float32",
              "source": "setpoint_mw"}  # fmt: skip

CASES: list[tuple[str, Any, str]] = [
    ("top level not a mapping", [1, 2], "top level"),
    ("unknown top-level key", {"points": [point()], "wordorder": "big"}, "field 'wordorder'"),
    ("bad map word order", {"word_order": "middle", "points": [point()]}, "field 'word_order'"),
    ("points missing", {"word_order": "big"}, "field 'points'"),
    ("points empty", {"points": []}, "field 'points'"),
    ("point not a mapping", {"points": ["status"]}, "point #1"),
    ("name missing", {"points": [point(name=None)]}, "field 'name'"),
    ("unknown point field", {"points": [point(adress=3)]}, "field 'adress'"),
    ("bad table", {"points": [point(table="coil")]}, "field 'table'"),
    ("bad type", {"points": [point(type="float64")]}, "field 'type'"),
    ("negative address", {"points": [point(address=-1)]}, "field 'address'"),
    ("address not an integer", {"points": [point(address="0x10")]}, "field 'address'"),
    ("past register 65535", {"points": [point(type="uint32", address=65535)]}, "field 'address'"),
    ("scale not a number", {"points": [point(scale="tenth")]}, "field 'scale'"),
    ("scale zero", {"points": [point(scale=0)]}, "field 'scale'"),
    ("input source unknown", {"points": [point(source="voltage")]}, "field 'source'"),
    ("command as input source", {"points": [point(source="fault_reset")]}, "field 'source'"),
    ("telemetry as holding source",
     {"points": [point(table="holding", source="soc_pct")]}, "field 'source'"),
    ("unit not a string", {"points": [point(unit=5)]}, "field 'unit'"),
    ("description not a string", {"points": [point(description=["x"])]}, "field 'description'"),
    ("bad point word order", {"points": [point(word_order="mixed")]}, "field 'word_order'"),
    ("duplicate name in a table", {"points": [point(), point(address=1)]}, "field 'name'"),
    ("overlapping registers",
     {"points": [point(type="float32"), point(name="q", address=1)]}, "field 'address'"),
    ("invalid YAML", "points: [\n  - {name: a", "invalid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "data", "needle"), CASES, ids=[c[0] for c in CASES])
def test_register_map_rule(tmp_path: Path, rule: str, data: Any, needle: str) -> None:
    path = tmp_path / "register_map.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    res = check(path)
    assert res.returncode == 2, (rule, res.stdout, res.stderr)
    assert str(path) in res.stderr and needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_same_name_in_both_tables_and_gaps_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "register_map.yaml"
    data = {"points": [point(name="setpoint_mw", source="setpoint_mw", type="float32"),
                       {**HOLDING_SP, "name": "setpoint_mw", "address": 10}]}  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    res = check(path)
    assert res.returncode == 0, res.stderr


def test_shipped_register_map_is_the_default_map() -> None:
    from bess_sim.modbus.points import (
        default_register_map_data,
        load_register_map,
        parse_register_map,
    )

    shipped = load_register_map(ROOT / "register_map.yaml")
    default = parse_register_map(default_register_map_data(), "default")
    assert [(p.name, p.table, p.address, p.type, p.scale, p.source, p.word_order)
            for p in shipped.points] == [
        (p.name, p.table, p.address, p.type, p.scale, p.source, p.word_order)
        for p in default.points
    ]  # fmt: skip
