"""WebSocket /ws/telemetry with a real client (the ``websockets`` package) on a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3

RECV_TIMEOUT_S = 30


def ws_url(rt: Runtime, query: str = "") -> str:
    return f"ws://127.0.0.1:{rt.http_port}/ws/telemetry{query}"


async def recv(ws: Any) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)))


async def test_two_consecutive_ticks(runtime: Runtime) -> None:
    async with websockets.connect(ws_url(runtime)) as ws:
        first = await recv(ws)  # the current state on connect
        assert first["type"] == "telemetry" and first["tick"] == 0
        assert [s["asset_id"] for s in first["snapshots"]] == [ASSET_1, ASSET_2, ASSET_3]

        await runtime.step(1)
        m1 = await recv(ws)
        await runtime.step(1)
        m2 = await recv(ws)
    assert (m1["tick"], m2["tick"]) == (1, 2)
    assert m1["timestamp"] == "2026-01-01T00:00:01Z" and m2["timestamp"] == "2026-01-01T00:00:02Z"
    assert m2["sim_time_s"] == 2.0
    snap = m2["snapshots"][2]
    assert snap == {
        "asset_id": ASSET_3, "site_id": snap["site_id"], "timestamp": "2026-01-01T00:00:02Z",
        "soc_mwhr": 2.0, "soc_pct": 20.0, "capacity_mwhr": 10.0, "current_mw": 0.0,
        "setpoint_mw": 0.0, "max_mw": 5.0, "min_mw": -5.0, "status": "idle", "alarms": [],
        # DESIGN §10 fields (an asset without the v2 model: rated limits, no Q, no thermal)
        "current_mvar": 0.0, "setpoint_mvar": 0.0, "available_discharge_mw": 5.0,
        "available_charge_mw": -5.0, "temperature_c": None, "frequency_hz": 50.0,
    }  # fmt: skip


async def test_asset_filter_and_dispatch_shows(runtime: Runtime) -> None:
    async with websockets.connect(ws_url(runtime, f"?asset_id={ASSET_2}")) as ws:
        first = await recv(ws)
        assert [s["asset_id"] for s in first["snapshots"]] == [ASSET_2]
        runtime.fleet.dispatch(_req(ASSET_2, -4.0))
        await runtime.step(1)
        msg = await recv(ws)
    assert [s["asset_id"] for s in msg["snapshots"]] == [ASSET_2]
    assert msg["snapshots"][0]["setpoint_mw"] == -4.0
    assert msg["snapshots"][0]["status"] == "charging"


def _req(asset_id: str, mw: float) -> Any:
    from bess_sim.sim import DispatchRequest

    return DispatchRequest(asset_id, mw)


@pytest.mark.parametrize("query", ["?asset_id=aaaaaaaa-0000-4000-8000-0000000000ff", "?asset_id=x"])
async def test_bad_filter_gets_error_and_policy_close(runtime: Runtime, query: str) -> None:
    async with websockets.connect(ws_url(runtime, query)) as ws:
        msg = await recv(ws)
        assert msg["type"] == "error"
        assert "asset" in msg["detail"]
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_slow_client_drops_to_latest_and_tick_never_waits(runtime: Runtime) -> None:
    """A client that reads nothing while 500 ticks run: the ticks finish, and when the client
    reads it gets far fewer than 500 messages, the last one being the latest tick."""
    async with websockets.connect(ws_url(runtime), max_queue=1) as ws:
        await recv(ws)
        await runtime.step(500)
        assert runtime.fleet.tick_count == 500
        seen: list[int] = []
        while not seen or seen[-1] != 500:
            seen.append((await recv(ws))["tick"])
    assert seen[-1] == 500
    assert len(seen) < 500
    assert seen == sorted(seen)


async def test_vanished_clients_are_forgotten(runtime: Runtime) -> None:
    async with websockets.connect(ws_url(runtime)) as ws:
        await recv(ws)
        hub = _hub(runtime)
        assert hub.client_count == 1
    # The server notices the close; poll with a deadline instead of sleeping a fixed time.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while hub.client_count and loop.time() < deadline:
        await runtime.step(1)
        await asyncio.sleep(0.02)
    assert hub.client_count == 0
    assert hub not in runtime._sinks  # the hub unregisters with its last client
    await runtime.step(1)  # ticking without clients is fine


def _hub(runtime: Runtime) -> Any:
    for sink in runtime._sinks:
        if type(sink).__name__ == "TelemetryHub":
            return sink
    raise AssertionError("no TelemetryHub registered while a client is connected")


async def test_shutdown_with_connected_client(make_settings: Any) -> None:
    from bess_sim.config import load_assets
    from bess_sim.modbus.points import load_register_map

    settings = make_settings()
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    async with rt:
        ws = await websockets.connect(ws_url(rt))
        await recv(ws)
    # The runtime has stopped: the client sees the connection closed.
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)
