"""A shard of more than ``wire.PART_ROWS`` assets publishes each tick in parts (NATS's
default max_payload is 1 MB; one message per tick stopped working past ~5,000 assets per
agent): every part reaches the headend, a step waits for all of them, history keeps one frame
per tick, and a restarted agent resumes the assets of every part."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

from bess_sim.cluster import wire
from bess_sim.cluster.bus import Bus
from tests.cluster.conftest import SITE, Cluster, asset_id, free_port

START = "2026-01-01T00:00:00Z"
N_ASSETS = 2 * wire.PART_ROWS + 50  # three parts
UNITS_PER_PORT = 200


def _write_many(path: Path, n: int) -> list[int]:
    ports = [free_port() for _ in range((n + UNITS_PER_PORT - 1) // UNITS_PER_PORT)]
    lines = ["sites:", f"  - {{id: {SITE}, name: S1, location: Lab}}", "assets:"]
    for i in range(n):
        port, unit = ports[i // UNITS_PER_PORT], 1 + i % UNITS_PER_PORT
        lines.append(
            f"  - {{id: {asset_id(i + 1)}, site_id: {SITE}, name: B{i + 1}, location: Lab, "
            "capacity_mwhr: 40, max_mw: 20, min_mw: -20, ramp_rate_mw_per_min: 1200, "
            f"efficiency: 0.95, modbus: {{port: {port}, unit_id: {unit}}}}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return ports


async def _step(http: httpx.AsyncClient, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:  # the heartbeat telling the headend N may trail the first telemetry
        r = await http.post("/sim/step", json={"seconds": seconds}, timeout=60)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.2)


async def test_a_tick_in_parts_reaches_the_headend_whole(cluster: Cluster) -> None:
    _write_many(cluster.assets_file, N_ASSETS)
    first, last = asset_id(1), asset_id(N_ASSETS)
    clock = ("--clock", "manual", "--start-time", START)
    cluster.start("headend", "headend", "--http-port", str(cluster.http_port), *clock)
    cluster.start("agent0", "agent", "--shard", "0/1", *clock)
    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=30) as http:
        await cluster.wait_online(http, [first, last])
        r = await http.post("/dispatch", json={"asset_id": last, "mw": 10})
        assert r.status_code == 201, r.text
        r = await _step(http, 3)
        assert r.status_code == 200, r.text
        # Answered once every part of the stepped tick is mirrored: the last part too.
        for aid in (first, asset_id(wire.PART_ROWS + 1), last):
            t = (await http.get(f"/telemetry/{aid}")).json()
            assert t["timestamp"] == "2026-01-01T00:00:03Z", t
        soc_before = (await http.get(f"/telemetry/{last}")).json()["soc_mwhr"]
        assert soc_before < 20.0  # discharging at 10 MW from 50 %
        # One history frame per tick: three rows each, not split between parts.
        for aid in (first, last):
            rows = (await http.get(f"/telemetry/{aid}/history", params={"limit": 10})).json()
            assert len(rows) == 3, rows

        async with Bus(cluster.nats_url, wire.Subjects(cluster.prefix), "test") as bus:
            s = bus.subjects
            parts = []
            for part in range(4):
                data = await bus.last_message(s.telemetry_stream, s.telemetry(0, part))
                parts.append(None if data is None else wire.decode_snapshots(data))
        assert parts[3] is None
        sizes = [len(p.snapshots) for p in parts[:3] if p is not None]
        assert sizes == [wire.PART_ROWS, wire.PART_ROWS, 50]
        assert all(p is not None and (p.part, p.parts) == (i, 3) for i, p in enumerate(parts[:3]))

        # The agent killed and restarted: it resumes the assets of the last part too.
        cluster.procs["agent0"].send_signal(signal.SIGKILL)
        cluster.procs["agent0"].wait(timeout=10)
        cluster.start("agent0b", "agent", "--shard", "0/1", *clock)
        r = await _step(http, 1)
        assert r.status_code == 200, r.text
        t = (await http.get(f"/telemetry/{last}")).json()
        assert t["timestamp"] == "2026-01-01T00:00:04Z", t
        assert t["current_mw"] == 10.0  # its dispatch still in effect
        assert soc_before - 0.01 < t["soc_mwhr"] < soc_before, (soc_before, t)
