"""Run-time changes of the fleet in the pure core (DESIGN §14): add, replace, remove assets
and sites between ticks; the history ring keeps each frame's own layout."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bess_sim.sim import (
    AssetSpec,
    DispatchRequest,
    DispatchStatus,
    Fleet,
    FleetConfig,
    HistoryBuffer,
    HistoryQuery,
    ModbusAddress,
    Site,
    UnknownAssetError,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = AssetSpec(
    id="a1", site_id="s1", name="A", location="", capacity_mwhr=100.0, max_mw=50.0,
    min_mw=-40.0, ramp_rate_mw_per_min=6000.0, efficiency=1.0, modbus=ModbusAddress(5020, 1),
)  # fmt: skip
B = dataclasses.replace(A, id="b1", name="B", capacity_mwhr=10.0, modbus=ModbusAddress(5021, 1))


def fleet() -> Fleet:
    return Fleet(FleetConfig((Site("s1", "S", ""),), (A,), "test"), T0)


def test_added_asset_ticks_from_the_next_tick() -> None:
    f = fleet()
    f.advance(10.0)
    snap = f.add_asset(B)
    assert snap.soc_mwhr == 5.0 and snap.timestamp == f.now
    assert [s.id for s in f.specs] == ["a1", "b1"]
    f.dispatch(DispatchRequest("b1", 6.0))
    out = f.advance(60.0)
    assert [s.asset_id for s in out] == ["a1", "b1"]
    assert out[1].current_mw == 6.0 and out[1].soc_mwhr == pytest.approx(
        5.0 - 0.1 + 0.5 * 0.06 * 6.0 / 3600
    )
    with pytest.raises(ValueError):
        f.add_asset(B)  # id taken
    with pytest.raises(ValueError):
        f.add_asset(dataclasses.replace(B, id="c1", site_id="nope"))


def test_removed_asset_ends_its_dispatch_interrupted_and_stops_ticking() -> None:
    f = fleet()
    f.add_asset(B)
    rec = f.dispatch(DispatchRequest("b1", -2.0, duration_s=600))
    f.advance(1.0)
    f.remove_asset("b1")
    ended = f.dispatch_record(rec.id)
    assert ended is not None and ended.status is DispatchStatus.INTERRUPTED
    assert [s.asset_id for s in f.advance(1.0)] == ["a1"]
    assert f.retired_spec("b1") == B and not f.has_asset("b1")
    with pytest.raises(UnknownAssetError):
        f.snapshot("b1")


def test_replace_clamps_state_and_interrupts_a_dispatch_outside_new_limits() -> None:
    f = fleet()
    f.add_asset(B)
    rec = f.dispatch(DispatchRequest("b1", 8.0))
    f.advance(1.0)
    small = dataclasses.replace(B, max_mw=5.0, capacity_mwhr=4.0)
    snap = f.replace_asset(small)
    assert snap.soc_mwhr <= 4.0 and snap.current_mw <= 5.0
    rec2 = f.dispatch_record(rec.id)
    assert rec2 is not None and rec2.status is DispatchStatus.INTERRUPTED
    kept = f.dispatch(DispatchRequest("b1", 3.0))
    f.replace_asset(dataclasses.replace(small, name="B2"))
    assert f.active_dispatch("b1") == kept and f.spec("b1").name == "B2"


def test_sites_with_assets_cannot_be_removed() -> None:
    f = fleet()
    f.add_site(Site("s2", "S2", ""))
    f.add_asset(dataclasses.replace(B, site_id="s2"))
    with pytest.raises(ValueError):
        f.remove_site("s2")
    f.remove_asset("b1")
    f.remove_site("s2")
    assert [s.id for s in f.sites] == ["s1"]


@given(
    soc_pct=st.floats(0, 100),
    cap=st.floats(0.5, 500),
    lo=st.floats(0, 49),
    hi=st.floats(51, 100),
)
def test_replace_keeps_soc_within_the_new_bounds(
    soc_pct: float, cap: float, lo: float, hi: float
) -> None:
    f = fleet()
    f.restore("a1", soc_mwhr=soc_pct, current_mw=0.0)
    new = dataclasses.replace(A, capacity_mwhr=cap, soc_min_pct=lo, soc_max_pct=hi)
    snap = f.replace_asset(new)
    assert new.soc_min_mwhr - 1e-9 <= snap.soc_mwhr <= new.soc_max_mwhr + 1e-9
    for s in f.advance(1.0):
        assert new.soc_min_mwhr - 1e-9 <= s.soc_mwhr <= new.soc_max_mwhr + 1e-9


def test_history_keeps_each_frames_layout() -> None:
    f = fleet()
    h = HistoryBuffer([a.id for a in f.specs], size=100)
    h.publish(f.advance(1.0))
    f.add_asset(B)
    h.set_assets([a.id for a in f.specs])
    f.dispatch(DispatchRequest("b1", 1.0))
    h.publish(f.advance(1.0))
    h.publish(f.advance(1.0))
    f.remove_asset("b1")
    h.set_assets([a.id for a in f.specs])
    h.publish(f.advance(1.0))
    b_rows = h.query(HistoryQuery("b1", limit=10))
    assert [r.sim_time_s for r in b_rows] == [3.0, 2.0]
    assert all(r.capacity_mwhr == 10.0 for r in b_rows)
    assert b_rows[0].current_mw == 1.0
    assert [r.sim_time_s for r in h.query(HistoryQuery("a1", limit=10))] == [4.0, 3.0, 2.0, 1.0]
