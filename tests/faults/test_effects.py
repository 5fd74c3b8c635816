"""Device faults through the physics and view faults on every face (DESIGN §11): REST, native
Modbus registers (pymodbus client) and the SunSpec block (pysunspec2's client)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_3
from tests.faults.helpers import delete_fault, post_fault
from tests.modbus.test_server import as_float
from tests.modbus.test_sunspec_face import reread, scan

Client = Callable[..., Any]
DERATED_BIT = 1 << 4


async def telemetry(client: httpx.AsyncClient, asset_id: str) -> dict[str, Any]:
    r = await client.get(f"/telemetry/{asset_id}")
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    return out


async def dispatch(client: httpx.AsyncClient, asset_id: str, mw: float) -> None:
    r = await client.post("/dispatch", json={"asset_id": asset_id, "mw": mw})
    assert r.status_code == 201, r.text


async def inputs(mb: Any, unit: int) -> list[int]:
    rr = await mb.read_input_registers(0, count=22, device_id=unit)
    assert not rr.isError()
    return list(rr.registers)


async def test_trip_fault_trips_then_stays_tripped_until_reset(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    await dispatch(client, ASSET_3, 2.0)
    fault = await post_fault(client, {"kind": "trip", "asset_id": ASSET_3, "start_in_s": 5,
                                      "duration_s": 10})  # fmt: skip
    assert fault["state"] == "scheduled"
    await runtime.step(4)
    assert (await telemetry(client, ASSET_3))["status"] == "discharging"
    await runtime.step(1)
    t = await telemetry(client, ASSET_3)
    assert t["status"] == "fault" and "trip" in t["alarms"]
    assert runtime.fleet.dispatches(ASSET_3, limit=1)[0].status.value == "interrupted"
    await runtime.step(10)
    f = (await client.get(f"/faults/{fault['id']}")).json()
    assert f["state"] == "ended" and f["ended_at"] == "2026-01-01T00:00:15Z"
    assert (await telemetry(client, ASSET_3))["status"] == "fault"  # latched, as a real trip
    assert (await client.post(f"/assets/{ASSET_3}/reset")).status_code == 200
    assert (await telemetry(client, ASSET_3))["status"] == "idle"


async def test_derate_caps_available_limits_and_power_with_the_derated_alarm(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await dispatch(client, ASSET_1, 50.0)  # BESS-1: ±50 MW, 10 MW/min
    params = {"discharge_pct": 40, "charge_pct": 50}
    fault = await post_fault(client, {"kind": "derate", "asset_id": ASSET_1, "params": params})
    await runtime.step(300)
    t = await telemetry(client, ASSET_1)
    assert t["current_mw"] == 20.0 and t["setpoint_mw"] == 50.0
    assert t["available_discharge_mw"] == 20.0 and t["available_charge_mw"] == -25.0
    assert "derated" in t["alarms"]
    mb = await modbus_client(ASSET_1)
    regs = await inputs(mb, 1)
    assert regs[1] & DERATED_BIT and as_float(regs[6:8]) == 20.0
    await delete_fault(client, fault["id"])
    await runtime.step(180)
    t = await telemetry(client, ASSET_1)
    assert t["current_mw"] == 50.0 and "derated" not in t["alarms"]
    assert t["available_discharge_mw"] == 50.0


async def test_stuck_accepts_and_echoes_setpoints_but_mw_stays(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await dispatch(client, ASSET_3, 3.0)  # BESS-3: 1 MW/s
    await runtime.step(10)
    fault = await post_fault(client, {"kind": "stuck", "asset_id": ASSET_3})
    await dispatch(client, ASSET_3, -2.0)
    await runtime.step(30)
    t = await telemetry(client, ASSET_3)
    assert t["current_mw"] == 3.0 and t["setpoint_mw"] == -2.0 and t["alarms"] == []
    mb = await modbus_client(ASSET_3)
    hr = await mb.read_holding_registers(0, count=2, device_id=1)
    assert as_float(hr.registers) == -2.0  # the setpoint is echoed
    await delete_fault(client, fault["id"])
    await runtime.step(10)
    assert (await telemetry(client, ASSET_3))["current_mw"] == -2.0


async def test_soc_bias_shows_on_every_face_and_physics_keeps_the_truth(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    true_pct = runtime.fleet.snapshot(ASSET_3).soc_pct  # 20 %
    await post_fault(client, {"kind": "soc_bias", "asset_id": ASSET_3,
                              "params": {"offset_pct": 5, "drift_pct_per_h": 10}})  # fmt: skip
    await runtime.step(360)  # 0.1 h: drift +1
    assert runtime.fleet.snapshot(ASSET_3).soc_pct == pytest.approx(true_pct)
    t = await telemetry(client, ASSET_3)
    assert t["soc_pct"] == pytest.approx(true_pct + 6.0)
    assert t["soc_mwhr"] == pytest.approx((true_pct + 6.0) / 100 * 10.0)
    mb = await modbus_client(ASSET_3)
    regs = await inputs(mb, 1)
    assert as_float(regs[2:4]) == pytest.approx(true_pct + 6.0, abs=1e-4)
    assert regs[16] == round((true_pct + 6.0) * 100)  # soc_pct_x100
    dev = await scan(runtime, ASSET_3)
    try:
        assert (await reread(dev, 713)).SoC.cvalue == pytest.approx(true_pct + 6.0, abs=0.01)
        assert (await reread(dev, 802)).SoC.cvalue == pytest.approx(true_pct + 6.0, abs=0.01)
    finally:
        dev.close()


async def test_frozen_modbus_stops_registers_and_timestamp_rest_keeps_moving(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await dispatch(client, ASSET_3, 2.0)
    await runtime.step(2)
    mb = await modbus_client(ASSET_3)
    fault = await post_fault(client, {"kind": "frozen_telemetry", "asset_id": ASSET_3})
    before = await inputs(mb, 1)
    dev = await scan(runtime, ASSET_3)
    try:
        w_before = (await reread(dev, 701)).W.cvalue
        await runtime.step(5)
        assert await inputs(mb, 1) == before  # timestamp (18..19) included
        assert (await reread(dev, 701)).W.cvalue == w_before  # SunSpec too
        t = await telemetry(client, ASSET_3)
        assert t["timestamp"] == "2026-01-01T00:00:07Z" and t["current_mw"] == 2.0
        await delete_fault(client, fault["id"])
        after = await inputs(mb, 1)
        assert after != before and as_float(after[6:8]) == 2.0
    finally:
        dev.close()


async def test_frozen_rest_stops_rest_but_not_modbus(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await dispatch(client, ASSET_3, 2.0)
    await post_fault(client, {"kind": "frozen_telemetry", "asset_id": ASSET_3,
                              "params": {"surfaces": ["rest"]}})  # fmt: skip
    frozen = await telemetry(client, ASSET_3)
    await runtime.step(5)
    assert await telemetry(client, ASSET_3) == frozen
    mb = await modbus_client(ASSET_3)
    assert as_float((await inputs(mb, 1))[6:8]) == 2.0  # modbus moved (ramp 1 MW/s)


async def test_value_override_nan_offset_scale(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await dispatch(client, ASSET_3, 2.0)
    await runtime.step(5)
    await post_fault(client, {"kind": "value_override", "asset_id": ASSET_3,
                              "params": {"field": "soc_pct", "value": "NaN"}})  # fmt: skip
    await post_fault(client, {"kind": "value_override", "asset_id": ASSET_3,
                              "params": {"field": "current_mw", "scale": 10,
                                         "surfaces": ["modbus"]}})  # fmt: skip
    await post_fault(client, {"kind": "value_override", "asset_id": ASSET_3,
                              "params": {"field": "frequency_hz", "offset": -0.5}})  # fmt: skip
    mb = await modbus_client(ASSET_3)
    regs = await inputs(mb, 1)
    assert math.isnan(as_float(regs[2:4]))
    assert as_float(regs[6:8]) == 20.0  # 2 MW × 10 on Modbus only
    t = await telemetry(client, ASSET_3)
    assert t["soc_pct"] is None  # JSON has no NaN
    assert t["current_mw"] == 2.0 and t["frequency_hz"] == 49.5
    snap = runtime.fleet.snapshot(ASSET_3)  # physics unaffected
    assert math.isfinite(snap.soc_pct) and snap.current_mw == 2.0
    dev = await scan(runtime, ASSET_3)  # the SunSpec block reads the same snapshot
    try:
        assert (await reread(dev, 701)).W.cvalue == pytest.approx(20e6)
    finally:
        dev.close()


async def test_websocket_pushes_the_rest_surface(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    import json

    import websockets

    await post_fault(client, {"kind": "value_override", "asset_id": ASSET_3,
                              "params": {"field": "soc_pct", "value": "NaN"}})  # fmt: skip
    url = f"ws://127.0.0.1:{runtime.http_port}/ws/telemetry?asset_id={ASSET_3}"
    async with websockets.connect(url) as ws:
        first = json.loads(await ws.recv())
        await runtime.step(1)
        second = json.loads(await ws.recv())
    assert first["snapshots"][0]["soc_pct"] is None
    assert second["snapshots"][0]["soc_pct"] is None
