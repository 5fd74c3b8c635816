"""Headend killed and restarted (DESIGN §15): the agents keep ticking and answering Modbus
meanwhile; the new headend shows their state at once and commands work again."""

from __future__ import annotations

import asyncio
import signal
import struct

import httpx
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import Cluster, asset_id

IDS = [asset_id(i) for i in range(1, 5)]


async def test_agents_keep_answering_while_the_headend_is_down(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    cluster.start_headend()
    cluster.start_agent(0, 1)
    await cluster.wait_online(http, IDS)
    r = await http.post("/dispatch", json={"asset_id": IDS[1], "mw": 4})
    assert r.status_code == 201, r.text
    # Faults held by the agent: listed again by the new headend (from the faults stream),
    # with the REST view of a value override (from the agent's telemetry).
    r = await http.post(
        "/faults",
        json={
            "kind": "value_override",
            "asset_id": IDS[3],
            "params": {"field": "soc_pct", "value": 7},
        },
    )
    assert r.status_code == 201, r.text
    view = r.json()
    r = await http.post(
        "/faults", json={"kind": "modbus_drop", "asset_id": IDS[2], "duration_s": 1}
    )
    assert r.status_code == 201, r.text
    ended = r.json()["id"]
    await asyncio.sleep(2.5)  # input registers follow at the next tick; the drop ends
    faults_before = (await http.get("/faults")).json()
    assert [f["state"] for f in faults_before] == ["ended", "active"], faults_before

    cluster.procs["headend"].send_signal(signal.SIGKILL)
    cluster.procs["headend"].wait(timeout=10)
    mb = AsyncModbusTcpClient("127.0.0.1", port=cluster.modbus_ports[1], timeout=5)
    assert await mb.connect()
    try:
        stamps = []
        for _ in range(3):
            rr = await mb.read_input_registers(6, count=14, device_id=1)
            assert not rr.isError()
            setpoint = struct.unpack(">f", struct.pack(">HH", *rr.registers[2:4]))[0]
            assert setpoint == 4.0  # input 8: the dispatch in effect
            stamps.append((rr.registers[12] << 16) | rr.registers[13])  # input 18: timestamp
            await asyncio.sleep(1.2)
        assert stamps[0] < stamps[1] < stamps[2]  # still ticking without a headend
    finally:
        mb.close()

    cluster.start_headend()
    await cluster.wait_online(http, IDS)
    assert (await http.get("/faults")).json() == faults_before
    assert (await http.get(f"/faults/{ended}")).json()["end_reason"] == "elapsed"
    assert (await http.get(f"/faults/{view['id']}")).json() == view
    assert (await http.get(f"/telemetry/{IDS[3]}")).json()["soc_pct"] == 7.0
    t = (await http.get(f"/telemetry/{IDS[1]}")).json()
    assert t["setpoint_mw"] == 4.0 and t["status"] == "discharging"
    r = await http.post("/dispatch", json={"asset_id": IDS[1], "mw": 0})
    assert r.status_code == 201, r.text

    # Trip and reset go to the owning agent too (DESIGN §11 over request–reply).
    r = await http.post(f"/assets/{IDS[2]}/trip")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "fault" and "trip" in r.json()["alarms"]
    r = await http.post("/dispatch", json={"asset_id": IDS[2], "mw": 1})
    assert r.status_code == 422 and "tripped" in r.json()["detail"], r.text
    r = await http.post(f"/assets/{IDS[2]}/reset")
    assert r.status_code == 200 and r.json()["status"] != "fault", r.text
    r = await http.post("/dispatch", json={"asset_id": IDS[2], "mw": 1})
    assert r.status_code == 201, r.text

    # Forwarded to the agent since: a fault (its effects are covered by test_same_as_run).
    r = await http.post("/faults", json={"kind": "modbus_offline", "asset_id": IDS[0]})
    assert r.status_code == 201, r.text
    assert (await http.get(f"/faults/{r.json()['id']}")).json()["state"] == "active"

    # Registration is checked as run does (an assets.yaml asset: 409) ...
    r = await http.delete(f"/assets/{IDS[0]}")
    assert r.status_code == 409 and "managed by" in r.json()["detail"], r.text
    # ... and scenarios run on the headend (real-time clock here: sampled from the mirror).
    yaml = {"Content-Type": "application/yaml"}
    r = await http.post(
        "/scenarios", content=b"name: x\nsteps: [{at: 1, dispatch: {}}]\n", headers=yaml
    )
    assert r.status_code == 422, r.text  # checked as run does
    scenario = (
        "name: live\nsteps:\n"
        "  - {at: 0, dispatch: {asset: B4, mw: 2, duration_s: 60}}\n"
        "  - {at: 2, expect: {asset: B4, field: setpoint_mw, op: '==', value: 2}}\n"
    )
    r = await http.post("/scenarios", content=scenario.encode(), headers=yaml)
    assert r.status_code == 201, r.text
    for _ in range(100):
        status = (await http.get("/scenarios/current")).json()
        if status["state"] != "running":
            break
        await asyncio.sleep(0.1)
    assert status["state"] == "passed", status
    t = (await http.get(f"/telemetry/{IDS[3]}")).json()
    assert t["setpoint_mw"] == 2.0, t  # the agent's state, not only the mirror's
