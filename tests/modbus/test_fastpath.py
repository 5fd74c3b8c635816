"""Fast read path (issue 15, modbus/fastpath.py): the same requests through the fast path and
with it disabled give byte-identical answers, and every read of the native and SunSpec maps
by a real master (pymodbus, mbpoll) is counted on the fast path in /metrics."""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bess_sim.config import load_assets
from bess_sim.modbus.points import Table, load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from bess_sim.sim import DispatchRequest
from bess_sim.sunspec import BASE_ADDRESS, load_layout
from tests.conftest import ROOT, fleet_data, two_free_tcp_ports
from tests.modbus.conftest import ASSET_1, ASSET_2, ASSET_3, TIMEOUT_S, mbap, port_of, unit_of

MBPOLL = shutil.which("mbpoll")
SUNSPEC_END = BASE_ADDRESS + load_layout().size


@pytest.fixture(params=["big", "little"])
async def mixed(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: Callable[..., Settings]
) -> AsyncIterator[Runtime]:
    """BESS-1 both (default), BESS-2 native only, BESS-3 SunSpec only; the map in big and in
    little word order (the fast path slices a word-swapped image then)."""
    data = fleet_data(*two_free_tcp_ports())
    profiles = {ASSET_2: "native", ASSET_3: "sunspec"}
    for asset in data["assets"]:
        if asset["id"] in profiles:
            asset["modbus"]["profile"] = profiles[asset["id"]]
    assets = tmp_path / "assets.yaml"
    assets.write_text(yaml.safe_dump(data))
    rmap = tmp_path / "register_map.yaml"
    text = (ROOT / "register_map.yaml").read_text()
    rmap.write_text(text.replace("word_order: big", f"word_order: {request.param}", 1))
    settings = make_settings(assets=assets, register_map=rmap)
    async with Runtime(settings, load_assets(assets), load_register_map(rmap)) as rt:
        await rt.step(3.0)
        rt.fleet.dispatch(DispatchRequest(ASSET_1, 12.5))
        await rt.step(1.0)
        yield rt


def rd(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def requests(rt: Runtime, unit: int) -> list[bytes]:
    """Valid reads, reads outside the maps, bad counts, unknown unit, malformed frames."""
    rm = rt.register_map
    n_in, n_hr = rm.size(Table.INPUT), rm.size(Table.HOLDING)
    # The write goes first so that both runs read the same command state afterwards.
    frames: list[tuple[int, bytes]] = [(unit, struct.pack(">BHH", 6, 4, 7))]
    for address, count in [
        (0, 1), (0, n_in), (2, 2), (3, 2), (n_in - 1, 1), (n_in - 1, 2), (n_in, 1),
        (0, 0), (0, 126), (0, 125), (0xFFFF, 1), (0xFFFF, 2),
    ]:  # fmt: skip
        frames.append((unit, rd(4, address, count)))
    for address, count in [(0, n_hr), (0, n_hr + 1), (1, 2), (n_hr, 1), (0, 0), (0, 200)]:
        frames.append((unit, rd(3, address, count)))
    for address, count in [
        (BASE_ADDRESS, 2), (BASE_ADDRESS, 125), (BASE_ADDRESS + 69, 60),
        (SUNSPEC_END - 1, 1), (SUNSPEC_END - 1, 2), (SUNSPEC_END, 1), (BASE_ADDRESS - 1, 2),
        (BASE_ADDRESS, 0), (BASE_ADDRESS, 126), (0xFFFF, 1),
    ]:  # fmt: skip
        frames.append((unit, rd(3, address, count)))
    frames += [
        (unit, rd(4, BASE_ADDRESS, 2)),  # input table does not reach 40000
        (0x7E, rd(4, 0, 2)),  # unit not served on this port → 0x0B
        (0x7E, rd(3, BASE_ADDRESS, 2)),
        (0, rd(4, 0, 2)),  # broadcast id: not served
        (unit, b"\x04\x00\x00\x00"),  # PDU one byte short
        (unit, rd(4, 0, 2) + b"\x00"),  # one byte too many
        (unit, rd(3, BASE_ADDRESS, 2) + b"\x00"),
        (unit, b"\x04"),
        (unit, rd(1, 0, 8)),  # coils: not served
        (unit, rd(2, 0, 8)),
        (unit, b"\x2b\x0e\x01\x00"),  # device identification
        (unit, struct.pack(">BHH", 6, 4, 7)),  # a write between reads (slow path)
        (unit, rd(3, 0, n_hr)),  # ... and the echo
        (unit, rd(4, 0, 2)),
    ]
    out = [mbap(0x1000 + i, u, pdu) for i, (u, pdu) in enumerate(frames)]
    # A header that cannot be Modbus TCP ends the connection after the answers before it.
    out.append(mbap(0xBAD, unit, rd(4, 0, 2), protocol=1))
    return out


async def exchange(rt: Runtime, asset_id: str, frames: list[bytes], pipelined: bool) -> bytes:
    """Raw bytes the server sends back until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(rt, asset_id))
    try:
        if pipelined:
            writer.write(b"".join(frames))
        else:
            for frame in frames:
                writer.write(frame)
                await writer.drain()
                await asyncio.sleep(0.002)  # one request per segment
        return await asyncio.wait_for(reader.read(-1), TIMEOUT_S)
    finally:
        writer.close()


def path_counts(rt: Runtime) -> tuple[float, float]:
    c = rt.metrics.modbus_request_path
    return c.labels("fast")._value.get(), c.labels("slow")._value.get()


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one_by_one"])
async def test_fast_and_slow_paths_answer_byte_identical(mixed: Runtime, pipelined: bool) -> None:
    service = mixed.modbus
    assert service is not None
    for asset_id in (ASSET_1, ASSET_2, ASSET_3):
        frames = requests(mixed, unit_of(mixed, asset_id))
        service.fast_path = True
        fast0, _ = path_counts(mixed)
        fast_bytes = await exchange(mixed, asset_id, frames, pipelined)
        fast1, _ = path_counts(mixed)
        service.fast_path = False
        slow_bytes = await exchange(mixed, asset_id, frames, pipelined)
        fast2, _ = path_counts(mixed)
        assert fast_bytes == slow_bytes, asset_id
        assert fast1 > fast0  # the fast path did answer some of them
        assert fast2 == fast1  # ... and none with it disabled
        # Every frame but the bad header was answered (FC06 echoes, all others read/except).
        assert fast_bytes.count(b"\x00\x00") >= len(frames) - 1


async def test_a_port_with_a_request_hook_takes_the_slow_path(mixed: Runtime) -> None:
    """Comm faults act through the port's request hook: with one installed, no fast answer."""
    service = mixed.modbus
    assert service is not None
    seen: list[tuple[int, int]] = []

    def hook(unit: int, fc: int) -> None:
        seen.append((unit, fc))

    frames = [mbap(i, 1, rd(4, 0, 2)) for i in range(5)]
    fast0, slow0 = path_counts(mixed)
    service.request_hook = hook
    try:
        hooked = await exchange(
            mixed, ASSET_1, [*frames, mbap(9, 1, rd(4, 0, 2), protocol=1)], True
        )
    finally:
        service.request_hook = None
    fast1, slow1 = path_counts(mixed)
    assert seen == [(1, 4)] * 5
    assert (fast1 - fast0, slow1 - slow0) == (0, 5)
    plain = await exchange(mixed, ASSET_1, [*frames, mbap(9, 1, rd(4, 0, 2), protocol=1)], True)
    assert plain == hooked
    assert path_counts(mixed)[0] - fast1 == 5


# ----------------------------------------------------------------- no read takes the slow path
async def metrics_paths(rt: Runtime) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as http:
        res = await http.get("/metrics", timeout=30)
    res.raise_for_status()
    found = re.findall(r'^bess_modbus_request_path_total\{path="(\w+)"\} (\S+)$', res.text, re.M)
    return {k: float(v) for k, v in found}


def blocks(rt: Runtime) -> list[tuple[int, int, int]]:
    """(fc, address, count) covering every native table and every SunSpec model, ≤ 125 each."""
    rm = rt.register_map
    out = [(4, 0, rm.size(Table.INPUT)), (3, 0, rm.size(Table.HOLDING))]
    out += [(4, p.address, p.width) for p in rm.table(Table.INPUT)]
    out += [(3, p.address, p.width) for p in rm.table(Table.HOLDING)]
    layout = load_layout()
    out.append((3, BASE_ADDRESS, 2))
    for m in layout.models:
        for start in range(m.address, m.end, 125):
            out.append((3, start, min(125, m.end - start)))
    out.append((3, layout.end_address, 2))
    return out


async def test_every_map_read_by_pymodbus_takes_the_fast_path(
    runtime: Runtime, client_for: Callable[..., Any]
) -> None:
    before = await metrics_paths(runtime)
    n = 0
    for asset_id in (ASSET_1, ASSET_2, ASSET_3):
        client = await client_for(asset_id)
        unit = unit_of(runtime, asset_id)
        for fc, address, count in blocks(runtime):
            read = client.read_input_registers if fc == 4 else client.read_holding_registers
            res = await read(address, count=count, device_id=unit)
            assert not res.isError(), (asset_id, fc, address, count)
            assert len(res.registers) == count
            n += 1
    after = await metrics_paths(runtime)
    assert after.get("slow", 0) == before.get("slow", 0), "a map read took the slow path"
    assert after["fast"] - before.get("fast", 0) == n


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_every_map_read_by_mbpoll_takes_the_fast_path(runtime: Runtime) -> None:
    assert MBPOLL is not None
    before = await metrics_paths(runtime)
    n = 0
    for fc, address, count in blocks(runtime):
        proc = await asyncio.create_subprocess_exec(
            MBPOLL, "-m", "tcp", "-p", str(port_of(runtime, ASSET_2)),
            "-a", str(unit_of(runtime, ASSET_2)), "-0", "-B", "-o", "5",
            "-t", "3" if fc == 4 else "4", "-r", str(address), "-c", str(count), "-1",
            "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        n += 1
    after = await metrics_paths(runtime)
    assert after.get("slow", 0) == before.get("slow", 0), "a map read took the slow path"
    assert after["fast"] - before.get("fast", 0) == n
