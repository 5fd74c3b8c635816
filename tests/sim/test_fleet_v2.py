"""Fleet with the DESIGN §10 model: seed example unchanged, grid state, trips, mvar dispatch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bess_sim.config import parse_assets
from bess_sim.sim import DispatchRequest, DispatchStatus, Fleet

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "11111111-1111-4111-8111-111111111111"
PLAIN = "aaaaaaaa-0000-4000-8000-000000000001"
V2 = "aaaaaaaa-0000-4000-8000-000000000002"


def fleet(**v2: object) -> Fleet:
    data = {
        "sites": [{"id": SITE, "name": "S"}],
        "assets": [
            {"id": PLAIN, "site_id": SITE, "name": "P", "capacity_mwhr": 100, "max_mw": 50,
             "min_mw": -50, "ramp_rate_mw_per_min": 10, "efficiency": 0.95},
            {"id": V2, "site_id": SITE, "name": "V", "capacity_mwhr": 10, "max_mw": 5,
             "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9, **v2},
        ],
    }  # fmt: skip
    return Fleet(parse_assets(data, "assets.yaml"), T0)


def test_seed_example_is_unchanged() -> None:
    f = fleet(reactive={"s_max_mva": 6})
    f.dispatch(DispatchRequest(PLAIN, 20.0))
    snap = f.advance(60.0)[0]
    assert snap.current_mw == 10.0
    assert 50.0 - snap.soc_mwhr == pytest.approx(0.0877192982, abs=1e-9)
    # §10 fields of a §3 asset: rated limits, no Q, no thermal, nominal frequency
    assert (snap.available_discharge_mw, snap.available_charge_mw) == (50.0, -50.0)
    assert (snap.current_mvar, snap.temperature_c, snap.frequency_hz) == (0.0, None, 50.0)


def test_grid_frequency_drives_droop_and_is_published() -> None:
    f = fleet(frequency_response={"nominal_hz": 50, "droop_pct": 4, "deadband_hz": 0})
    f.set_grid(frequency_hz=49.8)
    snaps = f.advance(10.0)
    assert snaps[1].current_mw == pytest.approx(0.5)  # 0.2/(0.04·50)·5 MW
    assert snaps[0].current_mw == 0.0  # no frequency_response: unaffected
    assert snaps[0].frequency_hz == snaps[1].frequency_hz == 49.8


def test_over_temperature_trip_interrupts_dispatch_and_latches() -> None:
    f = fleet(thermal={"ambient_c": 25, "initial_c": 25, "heat_capacity_mj_per_k": 0.1,
                       "resistance_k_per_mw": 100, "derate_start_c": 40, "derate_end_c": 80,
                       "trip_c": 45})  # fmt: skip
    rec = f.dispatch(DispatchRequest(V2, 5.0))
    snaps = [f.advance(1.0)[1] for _ in range(120)]
    assert any("derated" in s.alarm_names for s in snaps)
    last = f.snapshot(V2)
    assert last.status_label == "fault"
    assert {"trip", "over_temperature"} <= set(last.alarm_names)
    assert f.dispatch_record(rec.id).status is DispatchStatus.INTERRUPTED  # type: ignore[union-attr]
    assert last.available_discharge_mw == 0.0
    f.set_grid(ambient_c=0.0)
    f.advance(600.0)
    f.reset_fault(V2)
    assert "over_temperature" not in f.snapshot(V2).alarm_names


def test_mvar_dispatch_validated_and_kept() -> None:
    f = fleet(reactive={"s_max_mva": 5.5, "q_min_mvar": -3, "q_max_mvar": 3})
    bad = f.dispatch(DispatchRequest(V2, 1.0, mvar=4.0))
    assert bad.status is DispatchStatus.REJECTED and "outside [-3, 3]" in (bad.reason or "")
    none = f.dispatch(DispatchRequest(PLAIN, 1.0, mvar=1.0))
    assert none.status is DispatchStatus.REJECTED and "no reactive" in (none.reason or "")
    ok = f.dispatch(DispatchRequest(V2, 1.0, mvar=-2.0))
    assert ok.status is DispatchStatus.ACCEPTED and ok.mvar == -2.0
    keep = f.dispatch(DispatchRequest(V2, 2.0))  # mvar omitted: the one in effect stays
    assert keep.mvar == -2.0
    snap = f.advance(5.0)[1]
    assert (snap.setpoint_mvar, snap.current_mvar) == (-2.0, -2.0)
    assert f.control(V2).setpoint_mvar == -2.0


def test_replace_asset_rebuilds_the_v2_model() -> None:
    """PUT /assets with new §10 fields takes effect: the model is built from the new spec."""
    from dataclasses import replace

    from bess_sim.config import parse_asset

    f = fleet()
    old = f.spec(V2)
    thermal = {"ambient_c": 30, "initial_c": 30, "heat_capacity_mj_per_k": 1,
               "resistance_k_per_mw": 10, "derate_start_c": 40, "derate_end_c": 50,
               "trip_c": 60}  # fmt: skip
    raw = {"id": V2, "site_id": SITE, "name": "V", "capacity_mwhr": 10, "max_mw": 5,
           "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9,
           "thermal": thermal, "reactive": {"s_max_mva": 6}}  # fmt: skip
    new = parse_asset(raw, "api", 1, {SITE})
    snap = f.replace_asset(replace(new, modbus=old.modbus))
    assert snap.temperature_c == 30.0
    f.dispatch(DispatchRequest(V2, 0.0, mvar=2.0))
    f.advance(10.0)
    assert f.snapshot(V2).current_mvar == pytest.approx(2.0)
    back = f.replace_asset(old)  # the §10 fields removed again
    assert back.temperature_c is None and back.current_mvar == 0.0
    f.advance(1.0)
    assert f.snapshot(V2).current_mvar == 0.0 and f.snapshot(V2).temperature_c is None
