"""Small helpers of the fault tests (raw Modbus frames, REST calls)."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import httpx

from bess_sim.runtime import Runtime
from tests.modbus.conftest import mbap, port_of, read_pdu, unit_of


async def post_fault(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/faults", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def delete_fault(client: httpx.AsyncClient, fault_id: str) -> dict[str, Any]:
    r = await client.delete(f"/faults/{fault_id}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def open_raw(rt: Runtime, asset_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port_of(rt, asset_id))


def fc4(rt: Runtime, asset_id: str, tid: int, count: int = 2) -> bytes:
    """An FC04 read of input registers 0..count-1 of the asset's unit."""
    return mbap(tid, unit_of(rt, asset_id), read_pdu(4, 0, count))


async def answers(reader: asyncio.StreamReader, quiet_s: float) -> list[tuple[int, float, bytes]]:
    """(tid, arrival time, pdu) of every answer until ``quiet_s`` passes without one."""
    out: list[tuple[int, float, bytes]] = []
    while True:
        try:
            head = await asyncio.wait_for(reader.readexactly(7), quiet_s)
        except (TimeoutError, asyncio.IncompleteReadError):
            return out
        tid, _, length, _ = struct.unpack(">HHHB", head)
        pdu = await reader.readexactly(length - 1)
        out.append((tid, time.perf_counter(), pdu))
