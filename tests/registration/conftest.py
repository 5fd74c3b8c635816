"""Fixtures of the registration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings


@pytest.fixture
def start_runtime(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """``async with start_runtime(**overrides) as rt``: a simulator with other settings."""

    def start(**overrides: Any) -> Runtime:
        settings = make_settings(**overrides)
        return Runtime(
            settings, load_assets(settings.assets), load_register_map(settings.register_map)
        )

    return start
