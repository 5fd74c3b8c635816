"""SunSpec profile over real Modbus TCP, with pysunspec2's own client as the independent
SunSpec master (DESIGN §13): scan, values against REST, writes, watchdog, exception codes."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import httpx
import pytest
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from bess_sim.runtime import Runtime
from bess_sim.sim import DispatchStatus
from tests.modbus.conftest import (
    ASSET_1,
    ASSET_2,
    ASSET_3,
    TIMEOUT_S,
    mbap,
    port_of,
    read_frame,
    unit_of,
)

MODELS = (1, 701, 702, 704, 713, 802)


def _scan(port: int, unit: int) -> SunSpecModbusClientDeviceTCP:
    dev = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port,
                                       timeout=TIMEOUT_S)  # fmt: skip
    dev.scan()
    return dev


async def scan(rt: Runtime, asset_id: str) -> SunSpecModbusClientDeviceTCP:
    """A scanned pysunspec2 device (its blocking socket client runs in a thread)."""
    return await asyncio.to_thread(_scan, port_of(rt, asset_id), unit_of(rt, asset_id))


async def reread(dev: SunSpecModbusClientDeviceTCP, mid: int) -> Any:
    model = dev.models[mid][0]
    await asyncio.to_thread(model.read)
    return model


async def telemetry(rt: Runtime, asset_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
        r = await c.get(f"/telemetry/{asset_id}")
        assert r.status_code == 200
        return dict(r.json())


async def raw(rt: Runtime, asset_id: str, pdu: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(rt, asset_id))
    try:
        writer.write(mbap(7, unit_of(rt, asset_id), pdu))
        tid, _, reply = await read_frame(reader)
        assert tid == 7
        return reply
    finally:
        writer.close()


async def test_scan_finds_every_model_on_every_asset(runtime: Runtime) -> None:
    # ASSET_1 and ASSET_2 share a port (units 1 and 2): each answers with its own identity.
    for asset_id in (ASSET_1, ASSET_2, ASSET_3):
        dev = await scan(runtime, asset_id)
        try:
            assert [m for m in dev.models if isinstance(m, int)] == list(MODELS)
            common = dev.models[1][0]
            spec = runtime.fleet.spec(asset_id)
            assert common.Mn.value == "bess-sim"
            assert common.Md.value == spec.name
            assert common.SN.value == asset_id.replace("-", "")
            assert common.DA.value == spec.modbus.unit_id
        finally:
            dev.close()


async def test_scaled_values_equal_rest_of_the_same_tick(runtime: Runtime) -> None:
    # discharge 3 MW on BESS-3 and let it ramp part of the way
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as c:
        r = await c.post("/dispatch", json={"asset_id": ASSET_3, "mw": 3.0})
        assert r.status_code == 201
    await runtime.step(7)
    dev = await scan(runtime, ASSET_3)
    try:
        t = await telemetry(runtime, ASSET_3)
        m701, m713, m802 = (await reread(dev, 701), await reread(dev, 713), await reread(dev, 802))
        w_step = 10.0**m701.W_SF.value
        assert m701.W.cvalue == pytest.approx(t["current_mw"] * 1e6, abs=w_step / 2)
        assert m802.W.cvalue == pytest.approx(t["current_mw"] * 1e6, abs=w_step / 2)
        assert t["current_mw"] > 0 and m701.W.cvalue > 0  # + W = discharge (export)
        assert m713.SoC.cvalue == pytest.approx(t["soc_pct"], abs=0.005)
        assert m802.SoC.cvalue == pytest.approx(t["soc_pct"], abs=0.005)
        assert m713.WHRtg.cvalue == pytest.approx(t["capacity_mwhr"] * 1e6)
        assert m802.ChaSt.value == 3  # DISCHARGING
        assert m802.State.value == 3  # CONNECTED
        assert m701.InvSt.value == 3  # RUNNING
        # DESIGN §10 fields: implemented once the snapshot carries them (issue 10)
        if "current_mvar" in t:
            assert m701.Var.cvalue == pytest.approx(t["current_mvar"] * 1e6, abs=w_step / 2)
        else:
            assert m701.Var.value is None
        if "frequency_hz" in t:
            assert m701.Hz.cvalue == pytest.approx(t["frequency_hz"], abs=0.0005)
        else:
            assert m701.Hz.value is None
        m702 = await reread(dev, 702)
        dis = t.get("available_discharge_mw", 5.0)
        assert m702.WDisChaRteMax.cvalue == pytest.approx(dis * 1e6, abs=w_step / 2)
        assert m802.WDisChaRteMax.cvalue == pytest.approx(dis * 1e6, abs=w_step / 2)
        assert m702.WMaxRtg.cvalue == pytest.approx(5e6)
        assert m702.WChaRteMaxRtg.cvalue == pytest.approx(5e6)
    finally:
        dev.close()


async def test_wset_write_dispatches_and_shows_in_rest(runtime: Runtime) -> None:
    dev = await scan(runtime, ASSET_1)
    try:
        ctl = dev.models[704][0]
        ctl.WSetEna.value = 1
        ctl.WSet.value = -12_500_000  # W, WSet_SF = 0: charge 12.5 MW
        await asyncio.to_thread(ctl.write)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as c:
            r = await c.get("/dispatches", params={"asset_id": ASSET_1})
            records = r.json()
        assert records[0]["mw"] == -12.5
        assert records[0]["source"] == "modbus"
        assert records[0]["status"] == "accepted"
        assert records[0]["client"].startswith("127.0.0.1:")
        assert len(records) == 1  # enable + setpoint in one go: one dispatch
        ctl = await reread(dev, 704)
        assert ctl.WSet.cvalue == -12_500_000 and ctl.WSetEna.value == 1
        # disabling the control releases the setpoint
        ctl.WSetEna.value = 0
        await asyncio.to_thread(ctl.write)
        assert runtime.fleet.control(ASSET_1).setpoint_mw == 0.0
    finally:
        dev.close()


async def test_wset_staged_while_disabled_applies_on_enable(runtime: Runtime) -> None:
    base = runtime.fleet.spec(ASSET_3)
    assert base.modbus.unit_id == 1
    w_addr, ena_addr = _addr(704, "WSet"), _addr(704, "WSetEna")
    reply = await raw(runtime, ASSET_3, struct.pack(">BHHBi", 16, w_addr, 2, 4, 2_000_000))
    assert reply[0] == 16
    assert runtime.fleet.control(ASSET_3).setpoint_mw == 0.0  # staged, not in effect
    reply = await raw(runtime, ASSET_3, struct.pack(">BHH", 6, ena_addr, 1))
    assert reply[0] == 6
    assert runtime.fleet.control(ASSET_3).setpoint_mw == 2.0


async def test_heartbeatless_revert_timeout_reverts(runtime: Runtime) -> None:
    dev = await scan(runtime, ASSET_1)
    try:
        ctl = dev.models[704][0]
        ctl.WSetRvrtTms.value = 10
        ctl.WSetEna.value = 1
        ctl.WSet.value = 4_000_000
        await asyncio.to_thread(ctl.write)
        record = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
        assert record.status is DispatchStatus.ACCEPTED
        bat = dev.models[802][0]
        for beat in (1, 2):  # CtrlHb changes keep it alive
            await runtime.step(8)
            bat.CtrlHb.value = beat
            await asyncio.to_thread(bat.CtrlHb.write)
        assert runtime.fleet.dispatch_record(record.id).status is DispatchStatus.ACCEPTED  # type: ignore[union-attr]
        await runtime.step(12)  # no heartbeat for > 10 s
        after = runtime.fleet.dispatch_record(record.id)
        assert after is not None and after.status is DispatchStatus.REVERTED
        m704 = await reread(dev, 704)
        assert m704.WSet.cvalue == 0 and m704.WSetRvrtTms.value == 10
        m802 = await reread(dev, 802)
        assert m802.EvtVnd1.value & 0b100  # native alarm word: bit2 watchdog
    finally:
        dev.close()


async def test_alarm_reset_clears_a_trip(runtime: Runtime) -> None:
    runtime.fleet.trip(ASSET_2)
    await runtime.step(1)
    dev = await scan(runtime, ASSET_2)
    try:
        bat = dev.models[802][0]
        assert bat.State.value == 99 and dev.models[701][0].InvSt.value == 6  # FAULT
        bat.AlmRst.value = 1
        await asyncio.to_thread(bat.AlmRst.write)
        assert not runtime.fleet.control(ASSET_2).tripped
    finally:
        dev.close()


def _addr(mid: int, name: str) -> int:
    from bess_sim.sunspec import load_layout

    return load_layout().point(mid, name).address


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (struct.pack(">BHH", 6, 40000, 1), 0x02),  # the marker
        (struct.pack(">BHH", 6, 40002, 1), 0x02),  # model 1 ID
        (struct.pack(">BHH", 6, _addr(701, "W"), 1), 0x02),  # read-only measurement
        (struct.pack(">BHH", 6, _addr(704, "WMaxLimPctEna"), 1), 0x02),  # RW, not implemented
        (struct.pack(">BHH", 6, _addr(704, "WSet"), 1), 0x02),  # half of an int32
        (struct.pack(">BHH", 6, _addr(704, "WSetEna"), 2), 0x03),  # not 0/1
        (struct.pack(">BHH", 6, _addr(704, "WSetMod"), 2), 0x03),  # neither 0 nor 1
        (struct.pack(">BHh", 6, _addr(704, "WSetPct"), 10), 0x03),  # WSetMod is WATTS
        (struct.pack(">BHH", 6, _addr(704, "VarSetEna"), 1), 0x02),  # no reactive on BESS-1
        (struct.pack(">BHH", 6, _addr(802, "AlmRst"), 7), 0x03),
        (struct.pack(">BHHBI", 16, _addr(704, "WSetRvrtTms"), 2, 4, 70000), 0x03),
        (struct.pack(">BHHBi", 16, _addr(704, "WSetEna"), 4, 8, 0) + b"\0\1" * 2, 0x03),
        (struct.pack(">BHH", 3, 40400, 125), 0x02),  # past the end model
        (struct.pack(">BHH", 3, 40000, 126), 0x03),  # quantity > 125
    ],
)
async def test_bad_requests_answer_the_right_exception(
    runtime: Runtime, pdu: bytes, code: int
) -> None:
    before = len(runtime.fleet.dispatches(ASSET_1, limit=100))
    reply = await raw(runtime, ASSET_1, pdu)
    assert reply == bytes((pdu[0] | 0x80, code))
    assert len(runtime.fleet.dispatches(ASSET_1, limit=100)) == before


async def test_out_of_range_wset_is_rejected_with_0x03_and_recorded(runtime: Runtime) -> None:
    ena, w = _addr(704, "WSetEna"), _addr(704, "WSet")
    assert w == ena + 2
    pdu = struct.pack(">BHHBHHi", 16, ena, 4, 8, 1, 1, 60_000_000)  # 60 MW > max 50 MW
    assert await raw(runtime, ASSET_1, pdu) == bytes((0x90, 0x03))
    last = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert last.status is DispatchStatus.REJECTED and last.source.value == "modbus"
    assert runtime.fleet.control(ASSET_1).setpoint_mw == 0.0
    # a refused write changed nothing: WSetEna still reads 0
    reply = await raw(runtime, ASSET_1, struct.pack(">BHH", 3, ena, 1))
    assert reply == bytes((3, 2, 0, 0))


async def test_native_map_still_served_beside_sunspec(runtime: Runtime) -> None:
    reply = await raw(runtime, ASSET_1, struct.pack(">BHH", 4, 0, 2))  # native status, alarms
    assert reply[0] == 4
    reply = await raw(runtime, ASSET_1, struct.pack(">BHH", 3, 40000, 4))
    assert reply == bytes((3, 8)) + b"SunS" + struct.pack(">HH", 1, 66)
