"""The wired simulator: REST stepping gives DESIGN §3 numbers; two simulators in one process;
clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from bess_sim.clock import ManualClock, RealTimeClock
from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.conftest import ASSET_1, ASSET_3


async def test_rest_step_gives_exact_physics(runtime: Runtime) -> None:
    base = f"http://127.0.0.1:{runtime.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": 20})
        assert r.status_code == 201, r.text
        r = await c.post("/sim/step", json={"seconds": 60})
        assert r.status_code == 200 and r.json()["ticks"] == 60
        t = (await c.get(f"/telemetry/{ASSET_1}")).json()
    # ramp 10 MW/min, efficiency 0.95: 10 MW after 60 s; ½·10·60 MW·s out of the battery
    assert t["current_mw"] == pytest.approx(10.0, abs=1e-9)
    assert t["soc_mwhr"] == pytest.approx(50.0 - 0.5 * 10 * 60 / 3600 / 0.95, abs=1e-9)
    assert t["timestamp"] == "2026-01-01T00:01:00Z"
    assert t["status"] == "discharging" and t["setpoint_mw"] == 20


async def test_step_last_tick_shorter(runtime: Runtime) -> None:
    assert await runtime.step(2.5) == 3
    assert runtime.fleet.sim_time_s == 2.5


async def test_two_simulators_in_one_process(
    make_settings: Callable[..., Settings], tmp_path: object
) -> None:
    s1 = make_settings(modbus_enabled=False)
    s2 = make_settings(modbus_enabled=False)
    fleet, regmap = load_assets(s1.assets), load_register_map(s1.register_map)
    async with Runtime(s1, fleet, regmap) as a, Runtime(s2, fleet, regmap) as b:
        assert a.http_port != b.http_port
        await a.step(10)
        assert a.fleet.sim_time_s == 10 and b.fleet.sim_time_s == 0
        assert a.metrics is not b.metrics


def test_manual_clock_chunks() -> None:
    c = ManualClock(1.0)
    assert c.chunks(3.0) == [1.0, 1.0, 1.0]
    assert c.chunks(0.3) == [0.3]
    assert ManualClock(0.1).chunks(0.3) == [0.1, 0.1, 0.1]
    assert ManualClock(4.0).chunks(10.0) == [4.0, 4.0, 2.0]


async def test_realtime_clock_speed_and_step_refused(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(clock="realtime", tick_interval_s=0.05, speed=10.0, modbus_enabled=False)
    async with Runtime(s, load_assets(s.assets), load_register_map(s.register_map)) as rt:
        assert isinstance(rt.clock, RealTimeClock) and rt.clock.dt_s == pytest.approx(0.5)
        deadline = asyncio.get_running_loop().time() + 20
        while rt.fleet.tick_count < 3:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        # every tick advances tick_interval × speed simulated seconds
        assert rt.fleet.sim_time_s == pytest.approx(rt.fleet.tick_count * 0.5)
        snap = rt.fleet.snapshot(ASSET_3)
        assert (snap.timestamp - rt.fleet.start_time).total_seconds() == pytest.approx(
            snap.sim_time_s
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
            r = await c.post("/sim/step", json={"seconds": 1})
        assert r.status_code == 409
