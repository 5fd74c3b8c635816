"""How 704 writes combine into one dispatch (sunspec/control.py), and what a reactive asset
serves: scale factors from S_max, the reactive points implemented and listed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bess_sim.sim import AssetSpec
from bess_sim.sim.models.params import ModelParams, ReactiveParams
from bess_sim.sunspec import SunSpecDevice
from bess_sim.sunspec.control import ControlState, Plan, echo, plan
from bess_sim.sunspec.live import scales_for
from bess_sim.sunspec.points import sunspec_rows
from bess_sim.sunspec.writes import SunSpecWrite, SunSpecWriteError, decode_write
from tests.sim.models.helpers import spec as model_spec


def make_spec() -> AssetSpec:
    return model_spec(capacity_mwhr=100.0, max_mw=50.0, min_mw=-50.0)


def _reactive(spec: AssetSpec, s_max: float = 80.0, priority: str = "q") -> AssetSpec:
    params = ReactiveParams(s_max, -s_max, s_max, priority)
    model = spec.model or ModelParams()
    return replace(spec, model=replace(model, reactive=params))


def _plan(state: ControlState, w: SunSpecWrite, mw: float = 0.0, mvar: float = 0.0) -> Plan:
    out = plan(state, w, make_spec(), mw, mvar)
    assert isinstance(out, Plan)
    return out


def test_wset_while_enabled_dispatches_and_keeps_q() -> None:
    p = _plan(ControlState(wset_ena=1), SunSpecWrite(wset_w=-3e6), mw=1.0, mvar=2.0)
    assert (p.mw, p.mvar) == (-3.0, None)  # None: the reactive setpoint in effect stays


def test_varset_alone_keeps_p() -> None:
    p = _plan(ControlState(varset_ena=1), SunSpecWrite(varset_var=-2.5e6), mw=4.0)
    assert (p.mw, p.mvar) == (None, -2.5)


def test_staged_values_apply_on_enable_and_disable_releases() -> None:
    s = _plan(ControlState(), SunSpecWrite(wset_w=5e6, varset_var=1e6))
    assert not s.dispatches and (s.state.pending_w, s.state.pending_var) == (5e6, 1e6)
    assert echo(s.state, 0.0, 0.0, 0.0, 0).wset_w == 5e6  # reads back the staged value
    on = _plan(s.state, SunSpecWrite(wset_ena=1, varset_ena=1))
    assert (on.mw, on.mvar) == (5.0, 1.0)  # both in one dispatch
    assert on.state.pending_w is None and on.state.pending_var is None
    off = _plan(on.state, SunSpecWrite(varset_ena=0), mw=5.0, mvar=1.0)
    assert (off.mw, off.mvar) == (None, 0.0)
    assert not _plan(off.state, SunSpecWrite(varset_ena=0), mw=5.0).dispatches  # already 0


def test_wset_ena_0_releases_a_setpoint_it_did_not_set() -> None:
    p = _plan(ControlState(), SunSpecWrite(wset_ena=0), mw=7.0, mvar=1.0)
    assert (p.mw, p.mvar) == (0.0, None)


def test_wset_pct_is_percent_of_wmax_and_needs_its_mode() -> None:
    spec = make_spec()  # max_mw 50
    pct = plan(ControlState(wset_ena=1), SunSpecWrite(wset_mod=0, wset_pct=-40.0), spec, 0, 0)
    assert isinstance(pct, Plan) and pct.mw == pytest.approx(-20.0) and pct.state.wset_mod == 0
    wrong = plan(pct.state, SunSpecWrite(wset_w=1e6), spec, -20.0, 0.0)
    assert isinstance(wrong, SunSpecWriteError) and wrong.code == 0x03
    wrong = plan(ControlState(), SunSpecWrite(wset_pct=10.0), spec, 0.0, 0.0)
    assert isinstance(wrong, SunSpecWriteError) and "WSetMod" in wrong.reason


def test_reactive_asset_scales_from_s_max() -> None:
    spec = _reactive(make_spec(), s_max=80.0)  # 50 MW, 80 MVA
    sc = scales_for(spec)
    assert sc.w == 4 and sc.va == 4  # 80e6 / 10^4 = 8000 ≤ 32767
    assert scales_for(_reactive(make_spec(), s_max=400.0)).va == 5  # 40000 > 32767 at 10^4
    dev = SunSpecDevice(spec)
    assert dev.scale_exponent(701, "Var") == sc.va and dev.scale_exponent(704, "VarSet") == 0


def test_reactive_points_listed_as_implemented_only_with_reactive() -> None:
    plain = {r["name"]: r for r in sunspec_rows(make_spec())}
    rows = {r["name"]: r for r in sunspec_rows(_reactive(make_spec()))}
    for name in ("704.VarSetEna", "704.VarSetMod", "704.VarSetPri", "704.VarSet", "702.VAMaxRtg"):
        assert "not implemented" in plain[name]["description"]
        assert "not implemented" not in rows[name]["description"]
    assert "not implemented" not in plain["704.WSetPct"]["description"]


def test_varset_pri_must_match_the_configured_priority() -> None:
    dev = SunSpecDevice(_reactive(make_spec(), priority="q"))
    address = dev.layout.point(704, "VarSetPri").address
    assert decode_write(dev, address, [1]) == SunSpecWrite()  # REACTIVE = q: accepted, no-op
    refused = decode_write(dev, address, [0])
    assert isinstance(refused, SunSpecWriteError) and refused.code == 0x03
