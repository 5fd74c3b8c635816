"""Modbus test helpers: pymodbus clients and raw MBAP frames against a started Runtime."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3

#: Generous: a loaded 2-core CI machine must not make these tests flaky.
TIMEOUT_S = 10.0


def port_of(rt: Runtime, asset_id: str) -> int:
    """Bound Modbus port of an asset."""
    return rt.modbus_ports[rt.fleet.spec(asset_id).modbus.port]


def unit_of(rt: Runtime, asset_id: str) -> int:
    return rt.fleet.spec(asset_id).modbus.unit_id


@pytest.fixture
async def client_for(runtime: Runtime) -> AsyncIterator[Callable[..., Any]]:
    """``await client_for(asset_id)`` → a connected pymodbus client of that asset's port."""
    clients: list[AsyncModbusTcpClient] = []

    async def make(asset_id: str = ASSET_1) -> AsyncModbusTcpClient:
        c = AsyncModbusTcpClient("127.0.0.1", port=port_of(runtime, asset_id), timeout=TIMEOUT_S,
                                 retries=0)  # fmt: skip
        assert await c.connect()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def mbap(tid: int, unit: int, pdu: bytes, *, protocol: int = 0, length: int | None = None) -> bytes:
    """One Modbus TCP frame; ``length`` overrides the MBAP length field (to lie)."""
    n = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, protocol, n, unit) + pdu


def read_pdu(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(transaction id, unit id, PDU) of the next response frame."""
    head = await asyncio.wait_for(reader.readexactly(7), TIMEOUT_S)
    tid, protocol, length, unit = struct.unpack(">HHHB", head)
    assert protocol == 0
    pdu = await asyncio.wait_for(reader.readexactly(length - 1), TIMEOUT_S)
    return tid, unit, pdu


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closes the connection (EOF or reset) before TIMEOUT_S."""
    try:
        data = await asyncio.wait_for(reader.read(1024), TIMEOUT_S)
    except ConnectionResetError:
        return True
    return data == b""


__all__ = ["ASSET_1", "ASSET_2", "ASSET_3", "TIMEOUT_S", "mbap", "port_of", "read_frame",
           "read_pdu", "unit_of"]  # fmt: skip
