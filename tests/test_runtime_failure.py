"""A failing tick loop is visible (issue 9 item 10): logged, /health 503 ``failed``, /sim/step
503, clean shutdown; start times the clock cannot advance from are refused at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings

# Two seconds before the end of datetime: the third tick of 1 s overflows.
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC)


def _runtime(settings: Settings) -> Runtime:
    return Runtime(
        settings,
        load_assets(settings.assets),
        load_register_map(settings.register_map),
        start_time=END_OF_TIME,  # bypasses the settings check on purpose
    )


async def test_manual_step_failure_is_503_and_health_failed(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    async with _runtime(make_settings(modbus_enabled=False)) as rt:
        base = f"http://127.0.0.1:{rt.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            assert (await c.get("/health")).json()["status"] == "ok"
            r = await c.post("/sim/step", json={"seconds": 5})
            assert r.status_code == 503, r.text
            assert "OverflowError" in r.json()["detail"]
            h = await c.get("/health")
            assert h.status_code == 503
            body = h.json()
            assert body["status"] == "failed" and "OverflowError" in body["error"]
            # Once failed, further steps are refused at once (time cannot advance).
            r = await c.post("/sim/step", json={"seconds": 1})
            assert r.status_code == 503
    assert any(
        rec.levelno == logging.ERROR and "tick loop stopped" in rec.getMessage()
        for rec in caplog.records
    )


async def test_realtime_tick_failure_shows_on_health_and_shutdown_is_clean(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        modbus_enabled=False, clock="realtime", tick_interval_s=0.02, speed=50.0
    )
    rt = _runtime(settings)
    async with rt:
        base = f"http://127.0.0.1:{rt.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            while (h := await c.get("/health")).status_code == 200:  # noqa: ASYNC110 (polls HTTP)
                await asyncio.sleep(0.02)
            assert h.status_code == 503
            assert h.json()["status"] == "failed"
            assert rt.failure is not None and "OverflowError" in rt.failure
    # __aexit__ returned without raising: the dead tick task does not break shutdown.


@pytest.mark.parametrize(
    "start", ["9999-12-31T23:59:58Z", "9000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
def test_absurd_start_time_is_refused(start: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="start_time"):
        Settings(start_time=start)


def test_start_time_is_normalised_to_utc() -> None:
    s = Settings(start_time="2026-01-01T02:00:00+02:00")
    assert s.start_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert Settings(start_time="8999-12-31T00:00:00").start_time == datetime(
        8999, 12, 31, tzinfo=UTC
    )
