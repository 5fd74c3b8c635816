"""The HTTP edge (issue 9 items 13-16), over real HTTP and raw sockets: strict JSON types,
ISO-only history timestamps, the cross-site rule, the body cap, the request-header deadline,
shared WebSocket encoding and abandoned steps."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from bess_sim.runtime import Runtime
from tests.api.conftest import base_url
from tests.conftest import ASSET_1

IO_TIMEOUT_S = 30


# ------------------------------------------------------------------ 13: strict types
@pytest.mark.parametrize(
    "body",
    [
        {"asset_id": ASSET_1, "mw": True},
        {"asset_id": ASSET_1, "mw": "20"},
        {"asset_id": ASSET_1, "mw": 5, "duration_s": True},
        {"asset_id": ASSET_1, "mw": 5, "duration_s": "60"},
        {"asset_id": ASSET_1, "mw": None},
    ],
)
async def test_dispatch_wrong_json_types_are_422_and_not_recorded(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    r = await client.post("/dispatch", json=body)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)  # malformed, not a rejected dispatch
    assert (await client.get("/dispatches")).json() == []


async def test_dispatch_integers_are_numbers(client: httpx.AsyncClient) -> None:
    r = await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 20, "duration_s": 60})
    assert r.status_code == 201, r.text
    assert (r.json()["mw"], r.json()["duration_s"]) == (20.0, 60.0)


@pytest.mark.parametrize("seconds", [True, "5", [5], None])
async def test_step_wrong_json_types_are_422(
    client: httpx.AsyncClient, runtime: Runtime, seconds: Any
) -> None:
    r = await client.post("/sim/step", json={"seconds": seconds})
    assert r.status_code == 422, r.text
    assert runtime.fleet.tick_count == 0


@pytest.mark.parametrize(
    "params", [{"start": "0.5"}, {"end": "-5"}, {"start": "1767225600"}, {"end": "1e3"}]
)
async def test_history_numbers_are_not_timestamps(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    r = await client.get(f"/telemetry/{ASSET_1}/history", params=params)
    assert r.status_code == 422, r.text
    assert "ISO 8601" in r.text


@pytest.mark.parametrize(
    "ts", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+01:00", "2026-01-01 00:00", "2026-01-01"]
)
async def test_history_iso_timestamps_accepted(client: httpx.AsyncClient, ts: str) -> None:
    r = await client.get(f"/telemetry/{ASSET_1}/history", params={"start": ts})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ 14: cross-site
TRIP = f"/assets/{ASSET_1}/trip"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port on the same machine
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_site_mutations_are_403_and_do_nothing(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    r = await client.post(TRIP, headers=headers)
    assert r.status_code == 403, r.text
    assert "cross-origin" in r.json()["detail"]
    r = await client.post(
        "/dispatch",
        content=json.dumps({"asset_id": ASSET_1, "mw": 5}),
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert r.status_code == 403
    assert not runtime.fleet.control(ASSET_1).tripped
    assert (await client.get("/dispatches")).json() == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
async def test_non_json_bodies_are_415(
    client: httpx.AsyncClient, runtime: Runtime, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps({"asset_id": ASSET_1, "mw": 5}).encode()
    r = await client.post("/dispatch", content=body, headers=headers)
    assert r.status_code == 415, r.text
    r = await client.post(TRIP, content=b"x=1", headers=headers)
    assert r.status_code == 415
    assert not runtime.fleet.control(ASSET_1).tripped
    assert (await client.get("/dispatches")).json() == []


async def test_same_origin_and_non_browser_clients_pass(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    own = base_url(runtime)
    r = await client.post(
        "/dispatch",
        json={"asset_id": ASSET_1, "mw": 5},
        headers={"Origin": own, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/dispatch", json={"asset_id": ASSET_1, "mw": 5},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await client.post(TRIP)).status_code == 200  # curl -X POST: no body, no Origin
    assert (
        await client.get("/health", headers={"Origin": "http://evil.example"})
    ).status_code == 200


# ------------------------------------------------------------------ 15: body cap, header deadline
async def _raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_declared_large_body_is_413_before_reading(
    start_runtime: Callable[..., Runtime],
) -> None:
    async with start_runtime(modbus_enabled=False, http_max_body_bytes=1000) as rt:
        head = (
            b"POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        reader, writer = await _raw(rt.http_port, head)  # and not one byte of the 100 MB
        answer = await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)  # server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b"BESS_HTTP_MAX_BODY_BYTES" in answer


async def test_chunked_body_over_the_cap_is_cut_off(
    start_runtime: Callable[..., Runtime],
) -> None:
    async with start_runtime(modbus_enabled=False, http_max_body_bytes=1000) as rt:
        head = (
            b"POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        reader, writer = await _raw(rt.http_port, head)
        chunk = b"%x\r\n%s\r\n" % (4096, b" " * 4096)

        async def stream() -> int:
            """Send up to 64 MB; return how much went out before the server stopped taking it."""
            sent = 0
            with contextlib.suppress(ConnectionError):
                while sent < 64 * 1024 * 1024:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
            return sent

        streaming = asyncio.create_task(stream())
        status = await asyncio.wait_for(reader.readline(), IO_TIMEOUT_S)
        sent = await asyncio.wait_for(streaming, IO_TIMEOUT_S)
        writer.close()
        assert status.startswith(b"HTTP/1.1 413"), status
        assert sent < 64 * 1024 * 1024  # the server hung up instead of reading it all
        assert rt.fleet.dispatches() == []


async def test_body_within_the_cap_is_served(start_runtime: Callable[..., Runtime]) -> None:
    async with (
        start_runtime(modbus_enabled=False, http_max_body_bytes=1000) as rt,
        httpx.AsyncClient(base_url=base_url(rt), timeout=IO_TIMEOUT_S) as c,
    ):
        body = {"asset_id": ASSET_1, "mw": 5, "mode": "discharge"}
        assert (await c.post("/dispatch", json=body)).status_code == 201


@pytest.mark.parametrize(
    "partial",
    [b"", b"GET /health HT", b"GET /health HTTP/1.1\r\nHost: x\r\n"],
    ids=["nothing", "half-request-line", "headers-never-end"],
)
async def test_incomplete_headers_are_timed_out(
    start_runtime: Callable[..., Runtime], partial: bytes
) -> None:
    async with start_runtime(modbus_enabled=False, http_header_timeout_s=0.2) as rt:
        reader, writer = await _raw(rt.http_port, partial)
        # The server closes the connection; without the deadline this read never ends.
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT_S) == b""
        writer.close()


async def test_header_deadline_rearms_on_keep_alive(
    start_runtime: Callable[..., Runtime],
) -> None:
    async with start_runtime(modbus_enabled=False, http_header_timeout_s=0.2) as rt:
        reader, writer = await _raw(rt.http_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(b"GET /health HTTP/1.1\r\nHo")  # the next request stalls mid-header
        await writer.drain()
        # uvicorn's keep-alive timer stopped at the first byte; only the deadline closes it.
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT_S) == b""
        writer.close()


# ------------------------------------------------------------------ 16: WebSocket, abandoned step
async def test_each_tick_is_encoded_once_for_all_clients(runtime: Runtime) -> None:
    hub: Any = None
    url = f"ws://127.0.0.1:{runtime.http_port}/ws/telemetry"
    clients = [await websockets.connect(url) for _ in range(20)]
    try:
        for ws in clients:
            await asyncio.wait_for(ws.recv(), IO_TIMEOUT_S)  # the state on connect
        from bess_sim.api.ws import TelemetryHub

        # The hub is reachable from the app; find it through the runtime's sinks.
        hub = next(s for s in runtime._sinks if isinstance(s, TelemetryHub))
        before = hub.encodings
        for _ in range(3):
            await runtime.step(1)
            msgs = [json.loads(await asyncio.wait_for(ws.recv(), IO_TIMEOUT_S)) for ws in clients]
            assert {m["tick"] for m in msgs} == {runtime.fleet.tick_count}
        assert hub.encodings - before == 3  # one encoding per tick, not one per client
    finally:
        for ws in clients:
            await ws.close()


async def test_abandoned_step_stops(start_runtime: Callable[..., Runtime]) -> None:
    # 1,000,000 ticks of 0.01 s: far longer than this test (minutes on a busy machine).
    async with start_runtime(modbus_enabled=False, tick_interval_s=0.01) as rt:
        body = json.dumps({"seconds": 10_000}).encode()
        _, writer = await _raw(
            rt.http_port,
            b"POST /sim/step HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        while rt.fleet.tick_count == 0:  # noqa: ASYNC110 (the step runs on this loop)
            await asyncio.sleep(0.01)
        writer.close()  # the client gives up
        # A second step queues behind the first (one step at a time): it can only finish in
        # this test's lifetime if the abandoned one stopped.
        async with httpx.AsyncClient(base_url=base_url(rt), timeout=120) as c:
            r = await c.post("/sim/step", json={"seconds": 0.01})
        assert r.status_code == 200, r.text
        assert r.json()["tick"] < 1_000_000
