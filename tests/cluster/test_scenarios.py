"""Scenarios (DESIGN §12) on the scale-out headend give what ``bess-sim run`` gives: the same
file posted to a single process and to headend + two agents (real processes, real NATS, the
same assets.yaml, manual clock from the same start) ends with the same verdicts, expectation
results and scorecard, and the steps really acted on the agents (their Modbus registers); the
agents' Modbus comm events reach the headend's scorecard."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import START_TIMEOUT_S, Cluster, asset_id, free_port
from tests.cluster.test_multiprocess import f32
from tests.cluster.test_same_as_run import (  # noqa: F401
    CLOCK,
    RUN_MODBUS_HOST,
    Pair,
    pair,
    start_side_by_side,
)

A1, A2, A3, A4 = (asset_id(i) for i in range(1, 5))  # shard 0: B1, B3; shard 1: B2, B4

#: Every kind of step across both agents: dispatch (one rejected), trip/reset, a frequency
#: ramp (one tick at a time to the agents), a device fault added and cleared, ambient; point
#: checks and windows on assets of both shards, one expectation that fails on purpose.
SCENARIO = """\
name: cluster-all-steps
grid: {frequency: 50.0, ambient_c: 20}
steps:
  - at: 0
    dispatch: {asset: B1, mw: 5, duration_s: 60}
  - at: 0
    dispatch: {asset: B2, mw: -4}
  - at: 1
    dispatch: {asset: B4, mw: 99}
  - at: 3
    expect: {asset: B4, field: setpoint_mw, op: "==", value: 99}
  - at: 5
    expect: {asset: B1, field: current_mw, op: "==", value: 5, tolerance: 0.001}
  - at: 5
    expect: {asset: B2, field: current_mw, op: "==", value: -4, tolerance: 0.001,
             during: [5, 12]}
  - at: 6
    trip: {asset: B3}
  - at: 7
    expect: {asset: B3, field: status, op: "==", value: fault}
  - at: 10
    reset: {asset: B3}
  - at: 11
    expect: {asset: B3, field: status, op: "==", value: idle}
  - at: 12
    frequency: {hz: 49.8, ramp_s: 4}
  - at: 12
    expect: {asset: "*", field: frequency_hz, op: between, value: [49.8, 50.0],
             during: [12, 16]}
  - at: 14
    expect: {asset: "*", field: frequency_hz, op: "==", value: 49.9, tolerance: 0.0001}
  - at: 16
    expect: {asset: "*", field: frequency_hz, op: "==", value: 49.8, tolerance: 0.0001}
  - at: 17
    ambient: {c: 35}
  - at: 18
    fault: {id: d, kind: derate, asset: B2, params: {discharge_pct: 50, charge_pct: 50}}
  - at: 20
    expect: {asset: B2, field: alarm.derated, op: "==", value: 1}
  - at: 22
    clear_fault: {id: d}
  - at: 23
    expect: {asset: B2, field: alarm.derated, op: "==", value: 0}
  - at: 24
    expect: {asset: B1, field: setpoint_mw, op: "==", value: 5}
"""


async def run_scenario(http: httpx.AsyncClient, text: str) -> dict[str, Any]:
    r = await http.post(
        "/scenarios", content=text.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = (await http.get("/scenarios/current")).json()
        if status["state"] != "running":
            return dict(status)
        await asyncio.sleep(0.1)
    raise AssertionError(f"scenario still running: {status}")


async def setpoint(host: str, port: int) -> float:
    mb = AsyncModbusTcpClient(host, port=port, timeout=3, retries=0)
    assert await mb.connect(), (host, port)
    try:
        rr = await mb.read_input_registers(8, count=2, device_id=1)  # input 8 = setpoint_mw
        assert not rr.isError(), rr
        return f32(rr.registers)
    finally:
        mb.close()


async def test_scenario_same_as_run(cluster: Cluster, pair: Pair) -> None:  # noqa: F811
    started = time.monotonic()
    run = await run_scenario(pair.run, SCENARIO)
    run_s = time.monotonic() - started
    started = time.monotonic()
    head = await run_scenario(pair.head, SCENARIO)
    head_s = time.monotonic() - started
    print(f"scenario of {run['end_s']:g} s: run {run_s:.2f} s, headend + 2 agents {head_s:.2f} s")

    # The verdicts: failed only by the expectation meant to fail, on both.
    assert run["state"] == head["state"] == "failed", (run, head)
    failed = [r["name"] for r in run["expectations"] if r["status"] == "failed"]
    assert len(failed) == 1 and "setpoint_mw" in failed[0], run["expectations"]
    assert run["expectations"] == head["expectations"]
    for key in ("steps_done", "steps", "sim_time_s", "end_s", "passed", "failed", "error"):
        assert run[key] == head[key], (key, run[key], head[key])

    assert run["scorecard"] == head["scorecard"]
    assert run["scorecard"]["fleet"]["commands_by_source"]["scenario"] == 3  # 99 MW included

    # The steps acted on the agents: B1's 60 s dispatch holds on agent 0's Modbus slave as on
    # run's; B4's rejected one never reached agent 1's; the ramp's end is in the telemetry.
    ports = cluster.modbus_ports
    assert await setpoint("127.0.0.1", ports[0]) == 5.0
    assert await setpoint(RUN_MODBUS_HOST, ports[0]) == 5.0
    assert await setpoint("127.0.0.1", ports[3]) == 0.0
    rejected = (await pair.head.get("/dispatches", params={"asset_id": A4})).json()
    assert [d["status"] for d in rejected] == ["rejected"], rejected
    for aid in (A1, A2, A3, A4):
        t = (await pair.head.get(f"/telemetry/{aid}")).json()
        assert t["frequency_hz"] == 49.8, t


async def read_error(host: str, port: int) -> int | None:
    mb = AsyncModbusTcpClient(host, port=port, timeout=3, retries=0)
    assert await mb.connect(), (host, port)
    try:
        rr = await mb.read_input_registers(0, count=2, device_id=1)
        return int(rr.exception_code) if rr.isError() else None
    finally:
        mb.close()


async def test_comm_events_reach_the_headend_scorecard(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """Real-time clock: a comm fault acts on agent 1's Modbus port; the exceptions the client
    gets there are counted by the scenario's scorecard on the headend."""
    cluster.start_headend()
    cluster.start_agent(0, 2)
    cluster.start_agent(1, 2)
    await cluster.wait_online(http, [A1, A2, A3, A4])
    scenario = """\
name: comm-events
steps:
  - at: 0
    fault: {id: x, kind: modbus_exception, asset: B2, params: {code: 4}, duration_s: 5}
  - at: 4
    expect: {asset: "*", field: scorecard.modbus_exceptions, op: "==", value: 2}
  - at: 4
    expect: {asset: B2, field: scorecard.modbus_exceptions, op: "==", value: 2}
"""
    r = await http.post(
        "/scenarios", content=scenario.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    port = cluster.modbus_ports[1]  # B2, on agent 1
    for _ in range(50):
        if (await http.get("/faults")).json():
            break
        await asyncio.sleep(0.05)
    assert await read_error("127.0.0.1", port) == 4
    assert await read_error("127.0.0.1", port) == 4
    assert await read_error("127.0.0.1", cluster.modbus_ports[2]) is None  # B3: no fault
    status: dict[str, Any] = {}
    for _ in range(150):
        status = (await http.get("/scenarios/current")).json()
        if status["state"] != "running":
            break
        await asyncio.sleep(0.1)
    assert status["state"] == "passed", (status, cluster.log("headend")[-3000:])
    fleet = status["scorecard"]["fleet"]
    assert fleet["modbus_exceptions"] == 2, fleet
    assert fleet["modbus_by_port"] == [{"port": port, "kind": "exception", "count": 2}]


ROOT = Path(__file__).resolve().parents[2]
SHIPPED_FLEET = ROOT / "scenarios" / "fleet.yaml"


@pytest.fixture
async def shipped_pair(cluster: Cluster) -> AsyncIterator[Pair]:
    """``bess-sim run`` and headend + 2 agents on scenarios/fleet.yaml, each asset on a free
    port of its own (sharding by position would put DROOP-1 and WD-1 of port 15020 on two
    agents of this host)."""
    text = SHIPPED_FLEET.read_text()
    for old in ("port: 15020, unit_id: 1", "port: 15020, unit_id: 2", "port: 15021, unit_id: 1"):
        assert old in text
        text = text.replace(old, f"port: {free_port()}, unit_id: 1")
    cluster.assets_file.write_text(text)
    ids = [a["id"] for a in yaml.safe_load(text)["assets"]]
    run_port = start_side_by_side(cluster)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{run_port}", timeout=10) as run,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as head,
    ):
        await cluster.wait_online(head, ids)
        await cluster.wait_online(run, ids)
        deadline = time.monotonic() + START_TIMEOUT_S
        while (await head.post("/grid", json={})).status_code != 200:  # N known
            assert time.monotonic() < deadline, cluster.log("headend")
            await asyncio.sleep(0.2)
        yield Pair(run, head)


@pytest.mark.parametrize("name", ["frequency-droop", "derate-then-trip"])
async def test_shipped_scenario_same_as_run(shipped_pair: Pair, name: str) -> None:
    text = (ROOT / "scenarios" / f"{name}.yaml").read_text()
    started = time.monotonic()
    run = await run_scenario(shipped_pair.run, text)
    run_s = time.monotonic() - started
    started = time.monotonic()
    head = await run_scenario(shipped_pair.head, text)
    head_s = time.monotonic() - started
    print(f"{name} ({run['end_s']:g} s): run {run_s:.2f} s, headend + 2 agents {head_s:.2f} s")
    assert run["state"] == "passed", run["expectations"]
    assert head["state"] == "passed", head["expectations"]
    assert run["expectations"] == head["expectations"]
    assert run["scorecard"] == head["scorecard"]


async def test_headend_scenario_flag_starts_once_the_agents_are_up(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    """``bess-sim headend --scenario FILE``: started when every agent has reported (started
    here after the headend), then stepped on the manual clock like run --scenario."""
    path = cluster.tmp / "live.yaml"
    path.write_text(
        "name: at-start\nsteps:\n"
        "  - {at: 0, dispatch: {asset: B1, mw: 5, duration_s: 600}}\n"
        "  - {at: 5, expect: {asset: B1, field: current_mw, op: '==', value: 5}}\n"
        "  - {at: 6, trip: {asset: B2}}\n"
        "  - {at: 7, expect: {asset: B2, field: status, op: '==', value: fault}}\n"
    )
    cluster.start(
        "headend", "headend", "--http-port", str(cluster.http_port), *CLOCK,
        "--scenario", str(path),
    )  # fmt: skip
    await asyncio.sleep(1.0)  # the headend alone: nothing to start the scenario on yet
    cluster.start("agent0", "agent", "--shard", "0/2", *CLOCK)
    cluster.start("agent1", "agent", "--shard", "1/2", *CLOCK)
    status: dict[str, Any] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            status = (await http.get("/scenarios/current")).json()
            if status.get("state") not in (None, "running"):
                break
        await asyncio.sleep(0.2)
    assert status.get("state") == "passed", (status, cluster.log("headend")[-3000:])
    assert status["sim_time_s"] == 7.0
    assert await setpoint("127.0.0.1", cluster.modbus_ports[0]) == 5.0  # on agent 0
    t = (await http.get(f"/telemetry/{A2}")).json()
    assert t["status"] == "fault", t
