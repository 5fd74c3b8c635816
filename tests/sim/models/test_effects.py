"""One test per effect with numbers computed by hand (DESIGN §10)."""

from __future__ import annotations

import math

import pytest

from bess_sim.sim.models import AssetModel, GridState
from bess_sim.sim.models.curve import Curve
from bess_sim.sim.models.efficiency import efficiency_at, loss_mwhr
from bess_sim.sim.models.frequency import droop_mw
from bess_sim.sim.models.reactive import headroom, q_target
from bess_sim.sim.models.taper import taper_factor
from bess_sim.sim.models.thermal import derate_factor, step_temperature

from .helpers import CURVE, DROOP, REACTIVE, THERMAL, params, spec

GRID = GridState(50.0)


def test_curve_is_linear_between_points_and_flat_outside() -> None:
    c = Curve.of(((10.0, 1.0), (20.0, 3.0)))
    assert (c(0.0), c(10.0), c(15.0), c(20.0), c(99.0)) == (1.0, 1.0, 2.0, 3.0, 3.0)


def test_efficiency_curve_of_power_pct() -> None:
    # 2.5 MW of a 5 MW rating = 50 % → 0.92; 0.25 MW = 5 % → halfway 0.80..0.88
    assert efficiency_at(CURVE, 0.5, 2.5, 5.0) == 0.92
    assert efficiency_at(CURVE, 0.5, -0.25, 5.0) == pytest.approx(0.84)
    assert efficiency_at(None, 0.95, 3.0, 5.0) == 0.95
    assert loss_mwhr(0.9, 0.0, 0.9) == pytest.approx(0.1)
    assert loss_mwhr(0.0, 1.0, 0.9) == pytest.approx(0.1)


def test_taper() -> None:
    c = Curve.of(((80.0, 100.0), (95.0, 20.0)))
    assert taper_factor(c, 50.0) == 1.0
    assert taper_factor(c, 87.5) == pytest.approx(0.6)
    assert taper_factor(None, 99.0) == 1.0


def test_droop_by_hand() -> None:
    # 49.8 Hz, 4 % droop on 50 Hz, rating 5 MW: ΔP = 0.2 / (0.04·50) · 5 = +0.5 MW (discharge)
    assert droop_mw(DROOP, 49.8, 5.0) == pytest.approx(0.5)
    assert droop_mw(DROOP, 50.2, 5.0) == pytest.approx(-0.5)
    db = DROOP.__class__("droop", 50.0, 0.05, 4.0, 5.0)
    assert droop_mw(db, 50.04, 5.0) == 0.0  # inside the deadband
    assert droop_mw(db, 49.75, 5.0) == pytest.approx(0.5)  # (0.25 − 0.05) / 2 · 5
    assert droop_mw(DROOP, 45.0, 5.0) == 5.0  # clamped to max_mw
    assert droop_mw(None, 45.0, 5.0) == 0.0


def test_thermal_closed_form_and_derate() -> None:
    # No loss, 35 °C in 25 °C ambient, τ = R·C = 50·20 = 1000 s
    t = step_temperature(THERMAL, 35.0, 25.0, 0.0, 100.0)
    assert t == pytest.approx(25.0 + 10.0 * math.exp(-0.1))
    # steady state with 0.5 MW of loss: 25 + 50·0.5 = 50 °C
    assert step_temperature(THERMAL, 25.0, 25.0, 0.5, 1e9) == pytest.approx(50.0)
    assert derate_factor(THERMAL, 40.0) == 1.0
    assert derate_factor(THERMAL, 45.0) == 0.5
    assert derate_factor(THERMAL, 51.0) == 0.0


def test_reactive_limits() -> None:
    assert q_target(REACTIVE, 4.0) == 3.0
    assert headroom(5.0, 3.0) == pytest.approx(4.0)


def test_model_without_state_effects_is_one_exact_step() -> None:
    # Only reactive (S_max above the rating): the §3 closed form, seed example unchanged.
    p = params(reactive=REACTIVE.__class__(60.0, -10.0, 10.0, "p"))
    m = AssetModel(
        spec(p, capacity_mwhr=100, max_mw=50, min_mw=-50, ramp_rate_mw_per_min=10,
             efficiency=0.95),
        p,
    )  # fmt: skip
    assert m.exact
    r = m.step(50.0, 0.0, 0.0, None, 20.0, 0.0, GRID, False, 60.0)
    assert r.current_mw == 10.0
    assert 50.0 - r.soc_mwhr == pytest.approx(0.0877192982, abs=1e-9)


def test_q_ramps_at_the_mw_rate_and_p_priority_circle() -> None:
    p = params(reactive=REACTIVE)
    m = AssetModel(spec(p), p)  # ramp 1 MW/s → 1 MVAr/s
    r = m.step(5.0, 0.0, 0.0, None, 0.0, 2.0, GRID, False, 1.0)
    assert r.current_mvar == pytest.approx(1.0)
    # P priority at 5 MW: Q ≤ sqrt(5.5² − 5²) = 2.2913
    r = m.step(5.0, 5.0, 0.0, None, 5.0, 3.0, GRID, False, 10.0)
    assert r.current_mvar == pytest.approx(math.sqrt(5.5**2 - 25.0))


def test_q_priority_curtails_p() -> None:
    rq = REACTIVE.__class__(5.5, -3.0, 3.0, "q")
    p = params(reactive=rq)
    m = AssetModel(spec(p), p)
    r = m.step(5.0, 5.0, 3.0, None, 5.0, 3.0, GRID, False, 5.0)
    assert r.current_mw == pytest.approx(math.sqrt(5.5**2 - 9.0))
    assert m.available(5.0, None, False, 0.0, 3.0)[0] == pytest.approx(math.sqrt(5.5**2 - 9.0))


def test_self_discharge_by_hand_and_floor() -> None:
    p = params(self_discharge_pct_per_day=1.0)
    m = AssetModel(spec(p, soc_min_pct=10), p)
    r = m.step(5.0, 0.0, 0.0, None, 0.0, 0.0, GRID, False, 86_400.0)
    assert r.soc_mwhr == pytest.approx(5.0 - 0.1)  # 1 % of 10 MWh per day
    r = m.step(1.01, 0.0, 0.0, None, 0.0, 0.0, GRID, False, 86_400.0)
    assert r.soc_mwhr == pytest.approx(1.0)  # never below soc_min (10 % = 1 MWh)


def test_discharge_taper_limits_available_and_target() -> None:
    c = Curve.of(((10.0, 0.0), (30.0, 100.0)))
    p = params(discharge_taper=c)
    m = AssetModel(spec(p), p)
    assert m.available(2.0, None, False) == (pytest.approx(2.5), -5.0)  # 20 % SOC → 50 %
    assert m.target(2.0, None, 5.0, 50.0, False, 0.0, 0.0) == pytest.approx(2.5)


def test_over_temperature_trips() -> None:
    hot = THERMAL.__class__(25.0, 54.9, 1.0, 50.0, 40.0, 50.0, 55.0)
    p = params(thermal=hot)
    m = AssetModel(spec(p), p)
    # derated to 0 above 50 °C: no power, but 54.9 → ambient; no trip
    r = m.step(5.0, 0.0, 0.0, 54.9, 5.0, 0.0, GRID, False, 1.0)
    assert not r.over_temperature and r.temperature_c is not None and r.temperature_c < 54.9
    # an ambient above trip_c heats it to the trip
    r = m.step(5.0, 0.0, 0.0, 54.9, 0.0, 0.0, GridState(50.0, 80.0), False, 60.0)
    assert r.over_temperature
