"""Manual clock across processes (DESIGN §15): ``POST /sim/step`` on the headend is
broadcast to every agent and answered once each has stepped and its telemetry is mirrored;
with an agent offline the step is refused (503), never half-done silently."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.cluster.conftest import Cluster, asset_id

A1, A2, A3, A4 = (asset_id(i) for i in range(1, 5))
START = "2026-01-01T00:00:00Z"


async def test_step_is_acknowledged_by_every_agent(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    clock = ("--clock", "manual", "--start-time", START)
    cluster.start("headend", "headend", "--http-port", str(cluster.http_port), *clock)
    cluster.start("agent0", "agent", "--shard", "0/2", *clock)
    cluster.start("agent1", "agent", "--shard", "1/2", *clock)
    await cluster.wait_online(http, [A1, A2, A3, A4])
    # The heartbeat (which tells the headend N) may trail the first telemetry by 0.5 s.
    deadline = time.monotonic() + 30
    while True:
        r = await http.post("/sim/step", json={"seconds": 10})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert r.status_code == 200, r.text
    assert r.json()["ticks"] == 10 and r.json()["tick"] == 10

    # Right after the answer, every asset on the headend is at the stepped time.
    for aid in (A1, A2, A3, A4):
        t = (await http.get(f"/telemetry/{aid}")).json()
        assert t["timestamp"] == "2026-01-01T00:00:10Z", t

    r = await http.post("/dispatch", json={"asset_id": A2, "mw": 10})
    assert r.status_code == 201, r.text
    r = await http.post("/sim/step", json={"seconds": 3600})
    assert r.status_code == 200, r.text
    t = (await http.get(f"/telemetry/{A2}")).json()
    assert t["timestamp"] == "2026-01-01T01:00:10Z"
    assert t["current_mw"] == 10.0
    # 50 MWh at 50 %, an hour at 10 MW (0.5 s of ramp at 20 MW/s), efficiency 0.95.
    assert 25 - 10 / 0.95 - 0.01 < t["soc_mwhr"] < 25 - 10 / 0.95 + 0.01, t
    assert (await http.get("/health")).json()["tick"] == 3610

    cluster.procs["agent1"].send_signal(signal.SIGKILL)
    cluster.procs["agent1"].wait(timeout=10)
    await asyncio.sleep(3.0)
    assert (await http.get(f"/telemetry/{A2}")).json()["status"] == "offline"
    r = await http.post("/sim/step", json={"seconds": 1})
    assert r.status_code == 503, r.text
    assert "offline" in r.json()["detail"]
