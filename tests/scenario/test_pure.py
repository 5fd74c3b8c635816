"""Pure parts: expectation operators and the scorecard's energy arithmetic."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bess_sim.scenario.expect import holds
from bess_sim.scenario.plan import Expectation
from bess_sim.scenario.scorecard import ScorecardRecorder, energy_split
from bess_sim.sim import DispatchRecord, DispatchSource, DispatchStatus
from tests.scenario.helpers import example_fleet

mw = st.floats(-100, 100, allow_nan=False)


def exp(op: str, value: float | str, high: float | None = None, tol: float = 0.0) -> Expectation:
    return Expectation(0, "e", "*", ("a",), "current_mw", op, value, high, tol, 0.0, 0.0)


def test_operators_with_tolerance() -> None:
    assert holds(exp("<", 5), 4.9) and not holds(exp("<", 5), 5.0)
    assert holds(exp("<", 5, tol=0.1), 5.05)
    assert holds(exp("<=", 5), 5.0) and not holds(exp("<=", 5), 5.1)
    assert holds(exp("==", 5, tol=0.1), 5.1) and not holds(exp("==", 5, tol=0.1), 5.2)
    assert holds(exp(">=", 5), 5.0) and not holds(exp(">=", 5), 4.99)
    assert holds(exp(">", 5), 5.01) and not holds(exp(">", 5), 5.0)
    assert holds(exp("between", 1, 2), 1.5) and not holds(exp("between", 1, 2), 2.5)
    assert holds(exp("==", "fault"), "fault") and not holds(exp("==", "fault"), "idle")
    assert not holds(exp("<", 5), float("nan"))
    assert not holds(exp("<", 5), None)


@given(mw, mw, st.floats(0.001, 3600))
def test_energy_split_matches_the_area_under_a_linear_ramp(
    mw0: float, mw1: float, dt_s: float
) -> None:
    dis, chg = energy_split(mw0, mw1, dt_s)
    assert dis >= 0 and chg >= 0
    # Net energy = trapezoid, whatever the split.
    net = (mw0 + mw1) / 2 * dt_s / 3600
    assert abs((dis - chg) - net) <= 1e-9 * max(1.0, abs(mw0) + abs(mw1)) * dt_s
    # Fine Riemann sum of |P|⁺ and |P|⁻ agrees with the exact split.
    n = 2000
    ref_dis = ref_chg = 0.0
    for i in range(n):
        p = mw0 + (mw1 - mw0) * (i + 0.5) / n
        e = p * dt_s / 3600 / n
        if e > 0:
            ref_dis += e
        else:
            ref_chg -= e
    bound = (abs(mw0) + abs(mw1)) * dt_s / 3600 / n + 1e-12
    assert abs(dis - ref_dis) <= bound and abs(chg - ref_chg) <= bound


def test_commands_before_the_start_and_repeats_are_not_counted() -> None:
    fleet = example_fleet()
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    rec = ScorecardRecorder(fleet.assets, origin)
    a = fleet.assets[2].id

    def record(i: str, at_s: float, status: DispatchStatus) -> DispatchRecord:
        return DispatchRecord(i, a, 1.0, None, status, None, DispatchSource.MODBUS, "c",
                              origin + timedelta(seconds=at_s), None)  # fmt: skip

    rec.on_dispatch(record("old", -5, DispatchStatus.ACCEPTED))
    rec.on_dispatch(record("new", 3, DispatchStatus.ACCEPTED))
    rec.on_dispatch(record("new", 3, DispatchStatus.ACCEPTED))
    rec.on_dispatch(record("new", 3, DispatchStatus.SUPERSEDED))
    rec.on_dispatch(record("old", -5, DispatchStatus.REVERTED))
    assert rec.figure("ems_commands", a) == 1
    assert rec.figure("watchdog_reverts", None) == 1
    rec.active = False
    rec.on_dispatch(record("late", 9, DispatchStatus.ACCEPTED))
    assert rec.figure("ems_commands", None) == 1


def test_pure_parts_load_no_server_libraries() -> None:
    code = (
        "import sys, bess_sim.scenario.model, bess_sim.scenario.plan, "
        "bess_sim.scenario.expect, bess_sim.scenario.scorecard; "
        "print(sorted(m for m in ('pymodbus', 'fastapi', 'asyncpg', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@given(
    st.lists(st.tuples(st.floats(0, 50), st.integers(1, 40)), min_size=1, max_size=6),
    st.sampled_from([0.5, 1.0, 4.0]),
)
def test_discharged_energy_matches_the_soc_the_physics_removed(
    plan: list[tuple[float, int]], dt_s: float
) -> None:
    """§3.3 with a constant efficiency: discharged energy E removes E / η from SOC, so the
    scorecard's energy must equal ΔSOC × η up to the trapezoid's error where a ramp lands
    inside a tick (≤ ½ × |ΔP| × dt per landing)."""
    from bess_sim.sim import DispatchRequest, Fleet

    cfg = example_fleet()
    spec = cfg.assets[2]  # PLAIN-1: 10 MW, 120 MW/min, η 0.95, 20 MWh at 50 %
    fleet = Fleet(cfg, datetime(2026, 1, 1, tzinfo=UTC))
    rec = ScorecardRecorder(cfg.assets, fleet.now, fleet.snapshot)
    rec.on_snapshots(fleet.snapshots())
    soc0 = fleet.snapshot(spec.id).soc_mwhr
    bound = 0.0
    for mw, ticks in plan:
        mw = min(mw, spec.max_mw) / 5  # ≤ 2 MW for ≤ 160 s: far from soc_min
        bound += abs(mw - fleet.snapshot(spec.id).current_mw) / 2 * dt_s / 3600
        fleet.dispatch(DispatchRequest(asset_id=spec.id, mw=mw))
        for _ in range(ticks):
            rec.on_snapshots(fleet.advance(dt_s))
    got = rec.figure("energy_discharged_mwh", spec.id)
    from_soc = (soc0 - fleet.snapshot(spec.id).soc_mwhr) * spec.efficiency
    assert rec.figure("energy_charged_mwh", spec.id) == 0.0
    assert abs(got - from_soc) <= bound + 1e-9
    total_ticks = sum(t for _, t in plan)
    assert rec.figure("seconds_at_soc_min", None) == 0.0
    assert rec.figure("equivalent_full_cycles", spec.id) == got / (2 * spec.capacity_mwhr)
    assert total_ticks * dt_s == fleet.sim_time_s
