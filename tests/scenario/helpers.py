"""Shared bits of the scenario tests: the example fleet and small scenario builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bess_sim.config import load_assets
from bess_sim.sim import FleetConfig
from tests.conftest import ROOT, free_tcp_port

SCENARIOS = ROOT / "scenarios"
EXAMPLE_FLEET = SCENARIOS / "fleet.yaml"


def example_fleet_on_free_ports(tmp_path: Path) -> tuple[Path, dict[int, int]]:
    """scenarios/fleet.yaml with its Modbus ports moved to free ones; (path, old → new)."""
    data = yaml.safe_load(EXAMPLE_FLEET.read_text())
    moved: dict[int, int] = {}
    for asset in data["assets"]:
        old = asset["modbus"]["port"]
        moved.setdefault(old, free_tcp_port())
        asset["modbus"]["port"] = moved[old]
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, moved


def example_fleet() -> FleetConfig:
    return load_assets(EXAMPLE_FLEET)


def scenario(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": top.pop("name", "t"), **top, "steps": list(steps)}
