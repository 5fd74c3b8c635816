"""The real-time tick in a worker thread (issue 15, bess_sim/tickgate.py): users of the fleet
and ticks never overlap, commands land between ticks, reads never mix two snapshots."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from bess_sim.tickgate import TickGate
from tests.modbus.conftest import ASSET_1, ASSET_2, port_of, unit_of


async def test_a_tick_waits_for_users_and_users_wait_for_a_tick() -> None:
    gate = TickGate()
    order: list[str] = []
    release = asyncio.Event()

    async def user(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.shared():
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    async def tick() -> None:
        async with gate.exclusive():
            assert gate.busy
            order.append("tick")
            await asyncio.sleep(0.01)

    first = asyncio.create_task(user("a", release))
    await asyncio.sleep(0)
    ticking = asyncio.create_task(tick())
    await asyncio.sleep(0)
    late = asyncio.create_task(user("b"))  # arrives while the tick waits: goes after it
    await asyncio.sleep(0.01)
    assert order == ["a in"]
    release.set()
    await asyncio.gather(first, ticking, late)
    assert order == ["a in", "a out", "tick", "b in", "b out"]
    assert not gate.busy


@pytest.fixture
async def realtime(make_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    """Real-time clock, 20 ticks a second of 3 simulated minutes: values move between reads."""
    settings = make_settings(clock="realtime", tick_interval_s=0.05, speed=3600.0)
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    async with rt:
        yield rt


async def test_the_tick_runs_in_a_worker_thread(
    realtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    advance = realtime.fleet.advance

    def spy(dt_s: float) -> object:
        threads.add(threading.current_thread().name)
        return advance(dt_s)

    monkeypatch.setattr(realtime.fleet, "advance", spy)
    await asyncio.sleep(0.3)  # ~6 ticks
    assert threads and all(name.startswith("bess-tick") for name in threads)
    assert realtime.metrics.tick_loop_held._sum.get() > 0


async def test_commands_between_threaded_ticks(realtime: Runtime) -> None:
    """REST and Modbus commands keep working while the clock ticks in its thread."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{realtime.http_port}") as http:
        for mw in (5.0, -5.0, 7.5):
            res = await http.post("/dispatch", json={"asset_id": ASSET_1, "mw": mw}, timeout=30)
            assert res.status_code == 201, res.text
            assert realtime.fleet.control(ASSET_1).setpoint_mw == mw
    client = AsyncModbusTcpClient("127.0.0.1", port=port_of(realtime, ASSET_2), timeout=10)
    assert await client.connect()
    try:
        for beat in range(1, 30):
            res = await client.write_register(4, beat, device_id=unit_of(realtime, ASSET_2))
            assert not res.isError()
            hold = await client.read_holding_registers(4, count=1, device_id=2)
            assert hold.registers == [beat]
    finally:
        client.close()


async def test_reads_under_a_threaded_tick_come_from_one_snapshot(realtime: Runtime) -> None:
    """Every pair of points that encode one value (float32 and its scaled integer) agree in
    each read of the whole input table: no read mixes two snapshots, no float32 tears."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{realtime.http_port}") as http:
        res = await http.post("/dispatch", json={"asset_id": ASSET_1, "mw": 50.0}, timeout=30)
        assert res.status_code == 201
    client = AsyncModbusTcpClient("127.0.0.1", port=port_of(realtime, ASSET_1), timeout=10)
    assert await client.connect()
    seen: set[int] = set()
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.0
        while loop.time() < until:
            res = await client.read_input_registers(0, count=21, device_id=1)
            regs = res.registers
            raw = struct.pack(">21H", *regs)
            soc_pct, current_mw = (
                struct.unpack_from(">f", raw, 4)[0],
                struct.unpack_from(">f", raw, 12)[0],
            )
            soc_x100, cur_x10 = regs[16], struct.unpack_from(">h", raw, 34)[0]
            assert abs(soc_pct * 100 - soc_x100) <= 0.5 + 1e-6, regs
            assert abs(current_mw * 10 - cur_x10) <= 0.5 + 1e-6, regs
            seen.add(soc_x100)
    finally:
        client.close()
    assert len(seen) > 3  # the values did move while reading


async def test_holding_reads_are_answered_while_a_tick_computes(
    realtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holding read (setpoint echo) does not wait for a tick in its thread: answered on the
    fast path, with the command state in effect, while ``advance`` is held mid-way."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{realtime.http_port}") as http:
        res = await http.post("/dispatch", json={"asset_id": ASSET_1, "mw": 12.5}, timeout=30)
        assert res.status_code == 201, res.text
    client = AsyncModbusTcpClient("127.0.0.1", port=port_of(realtime, ASSET_1), timeout=10)
    assert await client.connect()
    entered, release = threading.Event(), threading.Event()
    advance = realtime.fleet.advance

    def held(dt_s: float) -> object:
        entered.set()
        release.wait(30)  # the tick thread stops here until the read below is answered
        return advance(dt_s)

    monkeypatch.setattr(realtime.fleet, "advance", held)
    path = realtime.metrics.modbus_request_path
    try:
        assert await asyncio.to_thread(entered.wait, 30)
        assert realtime.tick_gate.busy
        fast_before = path.labels("fast")._value.get()
        res = await client.read_holding_registers(0, count=2, device_id=unit_of(realtime, ASSET_1))
        assert realtime.tick_gate.busy  # answered while the tick was still computing
        assert struct.unpack(">f", struct.pack(">2H", *res.registers))[0] == 12.5
        assert path.labels("fast")._value.get() == fast_before + 1
    finally:
        release.set()
        client.close()
