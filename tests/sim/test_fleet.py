"""Dispatch rules (DESIGN §4), lifecycle in simulated time, watchdog, trip, history."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from bess_sim.sim import (
    Alarm,
    AssetSpec,
    DispatchRequest,
    DispatchSource,
    DispatchStatus,
    Fleet,
    FleetConfig,
    HistoryBuffer,
    HistoryQuery,
    ModbusAddress,
    Site,
    Status,
    UnknownAssetError,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = AssetSpec(
    id="a1", site_id="s1", name="BESS-A", location="", capacity_mwhr=100.0, max_mw=50.0,
    min_mw=-40.0, ramp_rate_mw_per_min=10.0, efficiency=0.95, modbus=ModbusAddress(5020, 1),
    soc_min_pct=10.0, soc_max_pct=90.0, watchdog_timeout_s=20.0,
)  # fmt: skip


def make_fleet(spec: AssetSpec = SPEC) -> Fleet:
    return Fleet(FleetConfig((Site("s1", "S", ""),), (spec,), "test"), T0)


SPEC_B = AssetSpec(
    id="b1", site_id="s1", name="BESS-B", location="", capacity_mwhr=10.0, max_mw=5.0,
    min_mw=-5.0, ramp_rate_mw_per_min=60.0, efficiency=0.9, modbus=ModbusAddress(5021, 1),
)  # fmt: skip


def two_asset_fleet() -> Fleet:
    """a1 (SPEC) and b1 (SPEC_B): for history frames holding more than one asset."""
    return Fleet(FleetConfig((Site("s1", "S", ""),), (SPEC, SPEC_B), "test"), T0)


def req(mw: float, **kw: object) -> DispatchRequest:
    return DispatchRequest("a1", mw, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mw", "kw", "needle"),
    [
        (math.nan, {}, "finite"),
        (math.inf, {}, "finite"),
        (50.5, {}, "outside [-40, 50]"),
        (-40.5, {}, "outside [-40, 50]"),
        (10.0, {"mode": "charge"}, "mode 'charge' needs mw <= 0"),
        (-10.0, {"mode": "discharge"}, "mode 'discharge' needs mw >= 0"),
        (10.0, {"mode": "sideways"}, "mode must be"),
        (10.0, {"duration_s": 0.0}, "duration_s must be a positive"),
        (10.0, {"duration_s": math.nan}, "duration_s must be a positive"),
        # 50 MWh at 50 % with soc_min 10 %: 40 MWh above soc_min, 40×0.95 at the terminals.
        (40.0, {"duration_s": 3600.0}, "needs 42.1053 MWh above soc_min, only 40.0000"),
        # 40 MWh below soc_max; charging 40 MW × 1.1 h × 0.95 = 41.8 MWh.
        (-40.0, {"duration_s": 3960.0}, "needs 41.8000 MWh below soc_max, only 40.0000"),
    ],
)
def test_rejections_are_recorded_with_reason(mw: float, kw: dict[str, object], needle: str) -> None:
    fleet = make_fleet()
    rec = fleet.dispatch(req(mw, **kw))
    assert rec.status is DispatchStatus.REJECTED
    assert rec.reason is not None and needle in rec.reason
    assert fleet.dispatch_record(rec.id) == rec
    assert fleet.snapshot("a1").setpoint_mw == 0.0  # nothing changed
    assert fleet.active_dispatch("a1") is None


def test_energy_check_accepts_exactly_enough() -> None:
    fleet = make_fleet()
    # 40 MWh above soc_min × 0.95 = 38 MWh deliverable: 38 MW for one hour fits exactly.
    assert fleet.dispatch(req(38.0, duration_s=3600.0)).status is DispatchStatus.ACCEPTED
    assert fleet.dispatch(req(-10.0, mode="charge")).status is DispatchStatus.ACCEPTED


def test_unknown_asset_raises_and_records_nothing() -> None:
    fleet = make_fleet()
    with pytest.raises(UnknownAssetError):
        fleet.dispatch(DispatchRequest("nope", 1.0))
    assert fleet.dispatches() == []


def test_tripped_asset_rejects_and_trip_interrupts() -> None:
    fleet = make_fleet()
    first = fleet.dispatch(req(20.0))
    fleet.advance(60)
    fleet.trip("a1")
    assert fleet.dispatch_record(first.id).status is DispatchStatus.INTERRUPTED  # type: ignore[union-attr]
    snap = fleet.snapshot("a1")
    assert snap.status == Status.FAULT and snap.alarms & Alarm.TRIP and snap.setpoint_mw == 0
    rejected = fleet.dispatch(req(5.0))
    assert rejected.status is DispatchStatus.REJECTED and "tripped" in (rejected.reason or "")
    fleet.advance(120)  # ramps down to 0 (target 0 while tripped)
    assert fleet.snapshot("a1").current_mw == 0.0
    fleet.reset_fault("a1")
    assert fleet.snapshot("a1").status == Status.IDLE
    assert fleet.dispatch(req(5.0)).status is DispatchStatus.ACCEPTED


def test_supersede() -> None:
    fleet = make_fleet()
    a = fleet.dispatch(req(10.0))
    fleet.advance(5)
    b = fleet.dispatch(req(-10.0, duration_s=60))
    old = fleet.dispatch_record(a.id)
    assert old is not None and old.status is DispatchStatus.SUPERSEDED
    assert old.ended_at == T0 + timedelta(seconds=5)
    assert fleet.active_dispatch("a1") == b
    assert [r.id for r in fleet.dispatches()] == [b.id, a.id]  # newest first
    assert fleet.dispatches(status=DispatchStatus.SUPERSEDED) == [old]


def test_duration_completes_at_exact_simulated_instant_mid_tick() -> None:
    fleet = make_fleet()
    rec = fleet.dispatch(req(20.0, duration_s=30.0))
    snap = fleet.advance(60.0)[0]
    done = fleet.dispatch_record(rec.id)
    assert done is not None and done.status is DispatchStatus.COMPLETED
    assert done.ended_at == T0 + timedelta(seconds=30)
    assert snap.setpoint_mw == 0.0
    # 30 s ramp up to 5 MW, then back down toward 0 for 30 s: back to 0 MW at 60 s.
    assert snap.current_mw == 0.0
    energy = 2 * (0.5 * 5 * 30) / 3600
    assert snap.soc_mwhr == pytest.approx(50.0 - energy / 0.95, abs=1e-12)


def test_one_tick_equals_many_with_lifecycle_events() -> None:
    a, b = make_fleet(), make_fleet()
    for f in (a, b):
        f.dispatch(req(20.0, duration_s=45.5))
    a.advance(120.0)
    for _ in range(120):
        b.advance(1.0)
    sa, sb = a.snapshot("a1"), b.snapshot("a1")
    assert sa.soc_mwhr == pytest.approx(sb.soc_mwhr, abs=1e-9)
    assert sa.current_mw == pytest.approx(sb.current_mw, abs=1e-9)
    assert sa.timestamp == sb.timestamp == T0 + timedelta(seconds=120)


def test_watchdog_reverts_modbus_setpoint_and_recovers() -> None:
    fleet = make_fleet()
    rec = fleet.dispatch(req(10.0, source=DispatchSource.MODBUS, client="127.0.0.1:5555"))
    for i in range(1, 4):  # heartbeat changes every 10 s keep it alive
        fleet.advance(10)
        fleet.heartbeat("a1", i)
    assert fleet.active_dispatch("a1") == rec
    fleet.advance(25)  # last change at 30 s; 20 s timeout expires at 50 s
    ended = fleet.dispatch_record(rec.id)
    assert ended is not None and ended.status is DispatchStatus.REVERTED
    assert ended.ended_at == T0 + timedelta(seconds=50)
    snap = fleet.snapshot("a1")
    assert snap.setpoint_mw == 0.0 and snap.alarms & Alarm.WATCHDOG
    fleet.heartbeat("a1", 99)
    again = fleet.dispatch(req(5.0, source=DispatchSource.MODBUS))
    assert again.status is DispatchStatus.ACCEPTED
    assert not fleet.advance(1)[0].alarms & Alarm.WATCHDOG


def test_watchdog_ignores_rest_and_zero_timeout() -> None:
    fleet = make_fleet()
    rest = fleet.dispatch(req(10.0))
    fleet.advance(100)
    assert fleet.active_dispatch("a1") == rest
    fleet.set_watchdog_timeout("a1", 0)
    mb = fleet.dispatch(req(10.0, source=DispatchSource.MODBUS))
    fleet.advance(100)
    assert fleet.active_dispatch("a1") == mb


def test_soc_alarms_and_status() -> None:
    spec = AssetSpec(
        id="a1", site_id="s1", name="small", location="", capacity_mwhr=1.0, max_mw=10.0,
        min_mw=-10.0, ramp_rate_mw_per_min=600.0, efficiency=1.0, modbus=ModbusAddress(1, 1),
    )  # fmt: skip
    fleet = make_fleet(spec)
    fleet.dispatch(req(10.0))
    assert fleet.advance(1)[0].status == Status.DISCHARGING
    snap = fleet.advance(600)[0]
    assert snap.soc_mwhr == 0.0 and snap.current_mw == 0.0
    assert snap.alarm_names == ("soc_low",) and snap.status == Status.IDLE
    fleet.dispatch(req(-10.0))
    snap = fleet.advance(1)[0]
    assert snap.status == Status.CHARGING and snap.alarms == 0


def test_history_buffer_bounded_newest_first_and_ranges() -> None:
    fleet = make_fleet()
    hist = HistoryBuffer(["a1"], size=5)
    for _ in range(8):
        hist.publish(fleet.advance(1))
    rows = hist.query(HistoryQuery("a1", limit=100))
    assert [r.sim_time_s for r in rows] == [8, 7, 6, 5, 4]
    ranged = hist.query(
        HistoryQuery("a1", start=T0 + timedelta(seconds=5), end=T0 + timedelta(seconds=7))
    )
    assert [r.sim_time_s for r in ranged] == [7, 6, 5]
    assert [r.sim_time_s for r in hist.query(HistoryQuery("a1", limit=2))] == [8, 7]


def test_importing_sim_loads_no_io_libraries() -> None:
    code = (
        "import sys, bess_sim.sim, bess_sim.sim.fleet, bess_sim.sim.physics;"
        "bad = [m for m in ('pymodbus', 'fastapi', 'asyncpg', 'asyncio', 'uvicorn', 'starlette')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_history_buffer_partial_publish_marks_absent_assets() -> None:
    fleet = two_asset_fleet()
    hist = HistoryBuffer(["a1", "b1"], size=10)
    fleet.dispatch(req(10.0))
    full = fleet.advance(1)  # the tick's own list: fast path
    hist.publish(full)
    later = fleet.advance(1)
    hist.publish([later[1]])  # only b1: a1 is absent from this frame
    hist.publish([later[0]])  # a1 of the same tick, published on its own
    a_rows = hist.query(HistoryQuery("a1"))
    assert [r.sim_time_s for r in a_rows] == [2, 1]
    assert a_rows[0] == later[0] and a_rows[1] == full[0]
    assert [r.sim_time_s for r in hist.query(HistoryQuery("b1"))] == [2, 1]
    assert hist.query(HistoryQuery("nope")) == []


def test_history_keeps_one_frame_per_tick_published_in_parts() -> None:
    """The scale-out headend gets each tick in several messages (per agent, per part): they
    fill one frame, so a ring of ``size`` frames still holds ``size`` ticks of every asset."""
    fleet = two_asset_fleet()
    hist = HistoryBuffer(["a1", "b1"], size=3)
    fleet.dispatch(req(10.0))
    ticks = []
    for _ in range(4):
        snaps = fleet.advance(1)
        ticks.append(snaps)
        hist.publish([snaps[0]])  # one message per asset, as two agents would send
        hist.publish([snaps[1]])
    assert len(hist._frames) == 3
    for i, aid in enumerate(("a1", "b1")):
        rows = hist.query(HistoryQuery(aid))
        assert [r.sim_time_s for r in rows] == [4, 3, 2]
        assert rows == [t[i] for t in reversed(ticks[1:])]


def test_history_columns_filled_in_slices_keep_every_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tick's own list is stored column by column in slices (GIL switch points for the
    tick thread): with one snapshot per slice every row still reads back exactly."""
    from bess_sim.sim import history

    monkeypatch.setattr(history, "_SLICE", 1)
    fleet = two_asset_fleet()
    hist = HistoryBuffer(["a1", "b1"], size=10)
    fleet.dispatch(req(10.0))
    ticks = [fleet.advance(1) for _ in range(3)]
    for snaps in ticks:
        hist.publish(snaps)
    assert hist.query(HistoryQuery("a1")) == [t[0] for t in reversed(ticks)]
    assert hist.query(HistoryQuery("b1")) == [t[1] for t in reversed(ticks)]


def test_held_notifications_reach_listeners_in_order_on_release() -> None:
    """The runtime holds listener calls while a tick computes in its worker thread and
    releases them on the event loop (runtime.tick_off_loop)."""
    fleet = make_fleet()
    seen: list[tuple[str, DispatchStatus]] = []
    fleet.add_dispatch_listener(lambda r: seen.append((r.id, r.status)))
    rec = fleet.dispatch(req(10.0, duration_s=5.0))
    assert seen == [(rec.id, DispatchStatus.ACCEPTED)]
    fleet.hold_notifications()
    fleet.advance(10.0)  # the dispatch completes inside this tick
    assert fleet.dispatch_record(rec.id).status is DispatchStatus.COMPLETED  # type: ignore[union-attr]
    assert len(seen) == 1  # not yet told
    fleet.release_notifications()
    assert seen == [(rec.id, DispatchStatus.ACCEPTED), (rec.id, DispatchStatus.COMPLETED)]
    second = fleet.dispatch(req(5.0))
    assert seen[-1] == (second.id, DispatchStatus.ACCEPTED)  # direct again
