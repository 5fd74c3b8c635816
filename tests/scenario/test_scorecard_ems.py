"""The EMS scorecard against a scripted EMS (DESIGN §12).

A small "EMS" — a pymodbus client loop plus one REST call — drives a paced simulator (real
Modbus TCP server on a free port, real HTTP) while a scenario trips a battery and steps the
grid frequency. The EMS keeps its own tally of what it did; every scorecard figure is checked
against that tally, the dispatch log or the physics.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.conftest import ROOT, START, free_tcp_port
from tests.modbus.test_server import as_float, f32

SITE = "5ce0a110-0000-4000-8000-000000000009"
MAIN = "5ce0a110-0000-4000-8000-0000000000b1"
FULL = "5ce0a110-0000-4000-8000-0000000000b2"
WD = "5ce0a110-0000-4000-8000-0000000000b3"
UNIT = {MAIN: 1, FULL: 2, WD: 3}
TICK_S, SPEED = 0.05, 10.0  # 0.5 simulated s per tick
END_S = 25.0


def fleet(port: int) -> dict[str, Any]:
    def asset(id_: str, name: str, unit: int, **extra: Any) -> dict[str, Any]:
        return {"id": id_, "site_id": SITE, "name": name, "location": "lab",
                "capacity_mwhr": 100.0, "max_mw": 50.0, "min_mw": -50.0,
                "ramp_rate_mw_per_min": 600.0, "efficiency": 0.95,
                "modbus": {"port": port, "unit_id": unit}, **extra}  # fmt: skip

    return {
        "sites": [{"id": SITE, "name": "Lab", "location": "here"}],
        "assets": [
            asset(MAIN, "MAIN", 1),
            # At soc_max all run: no charge is available.
            asset(FULL, "FULL", 2, capacity_mwhr=10.0, max_mw=5.0, min_mw=-5.0,
                  initial_soc_pct=100),
            asset(WD, "WD", 3, watchdog_timeout_s=3),
        ],
    }  # fmt: skip


SCENARIO = {
    "name": "ems-scorecard",
    "steps": [
        {"at": 5, "trip": {"asset": "MAIN"}},
        {"at": 15, "frequency": {"hz": 49.9}},
        {"at": END_S, "expect": {"asset": "*", "field": "soc_pct", "op": ">", "value": 0}},
    ],
}


class Ems:
    """The scripted EMS and its own tally of what it did."""

    def __init__(self, client: AsyncModbusTcpClient, http: httpx.AsyncClient) -> None:
        self.client = client
        self.http = http
        self.commands: Counter[tuple[str, str]] = Counter()  # (asset, source)
        self.refused: Counter[str] = Counter()  # setpoint writes answered with an exception
        self.exceptions: Counter[str] = Counter()  # every exception answer, per asset

    async def setpoint(self, asset: str, mw: float) -> bool:
        rr = await self.client.write_registers(0, f32(mw), device_id=UNIT[asset])
        self.commands[(asset, "modbus")] += 1
        if rr.isError():
            self.refused[asset] += 1
            self.exceptions[asset] += 1
        return not rr.isError()

    async def read_input(self, asset: str, address: int, count: int) -> list[int] | None:
        rr = await self.client.read_input_registers(address, count=count, device_id=UNIT[asset])
        if rr.isError():
            self.exceptions[asset] += 1
            return None
        return list(rr.registers)

    async def wait_for(self, asset: str, address: int, count: int, pred: Any) -> None:
        while True:
            regs = await self.read_input(asset, address, count)
            if regs is not None and pred(regs):
                return
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        assert await self.setpoint(WD, 2.0)  # never heartbeats: the watchdog reverts it
        r = await self.http.post("/dispatch", json={"asset_id": MAIN, "mw": 5.0})
        assert r.status_code == 201
        self.commands[(MAIN, "rest")] += 1
        assert await self.setpoint(FULL, -2.0)  # accepted, but FULL cannot charge at all
        # React to the trip: the status word turns 3 (fault).
        await self.wait_for(MAIN, 0, 1, lambda regs: regs[0] == 3)
        assert not await self.setpoint(MAIN, 3.0)  # refused: tripped
        assert not (await self.client.write_register(6, 1, device_id=1)).isError()  # reset
        assert not await self.setpoint(MAIN, 60.0)  # refused: above max_mw
        assert await self.setpoint(MAIN, 4.0)
        assert await self.read_input(MAIN, 200, 2) is None  # unmapped: 0x02
        # React to the frequency event: input 32 is frequency_hz (float32).
        await self.wait_for(MAIN, 32, 2, lambda regs: as_float(regs) < 49.95)
        assert await self.setpoint(MAIN, 6.0)


@pytest.fixture
async def paced(tmp_path: Path) -> Any:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet(free_tcp_port())))
    settings = Settings(assets=path, register_map=ROOT / "register_map.yaml", http_port=0,
                        clock="realtime", tick_interval_s=TICK_S, speed=SPEED,
                        start_time=START, database_url=None, api_token=None)  # fmt: skip
    rt = Runtime(settings, load_assets(path), load_register_map(settings.register_map))
    async with rt:
        yield rt


async def test_scorecard_matches_what_the_ems_did(paced: Runtime) -> None:
    rt = paced
    port = rt.modbus_ports[rt.fleet.spec(MAIN).modbus.port]
    soc0 = rt.fleet.snapshot(MAIN).soc_mwhr
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
    assert await client.connect()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}", timeout=10) as http:
        run = rt.scenarios.start(SCENARIO, "test")
        ems = Ems(client, http)
        await asyncio.wait_for(ems.run(), timeout=60)
        await asyncio.wait_for(rt.scenarios.wait(), timeout=60)
    client.close()
    status = run.status()
    assert status["state"] == "passed", status
    card = status["scorecard"]
    assets = {a["asset"]: a for a in card["assets"]}
    names = {MAIN: "MAIN", FULL: "FULL", WD: "WD"}

    # Commands received, by source, per asset and fleet.
    for asset_id, name in names.items():
        got = assets[name]["commands_by_source"]
        assert got["modbus"] == ems.commands[(asset_id, "modbus")], name
        assert got["rest"] == ems.commands[(asset_id, "rest")], name
        assert got["scenario"] == 0
    assert card["fleet"]["ems_commands"] == sum(ems.commands.values()) == 7
    # Rejected commands with reasons = the setpoint writes the EMS saw refused.
    assert assets["MAIN"]["rejected_commands"] == ems.refused[MAIN] == 2
    assert card["fleet"]["rejected_commands"] == sum(ems.refused.values())
    reasons = " | ".join(assets["MAIN"]["rejected_reasons"])
    assert "tripped" in reasons and "outside [-50, 50] MW" in reasons
    assert [r["mw"] for r in card["rejected"]] == [3.0, 60.0]
    # Setpoints beyond the available limits: FULL's charge request at soc_max.
    assert assets["FULL"]["setpoints_beyond_available"] == 1
    assert card["fleet"]["setpoints_beyond_available"] == 1
    (beyond,) = card["beyond_available"]
    assert (beyond["asset"], beyond["mw"], beyond["available_charge_mw"]) == ("FULL", -2.0, 0.0)
    # Watchdog reverts: WD's setpoint, never fed.
    assert assets["WD"]["watchdog_reverts"] == 1 and card["fleet"]["watchdog_reverts"] == 1
    reverted = rt.fleet.dispatches(WD, status=None, limit=1)[0]
    assert reverted.status.value == "reverted"
    # Modbus exceptions experienced = exception answers the EMS counted.
    for asset_id, name in names.items():
        assert assets[name]["modbus_exceptions"] == ems.exceptions[asset_id], name
    assert card["fleet"]["modbus_exceptions"] == 3
    # Time at the SOC bounds: FULL at soc_max for the whole run, nobody at soc_min.
    run_s = status["sim_time_s"]
    assert run_s >= END_S
    assert assets["FULL"]["seconds_at_soc_max"] == pytest.approx(run_s, abs=1e-6)
    assert card["fleet"]["seconds_at_soc_min"] == 0.0
    assert assets["MAIN"]["seconds_at_soc_max"] == 0.0

    # Reaction times: the first EMS command after each event, from the dispatch log.
    origin = run.recorder.origin
    trip, freq = card["events"]
    assert (trip["kind"], trip["asset"], freq["kind"], freq["asset"]) == (
        "fault_start", "MAIN", "frequency", None)  # fmt: skip
    log = list(reversed(rt.fleet.dispatches(MAIN, limit=100)))  # oldest first, in order
    after_trip = [r for r in log if (r.submitted_at - origin).total_seconds() >= trip["at_s"]]
    assert after_trip[0].mw == 3.0  # the refused write was the EMS's first reaction
    expect_trip = (after_trip[0].submitted_at - origin).total_seconds() - trip["at_s"]
    assert trip["reaction_s"] == pytest.approx(expect_trip, abs=1e-9)
    assert 0.0 <= trip["reaction_s"] < 5.0
    after_freq = [r for r in log if (r.submitted_at - origin).total_seconds() >= freq["at_s"]]
    assert after_freq[0].mw == 6.0
    expect_freq = (after_freq[0].submitted_at - origin).total_seconds() - freq["at_s"]
    assert freq["reaction_s"] == pytest.approx(expect_freq, abs=1e-9)

    # Energy: MAIN only discharged; with a constant efficiency §3.3 removes E / η from SOC.
    main = assets["MAIN"]
    assert main["energy_charged_mwh"] == 0.0
    from_soc = (soc0 - rt.fleet.snapshot(MAIN).soc_mwhr) * 0.95
    # Trapezoid over tick snapshots: a ramp that lands inside a tick costs at most
    # ½ × ΔP × dt; MAIN has 4 such landings of ≤ 6 MW in 0.5 s ticks.
    bound = 4 * 0.5 * 6.0 * (TICK_S * SPEED) / 3600
    assert main["energy_discharged_mwh"] == pytest.approx(from_soc, abs=bound)
    assert main["energy_discharged_mwh"] > 10 * bound
    assert main["equivalent_full_cycles"] == pytest.approx(
        main["energy_discharged_mwh"] / (2 * 100.0)
    )
    fleet_card = card["fleet"]
    total = fleet_card["energy_charged_mwh"] + fleet_card["energy_discharged_mwh"]
    assert fleet_card["equivalent_full_cycles"] == pytest.approx(total / (2 * 210.0))
