"""Fixtures of the API tests: real HTTP clients against in-process simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings

TOKEN = "s3cret-token"


def base_url(rt: Runtime) -> str:
    return f"http://127.0.0.1:{rt.http_port}"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """httpx over real HTTP to the shared ``runtime`` fixture (manual clock, no token)."""
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        yield c


@pytest.fixture
def start_runtime(
    make_settings: Callable[..., Settings],
) -> Callable[..., Any]:
    """``async with start_runtime(**overrides) as rt`` — another simulator with other settings."""

    def start(**overrides: Any) -> Runtime:
        settings = make_settings(**overrides)
        return Runtime(
            settings, load_assets(settings.assets), load_register_map(settings.register_map)
        )

    return start
