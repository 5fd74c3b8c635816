"""SunSpec 704 reactive setpoint (VarSetEna/VarSetMod/VarSetPri/VarSet) and WSetMod over real
Modbus TCP, with pysunspec2's client as the independent master (DESIGN §10, §13)."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
from sunspec2.modbus.modbus import ModbusClientException

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from bess_sim.sim import DispatchStatus
from bess_sim.sunspec import load_layout
from tests.conftest import ASSET_1, ASSET_3, fleet_data, two_free_tcp_ports
from tests.modbus.conftest import TIMEOUT_S, mbap, port_of, read_frame, unit_of

# BESS-1 (50 MW) gets a reactive capability. q_max above S_max on purpose: so that the S_max
# rule, not the q range, is what refuses a VarSet of 60 Mvar.
REACTIVE = {"s_max_mva": 55.0, "q_min_mvar": -40.0, "q_max_mvar": 70.0, "priority": "p"}


@pytest.fixture
async def rt(tmp_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    data = fleet_data(*two_free_tcp_ports())
    data["assets"][0]["reactive"] = REACTIVE
    path = tmp_path / "reactive.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = make_settings(assets=path)
    async with Runtime(settings, load_assets(path), load_register_map(settings.register_map)) as r:
        yield r


def _scan(port: int, unit: int) -> SunSpecModbusClientDeviceTCP:
    dev = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port,
                                       timeout=TIMEOUT_S)  # fmt: skip
    dev.scan()
    return dev


@pytest.fixture
async def scan(rt: Runtime) -> AsyncIterator[Callable[..., Any]]:
    """``await scan(asset_id)`` → a scanned pysunspec2 device, closed at the end."""
    devices: list[SunSpecModbusClientDeviceTCP] = []

    async def make(asset_id: str = ASSET_1) -> SunSpecModbusClientDeviceTCP:
        dev = await asyncio.to_thread(_scan, port_of(rt, asset_id), unit_of(rt, asset_id))
        devices.append(dev)
        return dev

    yield make
    for dev in devices:
        dev.close()


async def write(model: Any, **points: float) -> None:
    """Set points on a pysunspec2 model and write the dirty ones (its own request grouping)."""
    for name, value in points.items():
        getattr(model, name).value = value
    await asyncio.to_thread(model.write)


async def reread(dev: SunSpecModbusClientDeviceTCP, mid: int) -> Any:
    model = dev.models[mid][0]
    await asyncio.to_thread(model.read)
    return model


async def get(rt: Runtime, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
        r = await c.get(path, params=params)
        assert r.status_code == 200
        return r.json()


async def raw(rt: Runtime, asset_id: str, pdu: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(rt, asset_id))
    try:
        writer.write(mbap(9, unit_of(rt, asset_id), pdu))
        return (await read_frame(reader))[2]
    finally:
        writer.close()


def addr(name: str) -> int:
    return load_layout().point(704, name).address


async def test_varset_dispatches_with_the_mw_in_effect_and_shows_in_rest_and_701(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    dev = await scan()
    ctl = dev.models[704][0]
    assert ctl.VarSetMod.value == 4 and ctl.VarSetPri.value == 0  # VARS; ACTIVE = priority p
    assert ctl.VarSetEna.value == 0 and ctl.VarSet.cvalue == 0
    assert dev.models[702][0].CtrlModes.value == 0b110  # FIXED_W | FIXED_VAR
    await write(ctl, WSetEna=1, WSet=10_000_000)
    await write(ctl, VarSetEna=1, VarSet=-8_000_000)  # absorb 8 Mvar
    records = await get(rt, "/dispatches", asset_id=ASSET_1)
    assert [r["status"] for r in records] == ["accepted", "superseded"]
    newest = records[0]
    assert newest["mw"] == 10.0 and newest["mvar"] == -8.0  # the MW setpoint is kept
    assert newest["source"] == "modbus" and newest["client"].startswith("127.0.0.1:")
    assert records[1]["mw"] == 10.0 and records[1]["mvar"] == 0.0
    m704 = await reread(dev, 704)
    assert m704.VarSetEna.value == 1 and m704.VarSet.cvalue == -8_000_000
    assert m704.WSet.cvalue == 10_000_000
    await rt.step(60)  # ramps 10 MW(var)/min: P and Q reach their targets
    t = await get(rt, f"/telemetry/{ASSET_1}")
    m701 = await reread(dev, 701)
    step = 10.0**m701.Var_SF.value
    assert t["current_mvar"] == pytest.approx(-8.0)
    assert m701.Var.cvalue == pytest.approx(t["current_mvar"] * 1e6, abs=step / 2)
    assert m701.VA.cvalue == pytest.approx(math.hypot(10e6, 8e6), abs=step / 2)
    assert t["setpoint_mvar"] == -8.0 and t["setpoint_mw"] == 10.0


async def test_varset_beyond_s_max_answers_0x03_and_changes_nothing(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    dev = await scan()
    ctl = dev.models[704][0]
    await write(ctl, VarSetEna=1, VarSet=5_000_000)
    before = rt.fleet.control(ASSET_1)
    assert before.setpoint_mvar == 5.0
    ctl.VarSet.value = 60_000_000  # 60 Mvar > S_max 55 MVA (inside q_max 70)
    with pytest.raises(ModbusClientException, match="exception: 3"):
        await asyncio.to_thread(ctl.write)
    assert rt.fleet.control(ASSET_1) == before
    last = rt.fleet.dispatches(ASSET_1, limit=1)[0]
    assert last.status is DispatchStatus.REJECTED and last.mvar == 60.0
    assert last.reason is not None and "s_max_mva" in last.reason
    assert (await reread(dev, 704)).VarSet.cvalue == 5_000_000  # still the one in effect
    # the same write as a raw frame: exactly exception 0x03 for FC16
    pdu = struct.pack(">BHHBi", 16, addr("VarSet"), 2, 4, -41_000_000)  # below q_min -40
    assert await raw(rt, ASSET_1, pdu) == bytes((0x90, 0x03))
    assert rt.fleet.control(ASSET_1) == before


async def test_varset_keeps_what_is_left_of_a_timed_dispatch(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
        r = await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": 5.0, "duration_s": 600})
        assert r.status_code == 201
    await rt.step(100)
    dev = await scan()
    await write(dev.models[704][0], VarSetEna=1, VarSet=3_000_000)
    rec = rt.fleet.dispatches(ASSET_1, limit=1)[0]
    assert rec.mw == 5.0 and rec.mvar == 3.0
    assert rec.duration_s == pytest.approx(500.0)
    await rt.step(500)
    assert rt.fleet.dispatch_record(rec.id).status is DispatchStatus.COMPLETED  # type: ignore[union-attr]
    assert rt.fleet.control(ASSET_1).setpoint_mw == 0.0


async def test_varset_enable_stages_and_disable_releases_q_only(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    dev = await scan()
    ctl = dev.models[704][0]
    await write(ctl, WSetEna=1, WSet=-20_000_000)
    await write(ctl, VarSet=12_000_000)  # VarSetEna = 0: staged
    assert rt.fleet.control(ASSET_1).setpoint_mvar == 0.0
    assert (await reread(dev, 704)).VarSet.cvalue == 12_000_000  # reads back the staged value
    n = len(rt.fleet.dispatches(ASSET_1))
    await write(ctl, VarSetEna=1)
    assert rt.fleet.control(ASSET_1).setpoint_mvar == 12.0
    assert len(rt.fleet.dispatches(ASSET_1)) == n + 1
    await write(ctl, VarSetEna=0)  # the reactive function off: Q → 0, P stays
    control = rt.fleet.control(ASSET_1)
    assert control.setpoint_mvar == 0.0 and control.setpoint_mw == -20.0
    n = len(rt.fleet.dispatches(ASSET_1))
    ctl.VarSetEna.value = 0
    ctl.VarSetEna.dirty = True  # pysunspec2 writes only changed points: force the rewrite
    await asyncio.to_thread(ctl.write)
    assert len(rt.fleet.dispatches(ASSET_1)) == n  # already 0: no dispatch


async def test_varset_mode_and_priority_other_than_configured_answer_0x03(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    ctl = (await scan()).models[704][0]
    for name, value in (("VarSetMod", 1), ("VarSetMod", 0), ("VarSetPri", 1), ("VarSetEna", 2)):
        getattr(ctl, name).value = value
        with pytest.raises(ModbusClientException, match="exception: 3"):
            await asyncio.to_thread(ctl.write)
        getattr(ctl, name).dirty = False
    await write(ctl, VarSetMod=4, VarSetPri=0)  # the values in effect are accepted
    assert rt.fleet.dispatches(ASSET_1) == []


async def test_reactive_points_of_an_asset_without_reactive_are_not_implemented(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    ctl = (await scan(ASSET_3)).models[704][0]
    assert ctl.VarSetEna.value is None and ctl.VarSet.value is None
    assert ctl.VarSetMod.value is None
    for pdu in (struct.pack(">BHH", 6, addr("VarSetEna"), 1),
                struct.pack(">BHHBi", 16, addr("VarSet"), 2, 4, 0)):  # fmt: skip
        assert await raw(rt, ASSET_3, pdu) == bytes((pdu[0] | 0x80, 0x02))


async def test_wset_mod_percent_of_wmax(rt: Runtime, scan: Callable[..., Any]) -> None:
    dev = await scan()
    ctl = dev.models[704][0]
    assert ctl.WSetMod.value == 1  # WATTS at start
    await write(ctl, WSetMod=0, WSetEna=1)
    ctl.WSetPct.cvalue = -50  # % of WMax 50 MW, charging (cvalue: pysunspec2 applies the SF)
    await asyncio.to_thread(ctl.write)
    rec = rt.fleet.dispatches(ASSET_1, limit=1)[0]
    assert rec.mw == -25.0 and rec.source.value == "modbus"
    m704 = await reread(dev, 704)
    assert m704.WSetMod.value == 0 and m704.WSetPct.cvalue == -50
    assert m704.WSet.cvalue == -25_000_000  # the same setpoint in W
    # WSet is not the selected register in W_MAX_PCT mode
    ctl.WSet.value = 1_000_000
    with pytest.raises(ModbusClientException, match="exception: 3"):
        await asyncio.to_thread(ctl.write)
    ctl.WSet.dirty = False
    assert rt.fleet.control(ASSET_1).setpoint_mw == -25.0
    # raw 12000 × 10^-2 = 120 % > max_mw: rejected by the dispatch validation, recorded
    assert await raw(rt, ASSET_1, struct.pack(">BHh", 6, addr("WSetPct"), 12000)) == b"\x86\x03"
    assert rt.fleet.dispatches(ASSET_1, limit=1)[0].status is DispatchStatus.REJECTED
    # back to watts, WSet in the same request (WSetMod and WSet are adjacent)
    await write(ctl, WSetMod=1, WSet=7_000_000)
    assert rt.fleet.control(ASSET_1).setpoint_mw == 7.0
    assert await raw(rt, ASSET_1, struct.pack(">BHh", 6, addr("WSetPct"), 10)) == b"\x86\x03"
    assert await raw(rt, ASSET_1, struct.pack(">BHH", 6, addr("WSetMod"), 2)) == b"\x86\x03"
    assert rt.fleet.control(ASSET_1).setpoint_mw == 7.0


async def test_wset_ena_0_ends_any_active_power_setpoint_and_keeps_q(
    rt: Runtime, scan: Callable[..., Any]
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
        r = await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": 8.0, "mvar": 4.0})
        assert r.status_code == 201
        rest_id = r.json()["id"]
    ctl = (await scan()).models[704][0]
    assert ctl.WSetEna.value == 0 and ctl.WSet.cvalue == 8_000_000  # REST shows in WSet
    ctl.WSetEna.value = 0
    ctl.WSetEna.dirty = True
    await asyncio.to_thread(ctl.write)  # the fixed-W function is off: no active power
    control = rt.fleet.control(ASSET_1)
    assert control.setpoint_mw == 0.0 and control.setpoint_mvar == 4.0
    assert rt.fleet.dispatch_record(rest_id).status is DispatchStatus.SUPERSEDED  # type: ignore[union-attr]
    newest = rt.fleet.dispatches(ASSET_1, limit=1)[0]
    assert newest.mw == 0.0 and newest.mvar == 4.0 and newest.source.value == "modbus"
