"""The forwarded routes answer on the scale-out headend exactly as on ``bess-sim run``
(DESIGN §11 faults, §10 grid over §15): the same requests against a single process and
against headend + two agents (real processes, real NATS, the same assets.yaml, manual clock
from the same start) give the same status and body (random ids and the client's port aside),
and the effect is where it matters: a comm fault on the agent's Modbus port, a frequency in
the agents' telemetry."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import (
    START_TIMEOUT_S,
    Cluster,
    asset_id,
    free_port,
    metric_samples,
)
from tests.cluster.test_multiprocess import until

A1, A2, A3, A4 = (asset_id(i) for i in range(1, 5))  # shard 0: A1, A3; shard 1: A2, A4
START = "2026-01-01T00:00:00Z"
CLOCK = ("--clock", "manual", "--start-time", START)
#: ``bess-sim run`` serves the same ports on another loopback address (no clash).
RUN_MODBUS_HOST = "127.0.0.2"


#: Differ by nature between two processes: random ids, the client's TCP port.
VARYING = frozenset({"id", "client"})


def strip_ids(body: Any) -> Any:
    if isinstance(body, list):
        return [strip_ids(x) for x in body]
    if isinstance(body, dict):
        return {k: strip_ids(v) for k, v in body.items() if k not in VARYING}
    return body


class Pair:
    """One client on ``bess-sim run``, one on the headend: every request goes to both."""

    def __init__(self, run: httpx.AsyncClient, head: httpx.AsyncClient) -> None:
        self.run = run
        self.head = head

    async def same(
        self, method: str, path: str, *, ids: tuple[str, str] | None = None, **kw: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        """``path`` may hold ``{id}``: the run's and the headend's own fault id."""
        run_path, head_path = (path, path) if ids is None else (
            path.format(id=ids[0]), path.format(id=ids[1])
        )  # fmt: skip
        a = await self.run.request(method, run_path, **kw)
        b = await self.head.request(method, head_path, **kw)
        assert a.status_code == b.status_code, (method, path, a.text, b.text)
        if a.headers.get("content-type") == "application/json":
            assert strip_ids(a.json()) == strip_ids(b.json()), (method, path, a.text, b.text)
        else:
            assert a.text == b.text, (method, path, a.text, b.text)
        return a, b


def start_side_by_side(cluster: Cluster) -> int:
    """``bess-sim run`` (Modbus on RUN_MODBUS_HOST) and headend + 2 agents on the cluster's
    assets.yaml, manual clock; returns the single process's HTTP port."""
    run_port = free_port()
    log = (cluster.tmp / "run.log").open("ab")
    cmd = [
        sys.executable, "-m", "bess_sim", "run", "--assets", str(cluster.assets_file),
        "--http-port", str(run_port), "--modbus-host", RUN_MODBUS_HOST, *CLOCK,
    ]  # fmt: skip
    cluster.procs["run"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    cluster.start("headend", "headend", "--http-port", str(cluster.http_port), *CLOCK)
    cluster.start("agent0", "agent", "--shard", "0/2", *CLOCK)
    cluster.start("agent1", "agent", "--shard", "1/2", *CLOCK)
    return run_port


@pytest.fixture
async def pair(cluster: Cluster) -> AsyncIterator[Pair]:
    run_port = start_side_by_side(cluster)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{run_port}", timeout=10) as run,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as head,
    ):
        await cluster.wait_online(head, [A1, A2, A3, A4])
        await cluster.wait_online(run, [A1, A2, A3, A4])
        # The heartbeat (which tells the headend N) may trail the first telemetry.
        deadline = time.monotonic() + START_TIMEOUT_S
        while (await head.post("/grid", json={})).status_code != 200:
            assert time.monotonic() < deadline, cluster.log("headend")
            await asyncio.sleep(0.2)
        yield Pair(run, head)


async def read_error(host: str, port: int, unit: int = 1) -> int | None:
    """The exception code of an FC04 read of ``unit`` (None: a normal answer)."""
    mb = AsyncModbusTcpClient(host, port=port, timeout=3, retries=0)
    assert await mb.connect(), (host, port)
    try:
        rr = await mb.read_input_registers(0, count=2, device_id=unit)
        return int(rr.exception_code) if rr.isError() else None
    finally:
        mb.close()


async def comm_effects(client: httpx.AsyncClient) -> dict[str, float]:
    """``bess_fault_comm_effects_total`` by outcome, from ``/metrics``."""
    return {
        s.labels["outcome"]: s.value
        for s in await metric_samples(client)
        if s.name == "bess_fault_comm_effects_total"
    }


async def test_faults_same_as_run(cluster: Cluster, pair: Pair) -> None:
    ports = cluster.modbus_ports
    # Refused alike: bad kind, unknown asset, unserved port, port on a device kind.
    for body in (
        {"kind": "bogus", "asset_id": A1},
        {"kind": "trip", "asset_id": asset_id(99)},
        {"kind": "modbus_offline", "port": 1},
        {"kind": "trip", "port": ports[0]},
        {"kind": "modbus_latency", "asset_id": A1, "params": {}},
    ):
        a, _ = await pair.same("POST", "/faults", json=body)
        assert a.status_code == 422, a.text

    exc_run, exc_head = await pair.same(
        "POST", "/faults", json={"kind": "modbus_exception", "asset_id": A1, "params": {"code": 4}}
    )
    assert exc_run.status_code == 201 and exc_run.json()["state"] == "active"
    exc_ids = (exc_run.json()["id"], exc_head.json()["id"])
    # The comm fault acts on agent 0's Modbus port as on the single process's.
    assert await read_error(RUN_MODBUS_HOST, ports[0]) == 4
    assert await read_error("127.0.0.1", ports[0]) == 4
    assert await read_error("127.0.0.1", ports[2]) is None  # A3, same agent, untouched
    # A plain exception (no such unit) is not a fault's effect: counted by neither.
    assert await read_error(RUN_MODBUS_HOST, ports[2], unit=99) is not None
    assert await read_error("127.0.0.1", ports[2], unit=99) is not None
    # The fault's effect is counted on the headend as in one process (reported by agent 0).
    run_effects = await comm_effects(pair.run)
    assert run_effects == {"exception": 1.0}, run_effects

    async def head_counted() -> bool:
        return await comm_effects(pair.head) == run_effects

    await until("the headend to count the agent's comm effect", head_counted, 10)

    # A view fault: REST shows the override on both (the headend from agent 0's rows).
    await pair.same(
        "POST",
        "/faults",
        json={
            "kind": "value_override",
            "asset_id": A3,
            "params": {"field": "soc_pct", "value": 12.5},
        },
    )
    a, _ = await pair.same("GET", f"/telemetry/{A3}")
    assert a.json()["soc_pct"] == 12.5
    # A trip scheduled 5 s ahead: starts inside the step, on both.
    trip_run, trip_head = await pair.same(
        "POST", "/faults", json={"kind": "trip", "asset_id": A4, "start_in_s": 5}
    )
    assert trip_run.json()["state"] == "scheduled"
    trip_ids = (trip_run.json()["id"], trip_head.json()["id"])
    await pair.same("POST", "/sim/step", json={"seconds": 10})
    a, _ = await pair.same("GET", "/faults/{id}", ids=trip_ids)
    assert a.json()["state"] == "active"
    a, _ = await pair.same("GET", f"/telemetry/{A4}")
    assert a.json()["status"] == "fault"
    await pair.same("GET", f"/telemetry/{A3}")
    await pair.same("GET", "/faults")
    await pair.same("GET", "/faults", params={"asset_id": A4})
    await pair.same("GET", "/faults", params={"state": "active", "limit": 2})

    # Ended alike; the port answers again; unknown and malformed ids refused alike.
    a, _ = await pair.same("DELETE", "/faults/{id}", ids=exc_ids)
    assert a.json()["state"] == "ended" and a.json()["end_reason"] == "deleted"
    assert await read_error("127.0.0.1", ports[0]) is None
    await pair.same("DELETE", "/faults/{id}", ids=exc_ids)  # ended already: unchanged
    a, _ = await pair.same("DELETE", f"/faults/{asset_id(77)}")
    assert a.status_code == 404
    a, _ = await pair.same("DELETE", "/faults/not-a-uuid")
    assert a.status_code == 422

    # Port-wide: every unit of agent 1's port answers 0x0B.
    a, _ = await pair.same("POST", "/faults", json={"kind": "modbus_offline", "port": ports[1]})
    assert a.status_code == 201, a.text
    assert await read_error("127.0.0.1", ports[1]) == 0x0B
    await pair.same("GET", "/faults")

    # Agent 1 gone: its targets answer 503 (nothing scheduled), agent 0's still work.
    agent = cluster.procs["agent1"]
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=10)

    async def offline() -> bool:
        return bool((await pair.head.get(f"/telemetry/{A2}")).json()["status"] == "offline")

    await until("agent 1's assets offline", offline)
    r = await pair.head.post("/faults", json={"kind": "stuck", "asset_id": A2})
    assert r.status_code == 503, r.text
    r = await pair.head.post("/faults", json={"kind": "stuck", "asset_id": A1})
    assert r.status_code == 201, r.text


async def test_grid_same_as_run(cluster: Cluster, pair: Pair) -> None:
    a, _ = await pair.same("POST", "/grid", json={"frequency_hz": 49.5})
    assert a.json()["frequency_hz"] == 49.5
    a, _ = await pair.same("POST", "/grid", json={"frequency_hz": 10})
    assert a.status_code == 422
    a, _ = await pair.same("POST", "/grid", json={"ambient_c": 35})
    assert a.json() == {"frequency_hz": 49.5, "ambient_c": 35.0}
    await pair.same("GET", "/grid")
    await pair.same("POST", "/sim/step", json={"seconds": 2})
    for aid in (A1, A2, A3, A4):  # from both agents' telemetry
        a, _ = await pair.same("GET", f"/telemetry/{aid}")
        assert a.json()["frequency_hz"] == 49.5

    # A restarted agent keeps the grid (KV bucket): its telemetry still shows 49.5 Hz.
    agent = cluster.procs["agent1"]
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=10)

    async def offline() -> bool:
        return bool((await pair.head.get(f"/telemetry/{A2}")).json()["status"] == "offline")

    await until("agent 1's assets offline", offline)
    r = await pair.head.post("/grid", json={"frequency_hz": 50.2})
    assert r.status_code == 503 and "offline" in r.json()["detail"], r.text
    assert (await pair.head.get("/grid")).json()["frequency_hz"] == 49.5
    cluster.start("agent1", "agent", "--shard", "1/2", *CLOCK)
    # Its start-up telemetry repeats its last tick (stored once): shown from the next step.
    deadline = time.monotonic() + START_TIMEOUT_S
    while (r := await pair.head.post("/sim/step", json={"seconds": 1})).status_code != 200:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.2)
    assert (await pair.head.get(f"/telemetry/{A2}")).json()["frequency_hz"] == 49.5


SITE2 = "0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e02"
NEW1, NEW2 = asset_id(11), asset_id(12)


def new_asset(aid: str, name: str, port: int, unit: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": aid, "site_id": SITE2, "name": name, "location": "Lab", "capacity_mwhr": 10,
        "max_mw": 5, "min_mw": -5, "ramp_rate_mw_per_min": 600, "efficiency": 0.9,
        "modbus": {"port": port, "unit_id": unit}, **extra,
    }  # fmt: skip


async def test_registration_same_as_run(cluster: Cluster, pair: Pair) -> None:
    ports = cluster.modbus_ports
    new_port = free_port()
    site = {"id": SITE2, "name": "S2", "location": "Lab"}
    a, _ = await pair.same("POST", "/sites", json=site)
    assert a.status_code == 201, a.text
    a, _ = await pair.same("POST", "/sites", json=site)
    assert a.status_code == 409, a.text
    a, _ = await pair.same("POST", "/sites", json={"id": asset_id(40), "name": ""})
    assert a.status_code == 422, a.text

    # A new port: the least-loaded agent (both have 2: agent 0) binds it.
    a, _ = await pair.same("POST", "/assets", json=new_asset(NEW1, "N1", new_port, 1))
    assert a.status_code == 201, a.text
    assert await read_error("127.0.0.1", new_port) is None
    # A unit on a port agent 1 serves: agent 1.
    a, _ = await pair.same("POST", "/assets", json=new_asset(NEW2, "N2", ports[1], 2))
    assert a.status_code == 201, a.text
    assert await read_error("127.0.0.1", ports[1], unit=2) is None
    # Refused alike: (port, unit) taken, id taken, bad field, unknown site.
    for body in (
        new_asset(asset_id(13), "N3", ports[0], 1),
        new_asset(NEW1, "N1b", new_port, 3),
        new_asset(asset_id(13), "N3", new_port, 3, max_mw=-1),
        {**new_asset(asset_id(13), "N3", new_port, 3), "site_id": asset_id(50)},
    ):
        a, _ = await pair.same("POST", "/assets", json=body)
        assert a.status_code in (409, 422), a.text
    a, _ = await pair.same(
        "PUT", f"/assets/{NEW2}", json=new_asset(NEW2, "N2", ports[1], 2, max_mw=3)
    )
    assert a.status_code == 200 and a.json()["max_mw"] == 3, a.text
    for method, path in (("DELETE", f"/assets/{A1}"), ("DELETE", f"/assets/{asset_id(60)}")):
        a, _ = await pair.same(method, path)
        assert a.status_code in (404, 409), a.text
    await pair.same("POST", "/sim/step", json={"seconds": 2})
    for aid in (NEW1, NEW2):
        a, _ = await pair.same("GET", f"/telemetry/{aid}")
        assert a.json()["status"] == "idle", a.text
    a, _ = await pair.same("POST", "/dispatch", json={"asset_id": NEW1, "mw": 2})
    assert a.status_code == 201, a.text
    await pair.same("POST", "/sim/step", json={"seconds": 2})
    await pair.same("GET", f"/telemetry/{NEW1}")
    await pair.same("GET", "/assets")
    a, _ = await pair.same("DELETE", f"/sites/{SITE2}")
    assert a.status_code == 409, a.text

    # Agent 0 restarted: N1 comes back from the bucket (its port bound again, its state
    # resumed), dispatch in effect included.
    agent = cluster.procs["agent0"]
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=10)

    async def offline() -> bool:
        return bool((await pair.head.get(f"/telemetry/{NEW1}")).json()["status"] == "offline")

    await until("agent 0's assets offline", offline)
    cluster.start("agent0", "agent", "--shard", "0/2", *CLOCK)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (r := await pair.head.post("/sim/step", json={"seconds": 1})).status_code != 200:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.2)
    t = (await pair.head.get(f"/telemetry/{NEW1}")).json()
    assert t["status"] == "discharging" and t["setpoint_mw"] == 2.0, t
    assert await read_error("127.0.0.1", new_port) is None
    await pair.run.post("/sim/step", json={"seconds": 1})

    for aid in (NEW1, NEW2):
        a, _ = await pair.same("DELETE", f"/assets/{aid}")
        assert a.status_code == 204, a.text
    a, _ = await pair.same("DELETE", f"/sites/{SITE2}")
    assert a.status_code == 204, a.text
    assert await read_error("127.0.0.1", ports[1], unit=2) == 0x0B  # N2's unit is gone
    await pair.same("GET", "/assets")


async def _counters(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    value = {
        line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line[:1] != "#"
    }
    return {"ticks": value["bess_ticks_total"], "rows": value["bess_telemetry_rows_total"]}


async def test_commands_and_reads_same_as_run(pair: Pair) -> None:
    """Dispatch, trip/reset and the reads after a step, side by side (issue 14's "same API
    against both topologies", for the routes forwarded before this file)."""
    for body in (
        {"asset_id": A1, "mw": 5},
        {"asset_id": A2, "mw": 1000},
        {"asset_id": A2, "mw": 1, "mode": "charge"},
        {"asset_id": asset_id(99), "mw": 1},
        {"asset_id": A3, "mw": -4, "duration_s": 3},
        {"asset_id": A4, "mw": "x"},
    ):
        await pair.same("POST", "/dispatch", json=body)
    a, _ = await pair.same("POST", f"/assets/{A2}/trip")
    assert a.json()["status"] == "fault"
    a, _ = await pair.same("POST", "/dispatch", json={"asset_id": A2, "mw": 1})
    assert a.status_code == 422 and "tripped" in a.json()["detail"]
    await pair.same("POST", f"/assets/{asset_id(99)}/trip")
    before = [await _counters(c) for c in (pair.run, pair.head)]
    await pair.same("POST", "/sim/step", json={"seconds": 5})
    a, _ = await pair.same("POST", f"/assets/{A2}/reset")
    assert a.json()["status"] != "fault"
    await pair.same("POST", "/sim/step", json={"seconds": 2})
    # /metrics counts ticks and rows as `run` does (the headend once counted one tick per
    # telemetry message: shards x parts per tick).
    after = [await _counters(c) for c in (pair.run, pair.head)]
    run_delta, head_delta = (
        {k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)
    )
    assert run_delta == head_delta == {"ticks": 7.0, "rows": 28.0}, (run_delta, head_delta)
    for aid in (A1, A2, A3, A4):
        await pair.same("GET", f"/telemetry/{aid}")
        await pair.same("GET", f"/telemetry/{aid}/history", params={"limit": 10})
        await pair.same("GET", "/dispatches", params={"asset_id": aid})
    await pair.same("GET", "/assets")
    await pair.same("GET", "/telemetry")
