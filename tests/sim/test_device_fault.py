"""The device-fault seam of the fleet (DESIGN §11 via §10): derate and stuck on a §3 asset and
on a §10 model asset; physics invariants still hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bess_sim.config import parse_assets
from bess_sim.sim import Alarm, DispatchRequest, Fleet
from bess_sim.sim.device_fault import DeviceFault

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "11111111-1111-4111-8111-111111111111"
PLAIN = "aaaaaaaa-0000-4000-8000-000000000001"
V2 = "aaaaaaaa-0000-4000-8000-000000000002"


def fleet() -> Fleet:
    data = {
        "sites": [{"id": SITE, "name": "S"}],
        "assets": [
            {"id": PLAIN, "site_id": SITE, "name": "P", "capacity_mwhr": 100, "max_mw": 50,
             "min_mw": -50, "ramp_rate_mw_per_min": 600, "efficiency": 0.95},
            {"id": V2, "site_id": SITE, "name": "V", "capacity_mwhr": 10, "max_mw": 5,
             "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9,
             "discharge_taper": [[0, 0], [20, 100], [100, 100]]},
        ],
    }  # fmt: skip
    return Fleet(parse_assets(data, "assets.yaml"), T0)


@pytest.mark.parametrize("asset", [PLAIN, V2])
def test_derate_caps_power_and_available_limits_and_raises_derated(asset: str) -> None:
    f = fleet()
    rated = f.spec(asset).max_mw
    f.dispatch(DispatchRequest(asset, rated))
    f.set_device_fault(asset, DeviceFault(discharge_pct=30.0, charge_pct=60.0))
    snap = f.advance(60.0)[[PLAIN, V2].index(asset)]
    assert snap.current_mw == pytest.approx(0.3 * rated)
    assert snap.available_discharge_mw == pytest.approx(0.3 * rated)
    assert snap.available_charge_mw == pytest.approx(-0.6 * rated)
    assert snap.alarms & Alarm.DERATED
    assert snap.setpoint_mw == rated  # the command stays; the device delivers what it can
    f.set_device_fault(asset, None)
    snap = f.advance(60.0)[[PLAIN, V2].index(asset)]
    assert snap.current_mw == pytest.approx(rated)
    assert not snap.alarms & Alarm.DERATED


@pytest.mark.parametrize("asset", [PLAIN, V2])
def test_stuck_holds_mw_but_energy_still_flows(asset: str) -> None:
    f = fleet()
    i = [PLAIN, V2].index(asset)
    f.dispatch(DispatchRequest(asset, 2.0))
    f.advance(60.0)
    f.set_device_fault(asset, DeviceFault(stuck=True))
    f.dispatch(DispatchRequest(asset, -4.0))
    before = f.snapshot(asset)
    after = f.advance(360.0)[i]
    assert after.current_mw == 2.0 and after.setpoint_mw == -4.0
    assert after.soc_mwhr < before.soc_mwhr  # still discharging at 2 MW
    assert after.alarms == 0  # no alarm: the EMS must notice


def test_replace_asset_keeps_the_fault() -> None:
    f = fleet()
    f.set_device_fault(PLAIN, DeviceFault(discharge_pct=50.0))
    f.replace_asset(f.spec(PLAIN))
    f.dispatch(DispatchRequest(PLAIN, 50.0))
    assert f.advance(60.0)[0].current_mw == 25.0
