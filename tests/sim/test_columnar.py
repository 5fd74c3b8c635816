"""The columnar §10 step (sim/columnar.py, sim/batch.py) against the per-asset reference path:
the same random fleets and command sequences through both, every snapshot field and every
dispatch record compared for exact equality."""

from __future__ import annotations

import gc
import itertools
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bess_sim.config import parse_assets
from bess_sim.sim import DispatchRequest, DispatchSource, Fleet, batch
from bess_sim.sim.device_fault import DeviceFault

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "11111111-1111-4111-8111-111111111111"
NO_BATCH = 10**9


def _asset_id(i: int) -> str:
    return f"aaaaaaaa-0000-4000-8000-{i:012d}"


def _curve(draw: Any, lo: float, hi: float, y_lo: float, y_hi: float) -> list[list[float]]:
    n = draw(st.integers(2, 4))
    xs = sorted(draw(st.sets(st.integers(int(lo), int(hi)), min_size=n, max_size=n)))
    return [[float(x), draw(st.floats(y_lo, y_hi))] for x in xs]


@st.composite
def v2_fields(draw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["efficiency_curve"] = _curve(draw, 0, 100, 0.7, 0.99)
    if draw(st.booleans()):
        out["self_discharge_pct_per_day"] = draw(st.floats(0.0, 50.0))
    if draw(st.booleans()):
        out["charge_taper"] = _curve(draw, 50, 100, 0.0, 100.0)
    if draw(st.booleans()):
        out["discharge_taper"] = _curve(draw, 0, 50, 0.0, 100.0)
    if draw(st.booleans()):
        start = draw(st.floats(26.0, 40.0))
        out["thermal"] = {
            "ambient_c": 25.0,
            "initial_c": draw(st.floats(20.0, start)),
            "heat_capacity_mj_per_k": draw(st.floats(0.05, 5.0)),
            "resistance_k_per_mw": draw(st.floats(1.0, 200.0)),
            "derate_start_c": start,
            "derate_end_c": start + draw(st.floats(1.0, 20.0)),
            "trip_c": start + draw(st.floats(1.0, 30.0)),
        }
    if draw(st.booleans()):
        s_max = draw(st.floats(2.0, 8.0))
        out["reactive"] = {
            "s_max_mva": s_max,
            "q_min_mvar": -draw(st.floats(0.0, s_max)),
            "q_max_mvar": draw(st.floats(0.0, s_max)),
            "priority": draw(st.sampled_from(["p", "q"])),
        }
    if draw(st.booleans()):
        out["frequency_response"] = {
            "mode": "droop",
            "nominal_hz": 50,
            "deadband_hz": draw(st.floats(0.0, 0.1)),
            "droop_pct": draw(st.floats(1.0, 10.0)),
            "max_mw": draw(st.floats(0.5, 5.0)),
        }
    return out


def _config(models: list[dict[str, Any]], socs: list[float]) -> Any:
    assets = [
        {"id": _asset_id(i), "site_id": SITE, "name": f"A{i}", "capacity_mwhr": 10,
         "max_mw": 5, "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9,
         "initial_soc_pct": soc, "soc_min_pct": 5, "soc_max_pct": 95,
         "watchdog_timeout_s": 3, **m}
        for i, (m, soc) in enumerate(zip(models, socs, strict=True))
    ]  # fmt: skip
    return parse_assets({"sites": [{"id": SITE, "name": "S"}], "assets": assets}, "t.yaml")


def _fleet(config: Any, batch_min_assets: int) -> Fleet:
    ids = (f"d{i}" for i in itertools.count())
    return Fleet(config, T0, id_factory=lambda: next(ids), batch_min_assets=batch_min_assets)


op = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 1.0, 1.0, 1.0, 2.5, 60.0])),
    st.tuples(
        st.just("dispatch"),
        st.integers(0, 5),
        st.floats(-6.0, 6.0),
        st.one_of(st.none(), st.floats(-4.0, 4.0)),
        st.one_of(st.none(), st.floats(0.5, 30.0)),
        st.booleans(),
    ),
    st.tuples(st.just("grid"), st.floats(49.0, 51.0), st.one_of(st.none(), st.floats(0, 45))),
    st.tuples(st.just("trip"), st.integers(0, 5)),
    st.tuples(st.just("reset"), st.integers(0, 5)),
    st.tuples(st.just("heartbeat"), st.integers(0, 5), st.integers(0, 3)),
    st.tuples(st.just("fault"), st.integers(0, 5), st.booleans()),
)


def _apply(f: Fleet, step: tuple[Any, ...], n: int) -> list[Any]:
    kind = step[0]
    if kind == "advance":
        return list(f.advance(step[1]))
    aid = _asset_id(step[1] % n) if kind != "grid" else ""
    if kind == "dispatch":
        _, _, mw, mvar, duration, modbus = step
        src = DispatchSource.MODBUS if modbus else DispatchSource.REST
        return [f.dispatch(DispatchRequest(aid, mw, duration, source=src, mvar=mvar))]
    if kind == "grid":
        f.set_grid(frequency_hz=step[1], ambient_c=step[2])
    elif kind == "trip":
        f.trip(aid)
    elif kind == "reset":
        f.reset_fault(aid)
    elif kind == "heartbeat":
        f.heartbeat(aid, step[2])
    elif kind == "fault":
        f.set_device_fault(aid, DeviceFault(discharge_pct=50.0) if step[2] else None)
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    models=st.lists(v2_fields(), min_size=1, max_size=6),
    socs=st.lists(st.floats(6.0, 94.0), min_size=6, max_size=6),
    ops=st.lists(op, min_size=1, max_size=40),
    rows_per_slice=st.sampled_from([1, 2, 1024]),
)
def test_columnar_step_equals_the_per_asset_path(
    models: list[dict[str, Any]],
    socs: list[float],
    ops: list[tuple[Any, ...]],
    rows_per_slice: int,
) -> None:
    config = _config(models, socs[: len(models)])
    ref, fast = _fleet(config, NO_BATCH), _fleet(config, 1)
    # Small slices: the gathered state is built from several numpy conversions.
    with mock.patch.object(batch, "_ROWS_PER_SLICE", rows_per_slice):
        for step in [*ops, ("advance", 1.0)]:
            expected = _apply(ref, step, len(models))
            got = _apply(fast, step, len(models))
            assert got == expected, step
    assert fast.snapshots() == ref.snapshots()
    assert fast.dispatches(limit=10_000) == ref.dispatches(limit=10_000)


def test_event_free_v2_assets_take_the_columnar_step() -> None:
    """The common case really is batched (the equality test alone could pass with none)."""
    config = _config(
        [{"thermal": {"ambient_c": 25, "initial_c": 25, "heat_capacity_mj_per_k": 1,
                      "resistance_k_per_mw": 10, "derate_start_c": 40, "derate_end_c": 50,
                      "trip_c": 60}}, {"reactive": {"s_max_mva": 6}}, {}],
        [50.0, 50.0, 50.0],
    )  # fmt: skip
    f = _fleet(config, 1)
    f.dispatch(DispatchRequest(_asset_id(0), 3.0))
    f.dispatch(DispatchRequest(_asset_id(1), -2.0, 10.0))  # ends at t = 10 s
    f.advance(1.0)
    assert f._batch.batched == 2  # the plain §3 asset takes its own path
    for _ in range(9):
        f.advance(1.0)
    assert f._batch.batched == 1  # asset 1's dispatch ends inside this tick: per-asset path
    f.trip(_asset_id(0))
    f.advance(1.0)
    assert f._batch.batched == 1


def test_tick_snapshots_are_not_tracked_by_the_cyclic_gc() -> None:
    """Both paths hand out untracked snapshots (sim/untrack.py: a tracked one per asset per
    tick made generation-1 collections of milliseconds in the tick thread)."""
    config = _config(
        [{"reactive": {"s_max_mva": 6}}, {"reactive": {"s_max_mva": 6}}, {}], [50.0] * 3
    )
    f = _fleet(config, 1)
    f.dispatch(DispatchRequest(_asset_id(0), 3.0))
    snaps = f.advance(1.0)
    assert f._batch.batched == 2  # assets 0 and 1 took the columnar step, asset 2 its own
    assert len(snaps) == 3
    assert [gc.is_tracked(s) for s in snaps] == [False, False, False]
    # Per object, not per type: a derived snapshot (``_replace``) is tracked as usual.
    assert gc.is_tracked(snaps[0]._replace(current_mw=1.0))
