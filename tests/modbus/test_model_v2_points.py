"""DESIGN §10 points: values computed by hand appear over REST, pymodbus and mbpoll alike."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bess_sim.runtime import Runtime
from bess_sim.sim import DispatchRequest, DispatchSource
from tests.conftest import ASSET_3, fleet_data, two_free_tcp_ports
from tests.modbus.conftest import unit_of
from tests.modbus.test_mbpoll import MBPOLL, mbpoll, values

V2_FIELDS = {
    "discharge_taper": [[10, 0], [30, 100]],
    "thermal": {"ambient_c": 25, "initial_c": 35, "heat_capacity_mj_per_k": 20,
                "resistance_k_per_mw": 50, "derate_start_c": 40, "derate_end_c": 50,
                "trip_c": 55},
    "reactive": {"s_max_mva": 5.5, "q_min_mvar": -3, "q_max_mvar": 3, "priority": "p"},
    "frequency_response": {"mode": "droop", "nominal_hz": 50, "deadband_hz": 0,
                           "droop_pct": 4, "max_mw": 5},
}  # fmt: skip


@pytest.fixture
def assets_file(tmp_path: Path) -> Path:
    """The shared test fleet with BESS-3 (10 MWh, ±5 MW, 60 MW/min, SOC 20 %) on v2."""
    data = fleet_data(*two_free_tcp_ports())
    data["assets"][2].update(V2_FIELDS)
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def f32(regs: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *regs))[0])


async def rest(runtime: Runtime, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
        r = await http.request(method, path, timeout=30, **kw)
        assert r.status_code < 300, r.text
        return r.json()


async def input_f32(client: Any, runtime: Runtime, address: int) -> float:
    rr = await client.read_input_registers(address, count=2, device_id=unit_of(runtime, ASSET_3))
    assert not rr.isError(), rr
    return f32(rr.registers)


async def test_thermal_and_taper_by_hand(runtime: Runtime, client_for: Any) -> None:
    await runtime.step(100)
    # idle, 35 °C in 25 °C ambient, τ = R·C = 1000 s: T = 25 + 10·e^(−0.1)
    want_t = 25.0 + 10.0 * math.exp(-0.1)
    # SOC 20 % on the discharge taper [10 → 0 %, 30 → 100 %]: 50 % of 5 MW
    tel = await rest(runtime, "GET", f"/telemetry/{ASSET_3}")
    assert tel["temperature_c"] == pytest.approx(want_t, abs=1e-9)
    assert (tel["available_discharge_mw"], tel["available_charge_mw"]) == (2.5, -5.0)
    client = await client_for(ASSET_3)
    assert await input_f32(client, runtime, 30) == pytest.approx(want_t, rel=1e-6)
    assert await input_f32(client, runtime, 26) == 2.5
    assert await input_f32(client, runtime, 28) == -5.0


async def test_droop_by_hand(runtime: Runtime, client_for: Any) -> None:
    assert await rest(runtime, "GET", "/grid") == {"frequency_hz": 50.0, "ambient_c": None}
    got = await rest(runtime, "POST", "/grid", json={"frequency_hz": 49.8})
    assert got == {"frequency_hz": 49.8, "ambient_c": None}
    await runtime.step(10)
    # ΔP = 0.2 Hz / (4 % · 50 Hz) · 5 MW = +0.5 MW (under-frequency → discharge)
    tel = await rest(runtime, "GET", f"/telemetry/{ASSET_3}")
    assert tel["current_mw"] == pytest.approx(0.5) and tel["frequency_hz"] == 49.8
    client = await client_for(ASSET_3)
    assert await input_f32(client, runtime, 6) == pytest.approx(0.5)
    assert await input_f32(client, runtime, 32) == pytest.approx(49.8)


async def test_reactive_rest_and_holding_8(runtime: Runtime, client_for: Any) -> None:
    rec = await rest(runtime, "POST", "/dispatch", json={"asset_id": ASSET_3, "mw": 0, "mvar": 2})
    assert rec["mvar"] == 2.0
    await runtime.step(5)  # 1 MVAr/s (the 60 MW/min ramp): at 2 MVAr after 2 s
    client = await client_for(ASSET_3)
    assert await input_f32(client, runtime, 22) == 2.0
    assert await input_f32(client, runtime, 24) == 2.0
    unit = unit_of(runtime, ASSET_3)
    # holding 8: a reactive write is a dispatch (source modbus) keeping mw in effect
    wr = await client.write_registers(8, list(struct.unpack(">HH", struct.pack(">f", -1.5))),
                                      device_id=unit)  # fmt: skip
    assert not wr.isError(), wr
    last = runtime.fleet.dispatches(ASSET_3, limit=1)[0]
    assert (last.source, last.mw, last.mvar) == (DispatchSource.MODBUS, 0.0, -1.5)
    hr = await client.read_holding_registers(8, count=2, device_id=unit)
    assert f32(hr.registers) == -1.5
    # outside [q_min, q_max]: exception 0x03, nothing changes
    bad = await client.write_registers(8, list(struct.unpack(">HH", struct.pack(">f", 4.0))),
                                       device_id=unit)  # fmt: skip
    assert bad.isError() and bad.exception_code == 0x03
    assert runtime.fleet.control(ASSET_3).setpoint_mvar == -1.5


async def test_rest_rejects_mvar_beyond_limits(runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
        r = await http.post("/dispatch", json={"asset_id": ASSET_3, "mw": 1, "mvar": 3.5})
        assert r.status_code == 422 and "outside [-3, 3] MVAr" in r.json()["detail"]
        r = await http.post("/grid", json={"frequency_hz": "fast"})
        assert r.status_code == 422


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_mbpoll_reads_the_v2_block(runtime: Runtime) -> None:
    runtime.fleet.dispatch(DispatchRequest(ASSET_3, 0.0, mvar=-2.0))
    runtime.fleet.set_grid(frequency_hz=50.1)
    await runtime.step(100)
    rc, out = await mbpoll(runtime, ASSET_3, "-t", "3:float", "-r", "22", "-c", "6", "-1")
    assert rc == 0, out
    read = values(out)
    tel = await rest(runtime, "GET", f"/telemetry/{ASSET_3}")
    for ref, field in ((22, "current_mvar"), (24, "setpoint_mvar"),
                       (26, "available_discharge_mw"), (28, "available_charge_mw"),
                       (30, "temperature_c"), (32, "frequency_hz")):  # fmt: skip
        assert read[ref] == pytest.approx(float(tel[field]), rel=1e-5, abs=1e-5), field
    assert read[22] == -2.0 and read[32] == pytest.approx(50.1)
