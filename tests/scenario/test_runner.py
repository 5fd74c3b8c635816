"""The runner's actions on a real (headless) simulator: ambient through the §10 thermal
model, trip/reset, a rejected scenario dispatch, speed on the manual clock, initial grid."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.scenario import build_plan, parse_scenario
from bess_sim.scenario.runner import ScenarioRun
from bess_sim.scenario.target import RuntimeTarget
from bess_sim.settings import Settings
from bess_sim.sim import Fleet
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


class _LateSinks:
    """A paced target whose tick moves the fleet's time, then calls the sinks only after
    the runner's 1 s wake-up: the order a tick in a worker thread has (time first, sinks
    after), stretched so the runner looks in between."""

    paced = True
    failure = None
    tick_dt_s = 1.0

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.sinks: list[Any] = []

    @property
    def sim_time_s(self) -> float:
        return self.fleet.sim_time_s

    async def tick(self) -> None:
        snaps = self.fleet.advance(1.0)
        await asyncio.sleep(1.3)
        for sink in list(self.sinks):
            sink.publish(snaps)

    async def step(self, seconds: float) -> int:
        raise AssertionError("a paced run never steps")

    def set_speed(self, x: float) -> None: ...

    def add_sink(self, sink: Any) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink: Any) -> None:
        self.sinks.remove(sink)

    def add_comm_listener(self, cb: Any) -> None: ...

    def remove_comm_listener(self, cb: Any) -> None: ...

    def between_ticks(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def add_fault(self, spec: Any) -> str:
        raise AssertionError("no faults here")

    def end_fault(self, fault_id: str) -> None: ...


async def test_a_paced_run_samples_its_last_breakpoint_before_it_ends() -> None:
    """Seen in CI: the run ended as soon as the fleet's time reached the last breakpoint, before
    the tick's snapshots were sampled ("never evaluated: the run ended at 40 s before 40 s")."""
    fleet = Fleet(load_assets(ROOT / "assets.yaml"), START)
    target = _LateSinks(fleet)
    data = {"name": "late", "steps": [
        {"at": 1, "expect": {"asset": "HARB-BESS-1", "field": "current_mw", "op": "==",
                             "value": 0}},
    ]}  # fmt: skip
    plan = build_plan(parse_scenario(data, "l.yaml"), fleet.specs, "l.yaml")
    run = ScenarioRun(plan, target, source="l.yaml")  # type: ignore[arg-type]
    runner = asyncio.create_task(run.run())
    await asyncio.sleep(0.05)
    await target.tick()
    assert await asyncio.wait_for(runner, 10) == "passed", run.status()["expectations"]
