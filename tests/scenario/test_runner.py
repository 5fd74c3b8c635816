"""The runner's actions on a real (headless) simulator: ambient through the §10 thermal
model, trip/reset, a rejected scenario dispatch, speed on the manual clock, initial grid."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.scenario import build_plan, parse_scenario
from bess_sim.scenario.runner import ScenarioRun
from bess_sim.scenario.target import RuntimeTarget
from bess_sim.settings import Settings
from tests.conftest import ROOT, START

HILL2 = "7c1e2d3f-4a5b-4c6d-8e7f-000000000004"  # thermal: R = 50 K/MW, C = 20 MJ/K


@pytest.fixture
async def shipped() -> AsyncIterator[Runtime]:
    s = Settings(assets=ROOT / "assets.yaml", register_map=ROOT / "register_map.yaml",
                 http_port=0, modbus_enabled=False, clock="manual", start_time=START,
                 database_url=None, api_token=None)  # fmt: skip
    async with Runtime(s, load_assets(s.assets), load_register_map(s.register_map)) as rt:
        yield rt


async def test_actions_on_the_shipped_fleet(shipped: Runtime) -> None:
    # Idle, the node relaxes to the new ambient with τ = R·C = 50 K/MW × 20 MJ/K = 1000 s.
    after_tau = 25 + 20 * (1 - math.exp(-1))
    data = {
        "name": "actions",
        "grid": {"frequency_hz": 50.0, "ambient_c": 25},
        "steps": [
            {"at": 0, "speed": {"x": 100}},
            {"at": 10, "ambient": {"c": 45}},
            {"at": 1010, "expect": {"asset": HILL2, "field": "temperature_c", "op": "==",
                                    "value": after_tau, "tolerance": 0.05}},
            {"at": 1010, "dispatch": {"asset": "HARB-BESS-1", "mw": 999}},
            {"at": 1010, "trip": {"asset": "HARB-BESS-1"}},
            {"at": 1011, "expect": {"asset": "HARB-BESS-1", "field": "status", "op": "==",
                                    "value": "fault"}},
            {"at": 1011, "expect": {"asset": "HARB-BESS-1", "field": "alarm.trip", "op": "==",
                                    "value": 1}},
            {"at": 1011, "reset": {"asset": "HARB-BESS-1"}},
            {"at": 1012, "expect": {"asset": "HARB-BESS-1", "field": "status", "op": "==",
                                    "value": "idle"}},
        ],
    }  # fmt: skip
    lines: list[str] = []
    plan = build_plan(parse_scenario(data, "a.yaml"), shipped.fleet.specs, "a.yaml")
    run = ScenarioRun(plan, RuntimeTarget(shipped), source="a.yaml", progress=lines.append)
    assert await run.run() == "passed", run.status()["expectations"]
    assert shipped.fleet.grid.ambient_c == 45
    assert any("speed 100x (manual clock: runs as fast as possible)" in ln for ln in lines)
    rejected = next(ln for ln in lines if "dispatch" in ln)
    assert "HARB-BESS-1 999 MW: rejected: mw 999 is outside [-50, 50] MW" in rejected
    card = run.status()["scorecard"]
    assert card["fleet"]["commands_by_source"]["scenario"] == 1
    assert card["fleet"]["rejected_commands"] == 0  # the scenario's own: not the EMS's
    assert [e["kind"] for e in card["events"]] == ["fault_start", "fault_end"]
    assert all(e["reaction_s"] is None for e in card["events"])  # no EMS took part
