"""Fixtures of the fault tests: the shared manual-clock simulator, HTTP and Modbus clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}", timeout=30) as c:
        yield c


@pytest.fixture
async def modbus_client(
    runtime: Runtime,
) -> AsyncIterator[Callable[..., Any]]:
    """``await modbus_client(asset_id, wait_s=…)`` → a connected pymodbus client (closed after)."""
    made: list[AsyncModbusTcpClient] = []

    async def make(asset_id: str, wait_s: float = 3.0, retries: int = 0) -> AsyncModbusTcpClient:
        port = runtime.modbus_ports[runtime.fleet.spec(asset_id).modbus.port]
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=wait_s, retries=retries)
        assert await c.connect()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def start_runtime(make_settings: Callable[..., Settings]) -> Callable[..., Runtime]:
    """``async with start_runtime(**overrides) as rt`` — a simulator with other settings."""

    def start(**overrides: Any) -> Runtime:
        settings = make_settings(**overrides)
        return Runtime(
            settings, load_assets(settings.assets), load_register_map(settings.register_map)
        )

    return start
