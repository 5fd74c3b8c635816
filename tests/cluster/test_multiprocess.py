"""Headend + two shard agents as real processes over the real NATS server (DESIGN §15):
REST dispatch answered by the owning agent, Modbus on the agent, Modbus writes reported to
the headend, and an agent killed with SIGKILL → its assets offline within 3 s, 503, the
other agent's assets unaffected."""

from __future__ import annotations

import asyncio
import signal
import struct
import time

import httpx
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import START_TIMEOUT_S, Cluster, asset_id, metric_samples

A1, A2, A3, A4 = (asset_id(i) for i in range(1, 5))  # shard 0: A1, A3; shard 1: A2, A4


def f32(regs: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *regs))[0])


def regs_f32(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


async def until(what: str, check: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert callable(check)
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def agent_gauges(http: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    """``bess_agent_*`` gauges of the headend's /metrics: (name, shard) → value."""
    return {
        (s.name, s.labels["shard"]): s.value
        for s in await metric_samples(http)
        if s.name.startswith("bess_agent_")
    }


async def test_dispatch_modbus_and_agent_kill(cluster: Cluster, http: httpx.AsyncClient) -> None:
    cluster.start_headend()
    cluster.start_agent(0, 2)
    cluster.start_agent(1, 2)
    await cluster.wait_online(http, [A1, A2, A3, A4])

    # Per-agent gauges from the heartbeats: both online, two assets each, ticking.
    async def gauges_in() -> bool:
        g = await agent_gauges(http)
        return all(g.get(("bess_agent_tick_p99_seconds", k), 0) > 0 for k in "01")

    await until("per-agent tick gauges on the headend", gauges_in)
    g = await agent_gauges(http)
    for k in "01":
        assert g[("bess_agent_online", k)] == 1.0 and g[("bess_agent_assets", k)] == 2.0, g
        assert g[("bess_agent_tick", k)] >= 1.0 and g[("bess_agent_tick_p99_seconds", k)] < 1.0

    # REST dispatch answered by agent 0 (A1 is asset index 0).
    r = await http.post("/dispatch", json={"asset_id": A1, "mw": 5})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert (rec["status"], rec["source"], rec["mw"]) == ("accepted", "rest", 5.0)
    # The same 422 reason a single process gives (§4), and the rejected record.
    r = await http.post("/dispatch", json={"asset_id": A2, "mw": 1000})
    assert r.status_code == 422
    assert r.json()["detail"] == "mw 1000 is outside [-20, 20] MW for asset B2"
    assert r.json()["dispatch"]["status"] == "rejected"
    r = await http.post("/dispatch", json={"asset_id": A2, "mw": 1, "mode": "charge"})
    assert r.status_code == 422
    assert "mode" in r.json()["detail"]
    r = await http.post("/dispatch", json={"asset_id": asset_id(99), "mw": 1})
    assert r.status_code == 404
    got = (await http.get(f"/dispatches/{rec['id']}")).json()
    assert got["id"] == rec["id"]

    # The agent's Modbus slave holds the REST setpoint (input 8 = setpoint_mw).
    mb1 = AsyncModbusTcpClient("127.0.0.1", port=cluster.modbus_ports[0], timeout=5)
    mb2 = AsyncModbusTcpClient("127.0.0.1", port=cluster.modbus_ports[1], timeout=5)
    assert await mb1.connect() and await mb2.connect()
    try:

        async def setpoint_on_agent() -> bool:
            rr = await mb1.read_input_registers(8, count=2, device_id=1)
            return not rr.isError() and f32(rr.registers) == 5.0

        await until("A1 setpoint 5 MW on agent 0's Modbus", setpoint_on_agent)

        async def telemetry_moves() -> bool:
            t = (await http.get(f"/telemetry/{A1}")).json()
            return bool(t["setpoint_mw"] == 5.0 and t["current_mw"] > 0)

        await until("A1 discharging on the headend", telemetry_moves)

        # A Modbus setpoint write on agent 1 is reported to the headend (source modbus).
        wr = await mb2.write_registers(0, regs_f32(-20.0), device_id=1)
        assert not wr.isError()

        async def modbus_record() -> bool:
            recs = (await http.get("/dispatches", params={"asset_id": A2})).json()
            return any(x["source"] == "modbus" and x["mw"] == -20.0 for x in recs)

        await until("the Modbus dispatch of A2 on the headend", modbus_record)

        # Charged well away from its initial SOC (25 MWh), so a restart that forgot it shows.
        async def charged() -> bool:
            return bool((await http.get(f"/telemetry/{A2}")).json()["soc_mwhr"] > 25.02)

        await until("A2 charged by 0.02 MWh", charged)

        # SIGKILL agent 1: A2 and A4 offline within 3 s of the kill, commands to them 503.
        cluster.procs["agent1"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        cluster.procs["agent1"].wait(timeout=10)
        await asyncio.sleep(max(0.0, killed + 3.0 - time.monotonic()))
        for aid in (A2, A4):
            assert (await http.get(f"/telemetry/{aid}")).json()["status"] == "offline"
        g = await agent_gauges(http)
        assert (g[("bess_agent_online", "1")], g[("bess_agent_online", "0")]) == (0.0, 1.0), g
        r = await http.post("/dispatch", json={"asset_id": A2, "mw": 1})
        assert r.status_code == 503, r.text
        assert "offline" in r.json()["detail"]
        # Agent 0's assets are unaffected: online, commands answered, Modbus answering.
        for aid in (A1, A3):
            assert (await http.get(f"/telemetry/{aid}")).json()["status"] != "offline"
        r = await http.post("/dispatch", json={"asset_id": A3, "mw": -2})
        assert r.status_code == 201, r.text
        rr = await mb1.read_input_registers(8, count=2, device_id=1)
        assert not rr.isError() and f32(rr.registers) == 5.0
        tick = (await http.get("/health")).json()["tick"]

        async def still_ticking() -> bool:
            return bool((await http.get("/health")).json()["tick"] > tick)

        await until("ticks from agent 0 after the kill", still_ticking, START_TIMEOUT_S)

        # Agent 1 restarted: resumes from its last published state, within one tick of SOC,
        # with its dispatch in effect (the Modbus -20 MW of A2).
        before = (await http.get(f"/telemetry/{A2}")).json()
        cluster.start_agent(1, 2)
        await cluster.wait_online(http, [A2, A4])
        after = (await http.get(f"/telemetry/{A2}")).json()
        assert after["setpoint_mw"] == -20.0
        assert (await agent_gauges(http))[("bess_agent_online", "1")] == 1.0
        rows = (await http.get(f"/telemetry/{A2}/history", params={"limit": 1000})).json()
        first = min(
            (r for r in rows if r["timestamp"] > before["timestamp"]),
            key=lambda r: r["timestamp"],
        )
        one_tick_mwh = 20 * 1.0 / 3600 / 0.95  # max_mw for one 1-s tick
        assert abs(first["soc_mwhr"] - before["soc_mwhr"]) <= one_tick_mwh, (before, first)
        r = await http.post("/dispatch", json={"asset_id": A2, "mw": 2})
        assert r.status_code == 201, r.text
    finally:
        mb1.close()
        mb2.close()
