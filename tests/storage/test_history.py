"""History from the database: newest first, limit, time range, buckets — and the in-memory
bucketing gives the same answer for the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bess_sim.config import load_assets
from bess_sim.sim import DispatchRequest, FleetConfig, HistoryBuffer, HistoryQuery, Snapshot
from bess_sim.sim.history import bucket_snapshots, bucket_start

from .helpers import ASSET_1, ASSET_3, START, make_storage, new_fleet


@pytest.fixture
def config(assets_file: Path) -> FleetConfig:
    return load_assets(assets_file)


def _same(a: Snapshot, b: Snapshot) -> None:
    assert a.timestamp == b.timestamp
    for field in ("soc_mwhr", "soc_pct", "current_mw", "setpoint_mw"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-9), field
    assert a.status == b.status
    assert a.alarms == b.alarms
    assert (a.asset_id, a.site_id, a.capacity_mwhr, a.max_mw, a.min_mw) == (
        b.asset_id, b.site_id, b.capacity_mwhr, b.max_mw, b.min_mw,
    )  # fmt: skip


async def test_history_range_limit_and_buckets(db_url: str, config: FleetConfig) -> None:
    fleet = new_fleet(config)
    memory = HistoryBuffer((a.id for a in config.assets), 10_000)
    async with make_storage(db_url, fleet) as st:
        fleet.dispatch(DispatchRequest(ASSET_1, 30.0, duration_s=200))
        fleet.dispatch(DispatchRequest(ASSET_3, -5.0))  # a charging asset too
        for _ in range(400):
            snaps = fleet.advance(1.0)
            st.publish(snaps)
            memory.publish(snaps)

        # Raw, newest first, limited; read right after publishing (no explicit flush).
        raw = await st.history(HistoryQuery(ASSET_1, limit=10))
        assert [r.timestamp for r in raw] == [
            START + timedelta(seconds=s) for s in range(400, 390, -1)
        ]
        for got, want in zip(raw, memory.query(HistoryQuery(ASSET_1, limit=10)), strict=True):
            _same(got, want)

        # Time range, inclusive at both ends.
        q = HistoryQuery(
            ASSET_1,
            limit=100,
            start=START + timedelta(seconds=100),
            end=START + timedelta(seconds=110),
        )
        ranged = await st.history(q)
        assert [r.timestamp for r in ranged] == [
            START + timedelta(seconds=s) for s in range(110, 99, -1)
        ]

        # Buckets of 60 s over a range that starts and ends mid-bucket.
        for asset in (ASSET_1, ASSET_3):
            q = HistoryQuery(
                asset,
                limit=5,
                start=START + timedelta(seconds=30),
                end=START + timedelta(seconds=350),
                bucket_s=60.0,
            )
            buckets = await st.history(q)
            expected = bucket_snapshots(
                memory.query(HistoryQuery(asset, limit=10_000, start=q.start, end=q.end)), 60.0, 5
            )
            assert len(buckets) == 5
            assert buckets[0].timestamp == START + timedelta(seconds=300)
            for got, want in zip(buckets, expected, strict=True):
                _same(got, want)

        assert await st.history(HistoryQuery("00000000-0000-4000-8000-000000000000")) == []


def _snap(ts: datetime, soc: float, mw: float) -> Snapshot:
    from bess_sim.sim import Alarm, Status

    return Snapshot(
        asset_id="a", site_id="s", timestamp=ts, sim_time_s=(ts - START).total_seconds(),
        soc_mwhr=soc, soc_pct=soc, capacity_mwhr=100.0, current_mw=mw, setpoint_mw=mw,
        max_mw=10.0, min_mw=-10.0,
        status=Status.DISCHARGING if mw > 0.1 else Status.IDLE, alarms=Alarm(0), heartbeat=0,
    )  # fmt: skip


def test_bucket_snapshots_pure() -> None:
    rows = [
        _snap(START + timedelta(seconds=s), float(s), 1.0 if s >= 60 else 0.0)
        for s in range(0, 150, 10)
    ]
    rows.reverse()  # newest first, as history queries return
    out = bucket_snapshots(rows, 60.0, limit=10)
    assert [b.timestamp for b in out] == [START + timedelta(seconds=s) for s in (120, 60, 0)]
    assert out[0].soc_mwhr == pytest.approx((120 + 130 + 140) / 3)
    assert out[2].soc_mwhr == pytest.approx(25.0)  # 0..50
    assert out[1].current_mw == 1.0 and out[2].current_mw == 0.0
    assert out[1].status_label == "discharging"  # from the bucket's latest row
    assert out[0].sim_time_s == 120.0
    assert bucket_snapshots(rows, 60.0, limit=2) == out[:2]
    with pytest.raises(ValueError):
        bucket_snapshots(rows, 0.0, limit=1)


def test_bucket_start_is_epoch_aligned() -> None:
    ts = datetime(2026, 1, 1, 0, 7, 30, 250_000, tzinfo=UTC)
    assert bucket_start(ts, 300) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert bucket_start(ts, 0.5) == datetime(2026, 1, 1, 0, 7, 30, tzinfo=UTC)
    assert bucket_start(ts, 86_400) == datetime(2026, 1, 1, tzinfo=UTC)
