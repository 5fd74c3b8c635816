"""Comm faults measured on the wire from independent masters (pymodbus client, raw frames,
mbpoll), against the real Modbus server of an in-process simulator (DESIGN §11).

Fleet (tests/conftest.py): BESS-1 unit 1 and BESS-2 unit 2 share one port, BESS-3 is alone on
another. Every test checks the effect on the faulted unit and that the other unit of the same
port is untouched unless the fault is port-wide.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3
from tests.faults.helpers import answers, delete_fault, fc4, open_raw, post_fault
from tests.modbus.conftest import closed_by_server, port_of, unit_of

Client = Callable[..., Any]


async def timed_read(client: Any, unit: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    rr = await client.read_input_registers(0, count=4, device_id=unit)
    return time.perf_counter() - t0, rr


async def test_latency_delays_each_answer_of_that_unit_only(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    mb = await modbus_client(ASSET_1)
    base, _ = await timed_read(mb, 1)
    await post_fault(client, {"kind": "modbus_latency", "asset_id": ASSET_1,
                              "params": {"delay_ms": 300, "jitter_ms": 50}})  # fmt: skip
    delays = []
    for _ in range(5):
        elapsed, rr = await timed_read(mb, 1)
        assert not rr.isError()
        delays.append(elapsed)
    assert all(0.25 - 0.01 <= d <= 0.35 + 0.5 for d in delays), delays
    # unit 2 on the same port answers at once
    other, rr = await timed_read(mb, 2)
    assert not rr.isError() and other < 0.24, other  # below any faulted delay
    assert base < 0.24


async def test_latency_keeps_the_order_of_pipelined_requests(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    await post_fault(client, {"kind": "modbus_latency", "asset_id": ASSET_1,
                              "params": {"delay_ms": 100, "jitter_ms": 90}})  # fmt: skip
    reader, writer = await open_raw(runtime, ASSET_1)
    try:
        t0 = time.perf_counter()
        writer.write(b"".join(fc4(runtime, ASSET_1, tid) for tid in range(1, 7)))
        got = await answers(reader, 2.0)
    finally:
        writer.close()
    assert [tid for tid, _, _ in got] == [1, 2, 3, 4, 5, 6]
    # one after the other, each delayed 10..190 ms: the last one no sooner than 6 × 10 ms
    assert got[-1][1] - t0 >= 0.06
    assert all(pdu[0] == 4 for _, _, pdu in got)


async def test_drop_sends_no_answer_and_keeps_the_connection(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    fault = await post_fault(client, {"kind": "modbus_drop", "asset_id": ASSET_1})
    reader, writer = await open_raw(runtime, ASSET_1)
    try:
        writer.write(fc4(runtime, ASSET_1, 1) + fc4(runtime, ASSET_2, 2))
        got = await answers(reader, 0.5)
        assert [tid for tid, _, _ in got] == [2]  # unit 1 dropped, unit 2 answered
        assert not reader.at_eof()
        await delete_fault(client, fault["id"])
        writer.write(fc4(runtime, ASSET_1, 3))  # the same connection, still open
        got = await answers(reader, 0.5)
        assert [tid for tid, _, _ in got] == [3]
    finally:
        writer.close()


async def test_drop_times_out_a_pymodbus_master(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await post_fault(client, {"kind": "modbus_drop", "asset_id": ASSET_3,
                              "params": {"probability": 1.0}})  # fmt: skip
    mb = await modbus_client(ASSET_3, wait_s=0.5)
    with pytest.raises(ModbusIOException):
        await mb.read_input_registers(0, count=2, device_id=1)


async def test_exception_with_function_code_filter(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    await post_fault(client, {"kind": "modbus_exception", "asset_id": ASSET_1,
                              "params": {"code": 6, "function_codes": [4]}})  # fmt: skip
    mb = await modbus_client(ASSET_1)
    rr = await mb.read_input_registers(0, count=2, device_id=1)
    assert rr.isError() and rr.exception_code == 6
    assert not (await mb.read_holding_registers(0, count=2, device_id=1)).isError()  # FC03
    assert not (await mb.read_input_registers(0, count=2, device_id=2)).isError()  # unit 2


async def test_exception_probability_is_about_right(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    await post_fault(client, {"kind": "modbus_exception", "asset_id": ASSET_3,
                              "params": {"code": 4, "probability": 0.3}})  # fmt: skip
    reader, writer = await open_raw(runtime, ASSET_3)
    try:
        writer.write(b"".join(fc4(runtime, ASSET_3, tid) for tid in range(1, 401)))
        got = await answers(reader, 1.0)
    finally:
        writer.close()
    assert len(got) == 400
    errors = sum(1 for _, _, pdu in got if pdu[0] == 0x84 and pdu[1] == 4)
    assert 80 <= errors <= 160, errors  # 120 expected; binomial sd ≈ 9


async def test_offline_answers_0x0b_for_that_unit(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    fault = await post_fault(client, {"kind": "modbus_offline", "asset_id": ASSET_2})
    mb = await modbus_client(ASSET_2)
    rr = await mb.read_holding_registers(0, count=2, device_id=2)
    assert rr.isError() and rr.exception_code == 0x0B
    assert not (await mb.read_input_registers(0, count=2, device_id=1)).isError()
    await delete_fault(client, fault["id"])
    assert not (await mb.read_holding_registers(0, count=2, device_id=2)).isError()


async def test_port_wide_offline_hits_every_unit_of_the_port(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    port = runtime.fleet.spec(ASSET_1).modbus.port
    await post_fault(client, {"kind": "modbus_offline", "port": port})
    mb = await modbus_client(ASSET_1)
    for unit in (1, 2):
        rr = await mb.read_input_registers(0, count=2, device_id=unit)
        assert rr.isError() and rr.exception_code == 0x0B
    other = await modbus_client(ASSET_3)  # another port
    assert not (await other.read_input_registers(0, count=2, device_id=1)).isError()


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed")
async def test_offline_seen_by_mbpoll(runtime: Runtime, client: httpx.AsyncClient) -> None:
    await post_fault(client, {"kind": "modbus_offline", "asset_id": ASSET_3})
    mbpoll = shutil.which("mbpoll")
    assert mbpoll is not None
    proc = await asyncio.create_subprocess_exec(
        mbpoll, "-m", "tcp", "-p", str(port_of(runtime, ASSET_3)), "-a",
        str(unit_of(runtime, ASSET_3)), "-0", "-t", "3", "-r", "0", "-c", "2", "-1", "-o", "2",
        "127.0.0.1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert "Target device failed to respond" in text or "0x0B" in text.upper(), text


async def refused(rt: Runtime, asset_id: str) -> bool:
    """True when a new connection is reset (on loopback often before connect() returns)."""
    try:
        reader, writer = await open_raw(rt, asset_id)
    except ConnectionError:
        return True
    try:
        writer.write(fc4(rt, asset_id, 99))
        return await closed_by_server(reader)
    finally:
        writer.close()


async def test_disconnect_closes_refuses_then_accepts_again(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    port = runtime.fleet.spec(ASSET_1).modbus.port
    reader, writer = await open_raw(runtime, ASSET_1)
    writer.write(fc4(runtime, ASSET_1, 1))
    assert [t for t, _, _ in await answers(reader, 0.3)] == [1]
    other_reader, other_writer = await open_raw(runtime, ASSET_3)  # another port
    await post_fault(client, {"kind": "modbus_disconnect", "port": port, "duration_s": 10})
    assert await closed_by_server(reader)  # the open connection is closed at once
    writer.close()
    # a new connection is refused (reset without an answer) for the duration
    assert await refused(runtime, ASSET_2)
    # the other port is untouched
    other_writer.write(fc4(runtime, ASSET_3, 3))
    assert [t for t, _, _ in await answers(other_reader, 0.3)] == [3]
    other_writer.close()
    await runtime.step(10)  # the fault ends in simulated time
    r3, w3 = await open_raw(runtime, ASSET_1)
    w3.write(fc4(runtime, ASSET_1, 4))
    assert [t for t, _, _ in await answers(r3, 0.5)] == [4]
    w3.close()
    faults = (await client.get("/faults", params={"state": "ended"})).json()
    assert faults[0]["end_reason"] == "elapsed"
    metrics = (await client.get("/metrics")).text
    assert 'bess_fault_comm_effects_total{outcome="refused"} 2.0' in metrics


async def test_comm_listener_is_told_each_outcome(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    seen: list[tuple[str | None, int, str]] = []
    runtime.faults.add_comm_listener(lambda a, p, k: seen.append((a, p, k)))
    port = runtime.fleet.spec(ASSET_1).modbus.port
    await post_fault(client, {"kind": "modbus_offline", "asset_id": ASSET_2})
    await post_fault(client, {"kind": "modbus_latency", "asset_id": ASSET_1,
                              "params": {"delay_ms": 10}})  # fmt: skip
    reader, writer = await open_raw(runtime, ASSET_1)
    try:
        writer.write(fc4(runtime, ASSET_1, 1) + fc4(runtime, ASSET_2, 2))
        got = await answers(reader, 0.5)
    finally:
        writer.close()
    assert [t for t, _, _ in got] == [1, 2]
    assert seen == [(ASSET_1, port, "late"), (ASSET_2, port, "offline")]


async def seeded_drops(
    start_runtime: Callable[..., Any], client_factory: Callable[..., Any], seed: int
) -> list[int]:
    """Tids answered of 60 pipelined requests under a 50 % drop fault, one fresh simulator."""
    async with start_runtime(seed=seed) as rt:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c:
            await post_fault(c, {"kind": "modbus_drop", "asset_id": ASSET_3,
                                 "params": {"probability": 0.5}})  # fmt: skip
        reader, writer = await open_raw(rt, ASSET_3)
        try:
            writer.write(b"".join(fc4(rt, ASSET_3, tid) for tid in range(1, 61)))
            return [tid for tid, _, _ in await answers(reader, 0.5)]
        finally:
            writer.close()


async def test_same_seed_drops_the_same_requests(start_runtime: Callable[..., Any]) -> None:
    a = await seeded_drops(start_runtime, httpx.AsyncClient, 42)
    b = await seeded_drops(start_runtime, httpx.AsyncClient, 42)
    c = await seeded_drops(start_runtime, httpx.AsyncClient, 43)
    assert a == b
    assert 10 < len(a) < 50  # about half dropped
    assert a != c  # another seed, other drops (2^-60 to be equal by chance)


async def test_disconnect_seen_by_a_pymodbus_master(
    runtime: Runtime, client: httpx.AsyncClient, modbus_client: Client
) -> None:
    mb = await modbus_client(ASSET_3, wait_s=1.0)
    assert not (await mb.read_input_registers(0, count=2, device_id=1)).isError()
    port = runtime.fleet.spec(ASSET_3).modbus.port
    fault = await post_fault(client, {"kind": "modbus_disconnect", "port": port})
    with pytest.raises(ModbusIOException):
        await mb.read_input_registers(0, count=2, device_id=1)
    mb.close()
    fresh = AsyncModbusTcpClient("127.0.0.1", port=port_of(runtime, ASSET_3), timeout=1, retries=0)
    try:
        if await fresh.connect():  # the handshake may complete before the reset arrives
            with pytest.raises(ModbusIOException):
                await fresh.read_input_registers(0, count=2, device_id=1)
    finally:
        fresh.close()
    await delete_fault(client, fault["id"])
    again = await modbus_client(ASSET_3)
    assert not (await again.read_input_registers(0, count=2, device_id=1)).isError()
