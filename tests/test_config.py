"""One test per assets.yaml rule (DESIGN §2): exit code 2, the file, entry and field named."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bess_sim.cli import main
from bess_sim.config import default_fleet, load_assets
from tests.conftest import ROOT, fleet_data

Mutator = Callable[[dict[str, Any]], None]


def asset(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d["assets"][i]


def setf(i: int, field: str, value: Any) -> Mutator:
    def mutate(d: dict[str, Any]) -> None:
        d["assets"][i][field] = value

    return mutate


def delf(i: int, field: str) -> Mutator:
    def mutate(d: dict[str, Any]) -> None:
        del d["assets"][i][field]

    return mutate


def dup_asset_id(d: dict[str, Any]) -> None:
    d["assets"][1]["id"] = d["assets"][0]["id"]


def dup_site_id(d: dict[str, Any]) -> None:
    d["sites"][1]["id"] = d["sites"][0]["id"]


def port_clash(d: dict[str, Any]) -> None:
    d["assets"][1]["modbus"] = dict(d["assets"][0]["modbus"])


CASES: list[tuple[str, Mutator, str, str]] = [
    # id, mutation, entry named, field named
    (
        "unknown_site",
        setf(0, "site_id", "99999999-9999-4999-8999-999999999999"),
        "BESS-1",
        "site_id",
    ),
    ("duplicate_asset_id", dup_asset_id, "BESS-2", "id"),
    ("duplicate_site_id", dup_site_id, "Site B", "id"),
    ("asset_id_not_uuid", setf(0, "id", "battery-1"), "BESS-1", "id"),
    ("max_mw_negative", setf(0, "max_mw", -1), "BESS-1", "max_mw"),
    ("min_mw_positive", setf(0, "min_mw", 1), "BESS-1", "min_mw"),
    ("efficiency_zero", setf(0, "efficiency", 0), "BESS-1", "efficiency"),
    ("efficiency_above_one", setf(0, "efficiency", 1.01), "BESS-1", "efficiency"),
    ("capacity_zero", setf(0, "capacity_mwhr", 0), "BESS-1", "capacity_mwhr"),
    ("capacity_not_number", setf(0, "capacity_mwhr", "lots"), "BESS-1", "capacity_mwhr"),
    ("capacity_missing", delf(0, "capacity_mwhr"), "BESS-1", "capacity_mwhr"),
    ("ramp_zero", setf(0, "ramp_rate_mw_per_min", 0), "BESS-1", "ramp_rate_mw_per_min"),
    ("nan_value", setf(0, "max_mw", float("nan")), "BESS-1", "max_mw"),
    ("soc_min_over_max", setf(1, "soc_min_pct", 95), "BESS-2", "soc_max_pct"),
    ("soc_max_over_100", setf(1, "soc_max_pct", 101), "BESS-2", "soc_max_pct"),
    ("initial_soc_outside", setf(1, "initial_soc_pct", 95), "BESS-2", "initial_soc_pct"),
    ("watchdog_negative", setf(1, "watchdog_timeout_s", -1), "BESS-2", "watchdog_timeout_s"),
    ("port_unit_clash", port_clash, "BESS-2", "modbus"),
    (
        "port_out_of_range",
        setf(0, "modbus", {"port": 70000, "unit_id": 1}),
        "BESS-1",
        "modbus.port",
    ),
    ("unit_id_zero", setf(0, "modbus", {"port": 5020, "unit_id": 0}), "BESS-1", "modbus.unit_id"),
    ("unknown_field", setf(0, "max_mwh", 3), "BESS-1", "max_mwh"),
    ("name_empty", setf(2, "name", ""), "asset", "name"),
]


@pytest.mark.parametrize(
    ("mutate", "entry", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_assets_exit_2_naming_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Mutator, entry: str, field: str
) -> None:
    data = copy.deepcopy(fleet_data(5020, 5021))
    mutate(data)
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", "--assets", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert entry in err
    assert f"field '{field}'" in err
    assert "Traceback" not in err


def test_bad_yaml_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text("sites:\n  - id: [unclosed\n")
    assert main(["check-config", "--assets", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "invalid YAML at line" in err


def test_top_level_not_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text("- just\n- a list\n")
    assert main(["check-config", "--assets", str(path)]) == 2
    assert "top level must be a mapping" in capsys.readouterr().err


def test_missing_file_gives_deterministic_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = load_assets(tmp_path / "nope.yaml")
    assert a == default_fleet() == load_assets(tmp_path / "other.yaml")
    assert len(a.sites) >= 2 and len(a.assets) >= 4
    with caplog.at_level("WARNING"):
        assert main(["check-config", "--assets", str(tmp_path / "nope.yaml")]) == 0
    assert "built-in default fleet" in caplog.text


def test_shipped_files_are_valid_and_varied() -> None:
    fleet = load_assets(ROOT / "assets.yaml")
    assert len(fleet.sites) >= 2 and len(fleet.assets) >= 4
    for field in ("capacity_mwhr", "max_mw", "ramp_rate_mw_per_min", "efficiency"):
        assert len({getattr(a, field) for a in fleet.assets}) == len(fleet.assets), field
    ports = [a.modbus.port for a in fleet.assets]
    shared = [p for p in set(ports) if ports.count(p) > 1]
    assert shared, "at least two assets must share a port"


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "assets.yaml"
    data = fleet_data(5020, 5021)
    data["assets"][0]["efficiency"] = 1.5
    path.write_text(yaml.safe_dump(data))
    res = subprocess.run(
        [sys.executable, "-m", "bess_sim", "run", "--assets", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert "efficiency" in res.stderr and "BESS-1" in res.stderr
    assert "Traceback" not in res.stderr
