"""A registered asset over real Modbus TCP (DESIGN §14): it answers at once (its new port is
bound), a Modbus setpoint write dispatches it, and once deleted its unit answers 0x0B (shared
port) or its port is closed (no unit left)."""

from __future__ import annotations

import asyncio
import shutil
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, free_tcp_port
from tests.registry_helpers import NEW_ASSET, asset_body, http

TIMEOUT_S = 10.0
DT = AsyncModbusTcpClient.DATATYPE


def f32(value: float) -> list[int]:
    return AsyncModbusTcpClient.convert_to_registers(value, DT.FLOAT32, word_order="big")


def as_f32(regs: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *regs))[0])


async def connect(port: int) -> AsyncModbusTcpClient:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=TIMEOUT_S, retries=0)
    assert await c.connect()
    return c


async def test_new_port_answers_dispatches_and_closes_on_delete(runtime: Runtime) -> None:
    port = free_tcp_port()
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(port, 3))).status_code == 201
        assert runtime.modbus_ports[port] == port
        client = await connect(port)
        try:
            rr = await client.read_input_registers(2, count=2, device_id=3)  # soc_pct
            assert not rr.isError(), rr
            assert as_f32(rr.registers) == pytest.approx(40.0)
            cap = await client.read_input_registers(10, count=2, device_id=3)
            assert as_f32(cap.registers) == pytest.approx(20.0)
            # Another unit on the new port: 0x0B like any unknown unit.
            other = await client.read_input_registers(0, count=1, device_id=4)
            assert other.isError() and other.exception_code == 0x0B
            # A Modbus setpoint write goes through the dispatch path (source modbus).
            wr = await client.write_registers(0, f32(6.0), device_id=3)
            assert not wr.isError(), wr
            rec = (await c.get("/dispatches", params={"asset_id": NEW_ASSET})).json()[0]
            assert rec["source"] == "modbus" and rec["status"] == "accepted" and rec["mw"] == 6.0
            out_of_range = await client.write_registers(0, f32(50.0), device_id=3)
            assert out_of_range.isError() and out_of_range.exception_code == 0x03
            await c.post("/sim/step", json={"seconds": 10})
            mw = await client.read_input_registers(6, count=2, device_id=3)
            assert as_f32(mw.registers) == pytest.approx(6.0)
            assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 204
            rec = (await c.get(f"/dispatches/{rec['id']}")).json()
            assert rec["status"] == "interrupted"
        finally:
            client.close()
    # The port had no other unit: it is closed, new connections are refused.
    assert port not in runtime.modbus_ports
    with pytest.raises(OSError):
        _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT_S)
        w.close()


async def test_shared_port_unit_appears_and_answers_0x0b_after_delete(runtime: Runtime) -> None:
    a1 = runtime.fleet.spec(ASSET_1)
    bound = runtime.modbus_ports[a1.modbus.port]
    client = await connect(bound)  # connected before the unit exists
    try:
        before = await client.read_input_registers(0, count=1, device_id=9)
        assert before.isError() and before.exception_code == 0x0B
        async with http(runtime) as c:
            r = await c.post("/assets", json=asset_body(a1.modbus.port, 9))
            assert r.status_code == 201, r.text
            rr = await client.read_input_registers(2, count=2, device_id=9)
            assert not rr.isError() and as_f32(rr.registers) == pytest.approx(40.0)
            hr = await client.read_holding_registers(0, count=8, device_id=9)
            assert not hr.isError()
            # PUT moves it to unit 10 on the same port: 9 stops answering, 10 starts.
            moved = asset_body(a1.modbus.port, 10)
            assert (await c.put(f"/assets/{NEW_ASSET}", json=moved)).status_code == 200
            gone = await client.read_input_registers(0, count=1, device_id=9)
            assert gone.isError() and gone.exception_code == 0x0B
            assert not (await client.read_input_registers(0, count=1, device_id=10)).isError()
            assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 204
        after = await client.read_input_registers(0, count=1, device_id=10)
        assert after.isError() and after.exception_code == 0x0B
        write = await client.write_registers(0, f32(1.0), device_id=10)
        assert write.isError() and write.exception_code == 0x0B
        # The file's asset on the same port still answers.
        assert not (await client.read_input_registers(0, count=1, device_id=1)).isError()
    finally:
        client.close()


MBPOLL = shutil.which("mbpoll")


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_mbpoll_reads_a_registered_asset(runtime: Runtime) -> None:
    assert MBPOLL is not None
    port = free_tcp_port()
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(port, 2))).status_code == 201
        proc = await asyncio.create_subprocess_exec(
            MBPOLL, "-m", "tcp", "-p", str(port), "-a", "2", "-0", "-B", "-o", "5",
            "-t", "3:float", "-r", "10", "-c", "1", "-1", "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert "[10]: \t20" in out.decode() or "[10]: 20" in out.decode(), out.decode()


async def test_put_moves_the_device_to_a_new_port(runtime: Runtime) -> None:
    old, new = free_tcp_port(), free_tcp_port()
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(old, 1))).status_code == 201
        r = await c.put(f"/assets/{NEW_ASSET}", json=asset_body(new, 2))
        assert r.status_code == 200, r.text
    assert old not in runtime.modbus_ports and runtime.modbus_ports[new] == new
    client = await connect(new)
    try:
        rr = await client.read_input_registers(10, count=2, device_id=2)
        assert not rr.isError() and as_f32(rr.registers) == pytest.approx(20.0)
    finally:
        client.close()
    with pytest.raises(OSError):
        _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", old), TIMEOUT_S)
        w.close()
