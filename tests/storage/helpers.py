"""Small helpers shared by the storage tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bess_sim.metrics import Metrics
from bess_sim.sim import Fleet, FleetConfig, HistoryQuery, Snapshot
from bess_sim.storage import Storage, StorageConfig

START = datetime(2026, 1, 1, tzinfo=UTC)
ASSET_1 = "aaaaaaaa-0000-4000-8000-000000000001"
ASSET_2 = "aaaaaaaa-0000-4000-8000-000000000002"
ASSET_3 = "aaaaaaaa-0000-4000-8000-000000000003"
SITE_B = "22222222-2222-4222-8222-222222222222"


def make_storage(
    url: str,
    fleet: Fleet,
    *,
    metrics: Metrics | None = None,
    statuses: list[str] | None = None,
    fallback: Callable[[HistoryQuery], list[Snapshot]] | None = None,
    **config: Any,
) -> Storage:
    cfg = StorageConfig(url, **config)
    on_status = statuses.append if statuses is not None else None
    return Storage(cfg, fleet, metrics or Metrics(), on_status=on_status, fallback_history=fallback)


def tick(fleet: Fleet, storage: Storage, n: int = 1, dt_s: float = 1.0) -> None:
    for _ in range(n):
        storage.publish(fleet.advance(dt_s))


async def eventually(
    check: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition"
) -> None:
    """Poll ``check`` (sync or async) until truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def new_fleet(config: FleetConfig, start: datetime = START) -> Fleet:
    return Fleet(config, start)


def dropped(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("bess_db_dropped_rows_total")
    return float(value or 0.0)
