"""An agent restarted after SIGKILL continues what it published (DESIGN §15): a tripped asset
stays tripped until reset, a running Modbus watchdog keeps its time since the last
heartbeat (and a timeout written over Modbus) instead of starting over, and a fault in
effect stays in effect (and can be deleted)."""

from __future__ import annotations

import signal
from datetime import datetime

import httpx
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import Cluster, asset_id
from tests.cluster.test_multiprocess import regs_f32, until
from tests.cluster.test_same_as_run import read_error

A1, A2, A3, A4 = (asset_id(i) for i in range(1, 5))
WATCHDOG_S = 8


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_trip_and_watchdog_survive_agent_restart(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    cluster.start_headend()
    cluster.start_agent(0, 1)
    await cluster.wait_online(http, [A1, A2, A3, A4])

    r = await http.post(f"/assets/{A1}/trip")
    assert r.status_code == 200 and r.json()["status"] == "fault", r.text
    tripped_at = ts(r.json()["timestamp"])
    # A comm fault on A3 (until deleted): held by the agent, kept over its restart.
    r = await http.post(
        "/faults", json={"kind": "modbus_exception", "asset_id": A3, "params": {"code": 4}}
    )
    assert r.status_code == 201, r.text
    fault_id = r.json()["id"]
    assert await read_error("127.0.0.1", cluster.modbus_ports[2]) == 4

    # A2: watchdog timeout and a setpoint over Modbus, no heartbeat afterwards.
    mb = AsyncModbusTcpClient("127.0.0.1", port=cluster.modbus_ports[1], timeout=5)
    assert await mb.connect()
    try:
        assert not (await mb.write_register(5, WATCHDOG_S, device_id=1)).isError()
        assert not (await mb.write_registers(0, regs_f32(3.0), device_id=1)).isError()
    finally:
        mb.close()

    async def modbus_record() -> dict[str, object] | None:
        recs = (await http.get("/dispatches", params={"asset_id": A2})).json()
        found = [x for x in recs if x["source"] == "modbus" and x["mw"] == 3.0]
        return found[0] if found else None

    async def has_record() -> bool:
        return await modbus_record() is not None

    await until("the Modbus dispatch of A2 on the headend", has_record)
    rec = await modbus_record()
    assert rec is not None and rec["status"] == "accepted"
    submitted = ts(str(rec["submitted_at"]))

    # Killed once the trip is in a published tick and the watchdog has run ≥ 2.5 s (so a
    # timer restarted on resume would expire ≥ 2.5 s late), well before it expires.
    async def published() -> bool:
        t1 = (await http.get(f"/telemetry/{A1}")).json()
        t2 = (await http.get(f"/telemetry/{A2}")).json()
        return (
            t1["status"] == "fault"
            and (ts(t1["timestamp"]) - tripped_at).total_seconds() >= 1
            and (ts(t2["timestamp"]) - submitted).total_seconds() >= 2.5
        )

    await until("a tick after the trip, 2.5 s of watchdog", published)
    agent = cluster.procs["agent0"]
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=10)
    last = (await http.get(f"/telemetry/{A2}")).json()
    assert (ts(last["timestamp"]) - submitted).total_seconds() < WATCHDOG_S - 1, last

    async def offline() -> bool:
        return bool((await http.get(f"/telemetry/{A1}")).json()["status"] == "offline")

    await until("the killed agent's assets offline", offline)
    cluster.start_agent(0, 1)
    await cluster.wait_online(http, [A1, A2, A3, A4])
    t = (await http.get(f"/telemetry/{A1}")).json()
    assert t["status"] == "fault" and "trip" in t["alarms"], t
    r = await http.post("/dispatch", json={"asset_id": A1, "mw": 1})
    assert r.status_code == 422 and "tripped" in r.json()["detail"], r.text

    async def reverted() -> bool:
        got = (await http.get(f"/dispatches/{rec['id']}")).json()
        return bool(got["status"] != "accepted")

    await until("the watchdog to end A2's Modbus dispatch", reverted, 30)
    got = (await http.get(f"/dispatches/{rec['id']}")).json()
    assert got["status"] == "reverted", got
    ran_s = (ts(got["ended_at"]) - submitted).total_seconds()
    assert abs(ran_s - WATCHDOG_S) <= 1.0, (ran_s, got)
    assert "watchdog" in (await http.get(f"/telemetry/{A2}")).json()["alarms"]

    assert await read_error("127.0.0.1", cluster.modbus_ports[2]) == 4
    assert (await http.get(f"/faults/{fault_id}")).json()["state"] == "active"
    r = await http.delete(f"/faults/{fault_id}")
    assert r.status_code == 200 and r.json()["end_reason"] == "deleted", r.text
    assert await read_error("127.0.0.1", cluster.modbus_ports[2]) is None

    r = await http.post(f"/assets/{A1}/reset")
    assert r.status_code == 200 and r.json()["status"] != "fault", r.text
    r = await http.post("/dispatch", json={"asset_id": A1, "mw": 1})
    assert r.status_code == 201, r.text
