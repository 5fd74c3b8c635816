"""Watchdog over Modbus in simulated time (manual clock, DESIGN §4): a Modbus setpoint holds
only while the heartbeat register changes at least once per timeout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bess_sim.runtime import Runtime
from bess_sim.sim import DispatchRequest, DispatchSource, DispatchStatus
from tests.modbus.conftest import ASSET_1, ASSET_2
from tests.modbus.test_server import as_float, f32

Client = Callable[..., Any]
WATCHDOG_BIT = 0b100


async def input_state(client: Any, unit: int) -> tuple[float, int]:
    """(setpoint_mw in effect, alarm word) from the input registers."""
    rr = await client.read_input_registers(0, count=10, device_id=unit)
    return as_float(rr.registers[8:10]), rr.registers[1]


async def test_expiry_reverts_and_a_new_setpoint_after_heartbeat_recovers(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_2)  # BESS-2: watchdog_timeout_s 30 in assets.yaml
    assert not (await client.write_registers(0, f32(5.0), device_id=2)).isError()
    record_id = runtime.fleet.dispatches(ASSET_2, limit=1)[0].id
    await runtime.step(20)
    assert not (await client.write_register(4, 1, device_id=2)).isError()  # heartbeat at t=20
    await runtime.step(20)  # t=40 < 20 + 30: still in effect
    assert await input_state(client, 2) == (5.0, 0)
    assert not (await client.write_register(4, 1, device_id=2)).isError()  # same value: no feed
    await runtime.step(15)  # t=55 > 50: expired
    setpoint, alarms = await input_state(client, 2)
    assert setpoint == 0.0 and alarms & WATCHDOG_BIT
    hr = await client.read_holding_registers(0, count=2, device_id=2)
    assert as_float(hr.registers) == 0.0
    rec = runtime.fleet.dispatch_record(record_id)
    assert rec is not None and rec.status is DispatchStatus.REVERTED
    # recovery: heartbeat resumes, a new setpoint clears the alarm
    assert not (await client.write_register(4, 2, device_id=2)).isError()
    assert not (await client.write_registers(0, f32(3.0), device_id=2)).isError()
    await runtime.step(1)
    assert await input_state(client, 2) == (3.0, 0)


async def test_steady_heartbeat_keeps_the_setpoint(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_2)
    assert not (await client.write_registers(0, f32(-4.0), device_id=2)).isError()
    for beat in range(1, 11):  # 10 × 25 s = 250 s with a 30 s timeout
        await runtime.step(25)
        assert not (await client.write_register(4, beat, device_id=2)).isError()
    assert await input_state(client, 2) == (-4.0, 0)
    assert runtime.fleet.dispatches(ASSET_2, limit=1)[0].status is DispatchStatus.ACCEPTED


async def test_watchdog_timeout_written_over_modbus(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)  # BESS-1 has no watchdog in assets.yaml
    assert not (await client.write_register(5, 10, device_id=1)).isError()
    assert not (await client.write_registers(0, f32(8.0), device_id=1)).isError()
    await runtime.step(9)
    assert (await input_state(client, 1))[0] == 8.0
    await runtime.step(2)
    setpoint, alarms = await input_state(client, 1)
    assert setpoint == 0.0 and alarms & WATCHDOG_BIT
    # 0 switches it off again
    assert not (await client.write_register(5, 0, device_id=1)).isError()
    assert not (await client.write_registers(0, f32(8.0), device_id=1)).isError()
    await runtime.step(100)
    assert await input_state(client, 1) == (8.0, 0)


async def test_rest_setpoints_are_not_watched(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_2)
    runtime.fleet.dispatch(DispatchRequest(ASSET_2, 2.0, source=DispatchSource.REST))
    await runtime.step(120)
    assert await input_state(client, 2) == (2.0, 0)
