"""The SunSpec layout against pysunspec2's own model definitions, scale factors, encodings."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from sunspec2 import device as ss_device

from bess_sim.config import default_fleet
from bess_sim.sunspec import BASE_ADDRESS, MODEL_IDS, SunSpecDevice, load_layout
from bess_sim.sunspec import types as sstypes
from bess_sim.sunspec.image import _put as put
from bess_sim.sunspec.live import scales_for


def test_model_lengths_and_offsets_match_pysunspec2() -> None:
    lay = load_layout()
    assert [m.model_id for m in lay.models] == list(MODEL_IDS)
    assert lay.models[0].address == BASE_ADDRESS + 2
    for block in lay.models:
        model = ss_device.Model(block.model_id)  # pysunspec2's own layout of the definition
        assert model.len == block.length + 2  # pysunspec2 counts ID and L
        for name in ("ID", "L"):
            assert (
                lay.point(block.model_id, name).address - block.address == model.points[name].offset
            )
        for name, point in model.points.items():
            assert lay.point(block.model_id, name).address - block.address == point.offset
    assert lay.end_address == lay.models[-1].end


def test_image_starts_with_suns_and_ends_with_the_end_model() -> None:
    spec = default_fleet().assets[0]
    dev = SunSpecDevice(spec)
    static = dev._static
    assert static[0:2] == [0x5375, 0x6E53]
    assert static[2:4] == [1, 66]
    assert static[-2:] == [0xFFFF, 0]


@given(
    max_mw=st.floats(0, 5000, allow_nan=False),
    min_mw=st.floats(-5000, 0, allow_nan=False),
    capacity=st.floats(0.001, 50_000, allow_nan=False),
)
def test_scale_factors_fit_ratings_into_16_bits(
    max_mw: float, min_mw: float, capacity: float
) -> None:
    spec = dataclasses.replace(
        default_fleet().assets[0], max_mw=max_mw, min_mw=min_mw, capacity_mwhr=capacity
    )
    sc = scales_for(spec)
    rating = max(max_mw, -min_mw) * 1e6
    assert rating / 10.0**sc.w <= 32767
    assert sc.w == 0 or rating / 10.0 ** (sc.w - 1) > 32767  # the finest that fits
    assert capacity * 1e6 / 10.0**sc.wh <= 0xFFFE
    assert rating / 10.0**sc.wset <= 0x7FFF_FFFF
    if max_mw > 0 and max_mw >= -min_mw:  # WSetPct: ±100 % of WMax in 0.01 % steps
        assert sc.wset_pct == -2
    elif max_mw > 0 and -min_mw / max_mw <= 1e4:  # the full-charge percentage fits int16
        assert 100 * -min_mw / max_mw / 10.0**sc.wset_pct <= 32767


def test_not_implemented_encodings() -> None:
    assert sstypes.encode("int16", 1, None) == [0x8000]
    assert sstypes.encode("uint16", 1, None) == [0xFFFF]
    assert sstypes.encode("acc64", 4, None) == [0, 0, 0, 0]
    assert sstypes.encode("uint32", 2, None) == [0xFFFF, 0xFFFF]
    assert sstypes.encode("int32", 2, None) == [0x8000, 0]
    assert sstypes.encode("string", 2, None) == [0, 0]
    # saturation never produces the not-implemented value
    assert sstypes.encode("int16", 1, -1e9) == [0x8001]
    assert sstypes.encode("uint16", 1, 1e9) == [0xFFFE]
    assert sstypes.decode("int16", [0x8000]) is None
    assert sstypes.decode("int32", sstypes.encode("int32", 2, -5_000_000)) == -5_000_000


@given(
    mw=st.floats(-1e4, 1e4, allow_nan=False),
    soc=st.floats(0, 100),
    status=st.integers(0, 3),
    alarms=st.integers(0, 63),
    sim_s=st.floats(0, 1e9),
    wset=st.floats(-1e10, 1e10),
)
def test_packed_live_points_equal_point_by_point_encoding(
    mw: float, soc: float, status: int, alarms: int, sim_s: float, wset: float
) -> None:
    from datetime import UTC, datetime

    from bess_sim.sim import Fleet
    from bess_sim.sunspec.live import ControlEcho, live_values

    config = default_fleet()
    spec = config.assets[2]
    dev = SunSpecDevice(spec)
    snap = Fleet(config, datetime(2026, 1, 1, tzinfo=UTC)).snapshot(spec.id)._replace(
        sim_time_s=sim_s, soc_mwhr=soc * spec.capacity_mwhr / 100, soc_pct=soc,
        current_mw=mw, setpoint_mw=mw, status=status, alarms=alarms,
    )  # fmt: skip
    ctl = ControlEcho(1, wset, 30.0, 9)
    packed = dev.registers(snap, ctl)
    slow = dev._static.copy()
    for key, value in live_values(spec, snap, ctl).items():
        put(slow, dev._slot(key), value)
    assert packed == slow


def test_devices_of_one_rating_share_a_template_and_build_the_same_image() -> None:
    """The shared template (10 s of a 10,000-asset start-up when built per asset) gives the
    same image as a device built on its own layout object (not shared)."""
    config = default_fleet()
    spec = config.assets[2]
    twin = dataclasses.replace(spec, id="00000000-0000-4000-8000-000000000099", name="TWIN")
    a, b = SunSpecDevice(spec), SunSpecDevice(twin)
    assert a._slots is b._slots and a.points is b.points
    own = SunSpecDevice(spec, dataclasses.replace(load_layout()))
    assert own._slots is not a._slots
    assert own._static == a._static
    assert own._slots == a._slots
    for other in config.assets:
        if other.modbus.profile.value != "native":
            fresh = SunSpecDevice(other, dataclasses.replace(load_layout()))
            assert SunSpecDevice(other)._static == fresh._static, other.name
