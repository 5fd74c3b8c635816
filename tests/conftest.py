"""Shared fixtures: small fleets on free ports and in-process simulators (manual clock)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=UTC)

SITE_A = "11111111-1111-4111-8111-111111111111"
SITE_B = "22222222-2222-4222-8222-222222222222"
ASSET_1 = "aaaaaaaa-0000-4000-8000-000000000001"
ASSET_2 = "aaaaaaaa-0000-4000-8000-000000000002"
ASSET_3 = "aaaaaaaa-0000-4000-8000-000000000003"


def free_tcp_port() -> int:
    """A port that was free a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago: every socket is held until all are
    read (separate free_tcp_port() calls can return the same port)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def two_free_tcp_ports() -> tuple[int, int]:
    """Two distinct ports that were free a moment ago (see free_tcp_ports)."""
    a, b = free_tcp_ports(2)
    return a, b


def fleet_data(port_a: int, port_b: int) -> dict[str, Any]:
    """Three assets: two share ``port_a`` (units 1 and 2), one on ``port_b``."""
    return {
        "sites": [
            {"id": SITE_A, "name": "Site A", "location": "North"},
            {"id": SITE_B, "name": "Site B", "location": "South"},
        ],
        "assets": [
            {
                "id": ASSET_1, "site_id": SITE_A, "name": "BESS-1", "location": "bay 1",
                "capacity_mwhr": 100.0, "max_mw": 50.0, "min_mw": -50.0,
                "ramp_rate_mw_per_min": 10.0, "efficiency": 0.95,
                "modbus": {"port": port_a, "unit_id": 1},
            },
            {
                "id": ASSET_2, "site_id": SITE_A, "name": "BESS-2", "location": "bay 2",
                "capacity_mwhr": 40.0, "max_mw": 20.0, "min_mw": -20.0,
                "ramp_rate_mw_per_min": 20.0, "efficiency": 0.92, "initial_soc_pct": 80,
                "soc_min_pct": 10, "soc_max_pct": 90, "watchdog_timeout_s": 30,
                "modbus": {"port": port_a, "unit_id": 2},
            },
            {
                "id": ASSET_3, "site_id": SITE_B, "name": "BESS-3", "location": "yard",
                "capacity_mwhr": 10.0, "max_mw": 5.0, "min_mw": -5.0,
                "ramp_rate_mw_per_min": 60.0, "efficiency": 0.9, "initial_soc_pct": 20,
                "modbus": {"port": port_b, "unit_id": 1},
            },
        ],
    }  # fmt: skip


@pytest.fixture
def assets_file(tmp_path: Path) -> Path:
    """assets.yaml of :func:`fleet_data` on two free ports."""
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(fleet_data(*two_free_tcp_ports())))
    return path


@pytest.fixture
def make_settings(assets_file: Path) -> Callable[..., Settings]:
    """Settings for an in-process simulator: manual clock, HTTP on a free port, fixed start."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "assets": assets_file,
            "register_map": ROOT / "register_map.yaml",
            "http_port": 0,
            "clock": "manual",
            "start_time": START,
            "database_url": None,
            "api_token": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def runtime(make_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    """A started simulator (HTTP + Modbus) with the manual clock."""
    settings = make_settings()
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    async with rt:
        yield rt
