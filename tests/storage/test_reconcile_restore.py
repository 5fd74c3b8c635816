"""Reconcile (upsert + prune), RESET_DB, and restore of state and dispatches on start-up."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from bess_sim.config import load_assets
from bess_sim.sim import DispatchRequest, DispatchStatus, FleetConfig

from .helpers import (
    ASSET_1,
    ASSET_2,
    ASSET_3,
    SITE_B,
    START,
    eventually,
    make_storage,
    new_fleet,
    tick,
)


@pytest.fixture
def config(assets_file: Path) -> FleetConfig:
    return load_assets(assets_file)


async def _count(sql, table: str, where: str = "true", *args: object) -> int:
    rows = await sql(f"SELECT count(*) AS n FROM {table} WHERE {where}", *args)
    return int(rows[0]["n"])


async def _populate(db_url: str, config: FleetConfig, ticks: int = 10) -> None:
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet) as storage:
        fleet.dispatch(DispatchRequest(ASSET_3, 2.0))
        fleet.dispatch(DispatchRequest(ASSET_1, 999.0))  # rejected: recorded too
        tick(fleet, storage, ticks)
        assert await storage.flush(30)


async def test_reconcile_upserts_and_prunes_removed_assets(
    db_url: str, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    await _populate(db_url, config)
    assert await _count(sql, "assets") == 3
    assert await _count(sql, "sites") == 2
    assert await _count(sql, "telemetry") == 30
    assert await _count(sql, "dispatches") == 2
    rejected = await sql("SELECT status, reason FROM dispatches WHERE asset_id = $1", ASSET_1)
    assert rejected[0]["status"] == "rejected" and "outside" in rejected[0]["reason"]

    # assets.yaml edited: BESS-3 (the only asset of site B) removed, BESS-1 renamed.
    renamed = dataclasses.replace(config.assets[0], name="BESS-1 renamed")
    smaller = dataclasses.replace(
        config,
        sites=tuple(s for s in config.sites if s.id != SITE_B),
        assets=(renamed, config.assets[1]),
    )
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    fleet = new_fleet(smaller)
    async with make_storage(db_url, fleet) as storage:
        assert await storage.wait_pruned(60)  # the prune runs in the background
    assert await _count(sql, "assets") == 2
    assert await _count(sql, "sites") == 1
    assert await _count(sql, "telemetry", "asset_id = $1", ASSET_3) == 0
    assert await _count(sql, "dispatches", "asset_id = $1", ASSET_3) == 0
    assert await _count(sql, "telemetry") == 20  # the kept assets' rows are untouched
    names = await sql("SELECT name FROM assets WHERE id = $1", ASSET_1)
    assert names[0]["name"] == "BESS-1 renamed"
    assert "pruned 1 assets" in caplog.text
    assert "(10 telemetry rows, 1 dispatches) and 1 sites" in caplog.text


async def test_reset_db_truncates_first(
    db_url: str, sql, config: FleetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    await _populate(db_url, config)
    caplog.set_level(logging.INFO, logger="bess_sim.storage")
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet, reset=True) as storage:
        assert storage.restored is False
        # Nothing restored: initial state and the configured start time.
        assert fleet.start_time == START
        assert fleet.snapshot(ASSET_3).soc_pct == pytest.approx(20.0)
        assert fleet.control(ASSET_3).setpoint_mw == 0.0
        assert fleet.dispatches() == []
    assert await _count(sql, "telemetry") == 0
    assert await _count(sql, "dispatches") == 0
    assert await _count(sql, "assets") == 3  # upserted again from YAML
    assert "RESET_DB" in caplog.text


async def test_restore_state_and_dispatch_in_effect(db_url: str, sql, config: FleetConfig) -> None:
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet) as storage:
        d1 = fleet.dispatch(DispatchRequest(ASSET_1, 20.0, duration_s=600))
        d2 = fleet.dispatch(DispatchRequest(ASSET_2, -10.0))
        d3 = fleet.dispatch(DispatchRequest(ASSET_3, 4.0, duration_s=60))
        assert d1.status is d2.status is d3.status is DispatchStatus.ACCEPTED
        tick(fleet, storage, 120)
        assert await storage.flush(30)
        before = {s.asset_id: s for s in fleet.snapshots()}

    fleet2 = new_fleet(config)
    async with make_storage(db_url, fleet2) as storage2:
        assert storage2.restored
        # Simulated time continues after the last persisted row.
        assert fleet2.start_time == START + timedelta(seconds=120)
        for asset_id, snap in before.items():
            now = fleet2.snapshot(asset_id)
            assert now.soc_mwhr == pytest.approx(snap.soc_mwhr, abs=1e-9)
            assert now.current_mw == pytest.approx(snap.current_mw, abs=1e-9)
            assert now.setpoint_mw == snap.setpoint_mw
        active1 = fleet2.active_dispatch(ASSET_1)
        assert active1 is not None and active1.id == d1.id
        active2 = fleet2.active_dispatch(ASSET_2)
        assert active2 is not None and active2.id == d2.id
        assert fleet2.active_dispatch(ASSET_3) is None
        # The in-memory dispatch log is reloaded, in order, with final statuses.
        log = {r.id: r for r in fleet2.dispatches()}
        assert [r.id for r in reversed(fleet2.dispatches())] == [d1.id, d2.id, d3.id]
        assert log[d3.id].status is DispatchStatus.COMPLETED
        # d1 had 600 − 120 = 480 s left.
        tick(fleet2, storage2, 479)
        assert fleet2.control(ASSET_1).setpoint_mw == 20.0
        tick(fleet2, storage2, 2)
        assert fleet2.control(ASSET_1).setpoint_mw == 0.0
        assert await storage2.flush(30)
    rows = await sql("SELECT status, ended_at FROM dispatches WHERE id = $1", d1.id)
    assert rows[0]["status"] == "completed"
    assert rows[0]["ended_at"] == START + timedelta(seconds=600)
    # Every tick of both runs stored once, no collisions.
    assert await _count(sql, "telemetry", "asset_id = $1", ASSET_1) == 120 + 481


async def test_dispatch_whose_time_passed_is_completed_and_trip_restored(
    db_url: str, sql, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet) as storage:
        d3 = fleet.dispatch(DispatchRequest(ASSET_3, 4.0, duration_s=60))
        fleet.trip(ASSET_2)
        tick(fleet, storage, 90)
        assert await storage.flush(30)
    # A crash lost the completion update: the record still says accepted.
    await sql("UPDATE dispatches SET status = 'accepted', ended_at = NULL WHERE id = $1", d3.id)

    fleet2 = new_fleet(config)
    async with make_storage(db_url, fleet2):
        assert fleet2.active_dispatch(ASSET_3) is None
        assert fleet2.control(ASSET_3).setpoint_mw == 0.0
        rec = fleet2.dispatch_record(d3.id)
        assert rec is not None and rec.status is DispatchStatus.COMPLETED
        assert fleet2.control(ASSET_2).tripped
    rows = await sql("SELECT status, ended_at FROM dispatches WHERE id = $1", d3.id)
    assert rows[0]["status"] == "completed"
    assert rows[0]["ended_at"] == START + timedelta(seconds=60)


async def test_dispatch_records_written_on_creation_and_every_change(
    db_url: str, sql, config: FleetConfig
) -> None:
    fleet = new_fleet(config)
    async with make_storage(db_url, fleet):
        first = fleet.dispatch(DispatchRequest(ASSET_1, 5.0))

        async def statuses() -> dict[str, str]:
            rows = await sql("SELECT id, status FROM dispatches")
            return {str(r["id"]): r["status"] for r in rows}

        async def first_written() -> bool:
            return (await statuses()) == {first.id: "accepted"}

        await eventually(first_written, what="the accepted record (no tick, no flush)")
        rejected = fleet.dispatch(DispatchRequest(ASSET_1, 1e9))
        second = fleet.dispatch(DispatchRequest(ASSET_1, 6.0))  # supersedes the first
        fleet.trip(ASSET_1)  # interrupts the second
        want = {
            first.id: "superseded",
            rejected.id: "rejected",
            second.id: "interrupted",
        }

        async def all_written() -> bool:
            return (await statuses()) == want

        await eventually(all_written, what="every status change to be written")


async def test_restore_keeps_temperature_q_and_an_over_temperature_trip(
    db_url: str, config: FleetConfig
) -> None:
    """DESIGN §10 state survives a restart: a hot battery stays hot (and derated), Q stays
    where it was, an over-temperature trip stays one (alarm latched until reset)."""
    from bess_sim.sim.models import ModelParams, ReactiveParams, ThermalParams

    # 1 MW of loss at 20 MW (η 0.95) heats the node toward 25 + 20 × 1.05 = 46 °C > trip_c.
    thermal = ThermalParams(25.0, 25.0, 0.2, 20.0, 40.0, 80.0, 45.0)
    model = ModelParams(thermal=thermal, reactive=ReactiveParams(60.0, -10.0, 10.0, "p"))
    hot = dataclasses.replace(config.assets[0], model=model)
    v2 = dataclasses.replace(config, assets=(hot, *config.assets[1:]))
    fleet = new_fleet(v2)
    async with make_storage(db_url, fleet) as storage:
        fleet.dispatch(DispatchRequest(ASSET_1, 20.0, mvar=5.0))
        for _ in range(600):
            tick(fleet, storage, 1)
            if fleet.snapshot(ASSET_1).status_label == "fault":
                break
        before = fleet.snapshot(ASSET_1)
        assert "over_temperature" in before.alarm_names, before
        assert await storage.flush(30)
    fleet2 = new_fleet(v2)
    async with make_storage(db_url, fleet2):
        after = fleet2.snapshot(ASSET_1)
        assert after.temperature_c == pytest.approx(before.temperature_c)
        assert after.current_mvar == pytest.approx(before.current_mvar)
        assert after.status_label == "fault"
        assert {"trip", "over_temperature"} <= set(after.alarm_names)
        assert after.temperature_c is not None and after.temperature_c > 40.0
