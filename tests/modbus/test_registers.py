"""Pure codec: every type x word order against hand-written registers; saturation; the table
image encoder; holding-write decoding (no server, no pymodbus)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bess_sim.modbus.points import (
    PointType,
    RegisterMap,
    Table,
    WordOrder,
    default_register_map_data,
    parse_register_map,
)
from bess_sim.modbus.registers import (
    HoldingDecoder,
    HoldingState,
    HoldingWrite,
    WriteError,
    decode_value,
    encode_value,
    holding_encoder,
    input_encoder,
)
from bess_sim.sim import Alarm, Snapshot, Status

U16, I16, U32, I32, F32 = (PointType.UINT16, PointType.INT16, PointType.UINT32, PointType.INT32,
                           PointType.FLOAT32)  # fmt: skip
BIG, LITTLE = WordOrder.BIG, WordOrder.LITTLE

# (type, scale, value, big-word-order registers) — written out by hand from the IEEE 754 /
# two's complement bit patterns, not computed with the code under test.
CASES = [
    (U16, 1.0, 1234, [0x04D2]),
    (U16, 1.0, 65535, [0xFFFF]),
    (U16, 0.01, 50.0, [0x1388]),  # 5000
    (I16, 1.0, -2, [0xFFFE]),
    (I16, 0.1, -12.34, [0xFF85]),  # -123
    (I16, 0.1, 12.36, [0x007C]),  # 123.6 rounds to 124
    (U32, 1.0, 0x12345678, [0x1234, 0x5678]),
    (U32, 1.0, 1767225600, [0x6955, 0xB900]),  # 2026-01-01T00:00:00Z
    (I32, 1.0, -2, [0xFFFF, 0xFFFE]),
    (I32, 1.0, 0x01020304, [0x0102, 0x0304]),
    (I32, 0.001, -1.5, [0xFFFF, 0xFA24]),  # -1500
    (F32, 1.0, 1.5, [0x3FC0, 0x0000]),
    (F32, 1.0, -12.25, [0xC144, 0x0000]),
    (F32, 1.0, 50.0, [0x4248, 0x0000]),
    (F32, 1.0, 123.456, [0x42F6, 0xE979]),
    (F32, 0.5, 3.0, [0x40C0, 0x0000]),  # raw 6.0
]


@pytest.mark.parametrize("order", [BIG, LITTLE])
@pytest.mark.parametrize(("ptype", "scale", "value", "regs"), CASES)
def test_encode_every_type_and_word_order(
    ptype: PointType, scale: float, value: float, regs: list[int], order: WordOrder
) -> None:
    expected = regs if order is BIG or len(regs) == 1 else [regs[1], regs[0]]
    assert encode_value(ptype, value, scale, order) == expected


@pytest.mark.parametrize("order", [BIG, LITTLE])
@pytest.mark.parametrize(("ptype", "scale", "value", "regs"), CASES)
def test_decode_every_type_and_word_order(
    ptype: PointType, scale: float, value: float, regs: list[int], order: WordOrder
) -> None:
    wire = regs if order is BIG or len(regs) == 1 else [regs[1], regs[0]]
    decoded = decode_value(ptype, wire, scale, order)
    if ptype is F32:
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == pytest.approx(value, abs=abs(scale) / 2 + 1e-12)


@pytest.mark.parametrize(
    ("ptype", "value", "regs"),
    [
        (I16, 40000, [0x7FFF]),
        (I16, -40000, [0x8000]),
        (I16, math.inf, [0x7FFF]),
        (I16, -math.inf, [0x8000]),
        (I16, math.nan, [0x0000]),
        (U16, -5, [0x0000]),
        (U16, 70000, [0xFFFF]),
        (U16, math.nan, [0x0000]),
        (U32, -1, [0x0000, 0x0000]),
        (U32, 5e9, [0xFFFF, 0xFFFF]),
        (I32, 3e9, [0x7FFF, 0xFFFF]),
        (I32, -3e9, [0x8000, 0x0000]),
        (I32, math.nan, [0x0000, 0x0000]),
        (F32, 1e39, [0x7F7F, 0xFFFF]),  # FLT_MAX
        (F32, -1e39, [0xFF7F, 0xFFFF]),
        (F32, math.inf, [0x7F80, 0x0000]),
        (F32, math.nan, [0x7FC0, 0x0000]),
    ],
)
def test_encode_saturates_and_never_raises(ptype: PointType, value: float, regs: list[int]) -> None:
    assert encode_value(ptype, value) == regs


def test_decode_needs_enough_registers() -> None:
    with pytest.raises(ValueError, match="2 registers"):
        decode_value(F32, [0x3FC0])


# --------------------------------------------------------------------------- image encoder
START = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(**overrides: Any) -> Snapshot:
    base = Snapshot(
        asset_id="a", site_id="s", timestamp=START + timedelta(seconds=2.6), sim_time_s=2.6,
        soc_mwhr=50.0, soc_pct=50.0, capacity_mwhr=100.0, current_mw=-12.34, setpoint_mw=-20.0,
        max_mw=50.0, min_mw=-50.0, status=Status.CHARGING,
        alarms=Alarm.SOC_LOW | Alarm.WATCHDOG, heartbeat=7,
    )  # fmt: skip
    return base._replace(**overrides)


def default_map() -> RegisterMap:
    return parse_register_map(default_register_map_data(), "default")


def test_model_v2_input_registers_by_hand() -> None:
    snap = snapshot(
        current_mvar=-1.5, setpoint_mvar=2.0, available_discharge_mw=3.25,
        available_charge_mw=-4.5, temperature_c=41.0, frequency_hz=49.75,
    )  # fmt: skip
    regs = input_encoder(default_map()).encode(snap)
    assert regs[22:34] == (
        0xBFC0, 0x0000,  # -1.5
        0x4000, 0x0000,  # 2.0
        0x4050, 0x0000,  # 3.25
        0xC090, 0x0000,  # -4.5
        0x4224, 0x0000,  # 41.0
        0x4247, 0x0000,  # 49.75
    )  # fmt: skip


def test_input_image_of_the_default_map_matches_hand_written_registers() -> None:
    regs = input_encoder(default_map()).encode(snapshot())
    assert regs == (
        1,  # status charging
        0b101,  # alarms soc_low | watchdog
        0x4248, 0x0000,  # soc_pct 50.0
        0x4248, 0x0000,  # soc_mwhr 50.0
        0xC145, 0x70A4,  # current_mw -12.34
        0xC1A0, 0x0000,  # setpoint_mw -20.0
        0x42C8, 0x0000,  # capacity 100.0
        0x4248, 0x0000,  # max 50.0
        0xC248, 0x0000,  # min -50.0
        5000,  # soc_pct_x100
        0xFF85,  # current_mw_x10 -123
        0x6955, 0xB902,  # timestamp 1767225602 (2.6 s floors to 2)
        7,  # heartbeat echo
        0,  # 21: gap
        0, 0,  # 22 current_mvar 0.0 (DESIGN §10)
        0, 0,  # 24 setpoint_mvar 0.0
        0, 0,  # 26 available_discharge_mw 0.0 (the Snapshot default)
        0, 0,  # 28 available_charge_mw 0.0
        0x7FC0, 0x0000,  # 30 temperature_c None -> NaN
        0x4248, 0x0000,  # 32 frequency_hz 50.0
    )  # fmt: skip


def test_image_encoder_saturates_out_of_range_snapshots() -> None:
    regs = input_encoder(default_map()).encode(
        snapshot(current_mw=math.nan, soc_pct=1e9, soc_mwhr=1e40)
    )
    assert regs[16] == 0xFFFF  # soc_pct_x100 saturated
    assert regs[17] == 0  # current_mw_x10: NaN → 0
    assert regs[4:6] == (0x7F7F, 0xFFFF)  # soc_mwhr → FLT_MAX
    assert regs[6:8] == (0x7FC0, 0x0000)  # current_mw NaN stays a float NaN


def test_image_encoder_honours_point_word_order_and_leaves_gaps_zero() -> None:
    rm = parse_register_map(
        {
            "word_order": "little",
            "points": [
                {"name": "a", "table": "input", "address": 0, "type": "float32",
                 "source": "soc_pct"},
                {"name": "b", "table": "input", "address": 4, "type": "uint32",
                 "source": "heartbeat", "word_order": "big"},
                {"name": "c", "table": "input", "address": 7, "type": "int16", "source": "min_mw"},
            ],
        },
        "test",
    )  # fmt: skip
    regs = input_encoder(rm).encode(snapshot(soc_pct=1.5, heartbeat=0x00010002))
    assert regs == (0x0000, 0x3FC0, 0, 0, 0x0001, 0x0002, 0, 0xFFCE)


def test_holding_image_echoes_command_state() -> None:
    regs = holding_encoder(default_map()).encode(
        HoldingState(setpoint_mw=-5.5, duration_s=600, heartbeat=42, watchdog_timeout_s=30)
    )
    assert regs == (0xC0B0, 0x0000, 0, 600, 42, 30, 0, 0xFFC9, 0, 0)


def test_holding_image_echoes_setpoint_mvar() -> None:
    regs = holding_encoder(default_map()).encode(
        HoldingState(setpoint_mw=0, duration_s=0, heartbeat=0, watchdog_timeout_s=0,
                     setpoint_mvar=-1.5)
    )  # fmt: skip
    assert regs[8:10] == (0xBFC0, 0x0000)


def test_write_setpoint_mvar(decoder: HoldingDecoder) -> None:
    assert decoder.decode(8, [0x4000, 0x0000]) == HoldingWrite(setpoint_mvar=2.0)


# --------------------------------------------------------------------------- holding writes
@pytest.fixture
def decoder() -> HoldingDecoder:
    return HoldingDecoder(default_map())


def test_write_float_setpoint(decoder: HoldingDecoder) -> None:
    assert decoder.decode(0, [0x4148, 0x0000]) == HoldingWrite(setpoint_mw=12.5)


def test_write_x10_setpoint_is_signed(decoder: HoldingDecoder) -> None:
    w = decoder.decode(7, [0xFFC9])
    assert isinstance(w, HoldingWrite) and w.setpoint_mw == pytest.approx(-5.5)


def test_write_whole_block(decoder: HoldingDecoder) -> None:
    w = decoder.decode(0, [0x4148, 0, 0, 900, 3, 20, 1, 125])
    assert w == HoldingWrite(setpoint_mw=12.5, duration_s=900, heartbeat=3,
                             watchdog_timeout_s=20, fault_reset=True)  # fmt: skip


@pytest.mark.parametrize(
    ("address", "regs", "code"),
    [
        (0, [0x4148], 0x02),  # first half of the float setpoint
        (1, [0x0000], 0x02),  # second half
        (1, [0, 0], 0x02),  # straddles setpoint and duration
        (3, [5], 0x02),  # low word of duration only
        (8, [1], 0x02),  # unmapped
        (6, [1, 2, 3], 0x02),  # runs past the table
        (0, [0x7FC0, 0x0000], 0x03),  # NaN
        (0, [0x7F80, 0x0000], 0x03),  # +inf
        (6, [2], 0x03),  # fault_reset only takes 1 (or 0)
        (0, [0x4148, 0, 0, 0, 0, 0, 0, 10], 0x03),  # float 12.5 vs x10 1.0 disagree
    ],
)
def test_bad_writes_name_the_exception(
    decoder: HoldingDecoder, address: int, regs: list[int], code: int
) -> None:
    result = decoder.decode(address, regs)
    assert isinstance(result, WriteError) and result.code == code, result


def test_agreeing_setpoints_in_one_write_use_the_float(decoder: HoldingDecoder) -> None:
    # 12.34 (float32) and 123 (x10 = 12.3) agree within the x10 resolution.
    w = decoder.decode(0, [*encode_value(F32, 12.34), 0, 0, 0, 0, 0, 123])
    assert isinstance(w, HoldingWrite) and w.setpoint_mw == pytest.approx(12.34, rel=1e-6)


def test_holding_tables_only(decoder: HoldingDecoder) -> None:
    assert all(p.table is Table.HOLDING for p in decoder.points)


def test_codec_modules_do_not_import_pymodbus() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bess_sim.modbus.registers, bess_sim.modbus.points; "
        "sys.exit(any(m.split('.')[0] == 'pymodbus' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0
