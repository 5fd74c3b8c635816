"""Real Modbus servers (a started Runtime, manual clock) and the pymodbus client over TCP:
every point readable with the right value, every write case with its exception code."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from bess_sim.config import load_assets
from bess_sim.modbus.points import PointType, Table, load_register_map
from bess_sim.runtime import Runtime, StartupError
from bess_sim.settings import Settings
from bess_sim.sim import DispatchRequest, DispatchSource, DispatchStatus, Snapshot
from tests.conftest import fleet_data, free_tcp_port, free_tcp_ports
from tests.modbus.conftest import ASSET_1, ASSET_2, ASSET_3, port_of, unit_of

Client = Callable[..., Any]
DT = AsyncModbusTcpClient.DATATYPE
_TYPES = {
    PointType.UINT16: DT.UINT16, PointType.INT16: DT.INT16, PointType.UINT32: DT.UINT32,
    PointType.INT32: DT.INT32, PointType.FLOAT32: DT.FLOAT32,
}  # fmt: skip


def f32(value: float) -> list[int]:
    """Big-word-order registers of a float32, built with pymodbus (independent of our codec)."""
    return AsyncModbusTcpClient.convert_to_registers(value, DT.FLOAT32, word_order="big")


def as_float(regs: list[int]) -> float:
    return float(AsyncModbusTcpClient.convert_from_registers(regs, DT.FLOAT32, word_order="big"))


def expected_input(snap: Snapshot, source: str) -> float:
    if source == "timestamp":
        return math.floor(snap.timestamp.timestamp())
    value = getattr(snap, source)
    return math.nan if value is None else float(value)  # temperature_c None reads NaN


async def test_every_point_reads_the_snapshot_values(runtime: Runtime, client_for: Client) -> None:
    fleet = runtime.fleet
    fleet.dispatch(DispatchRequest(ASSET_1, -12.3))
    fleet.dispatch(DispatchRequest(ASSET_2, 7.5, duration_s=600))
    await runtime.step(37.5)
    rm = runtime.register_map
    for asset_id in (ASSET_1, ASSET_2, ASSET_3):
        client = await client_for(asset_id)
        unit = unit_of(runtime, asset_id)
        snap = fleet.snapshot(asset_id)
        ctl = fleet.control(asset_id)
        holding_expected = {
            "setpoint_mw": ctl.setpoint_mw, "duration_s": 0, "heartbeat": ctl.heartbeat,
            "watchdog_timeout_s": ctl.watchdog_timeout_s, "fault_reset": 0,
            "setpoint_mvar": ctl.setpoint_mvar,
        }  # fmt: skip
        for p in rm.points:
            read = (
                client.read_input_registers if p.table is Table.INPUT
                else client.read_holding_registers
            )  # fmt: skip
            rr = await read(p.address, count=p.width, device_id=unit)
            assert not rr.isError(), (asset_id, p.name, rr)
            raw = client.convert_from_registers(rr.registers, _TYPES[p.type], word_order="big")
            value = raw * p.scale
            want = (
                expected_input(snap, p.source) if p.table is Table.INPUT
                else holding_expected[p.source]
            )  # fmt: skip
            tol = abs(want) * 1e-6 + 1e-9 if p.type is PointType.FLOAT32 else p.scale / 2
            assert value == pytest.approx(want, abs=tol, nan_ok=True), (asset_id, p.name)
    # the state was not trivial: charging with a ramp, discharging with a duration
    assert fleet.snapshot(ASSET_1).status_label == "charging"
    assert fleet.snapshot(ASSET_2).status_label == "discharging"


async def test_range_read_returns_the_whole_table(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    rr = await client.read_input_registers(0, count=21, device_id=1)
    assert len(rr.registers) == 21
    snap = runtime.fleet.snapshot(ASSET_1)
    assert as_float(rr.registers[2:4]) == pytest.approx(snap.soc_pct)
    assert as_float(rr.registers[10:12]) == 100.0


async def test_two_units_on_one_port_are_different_assets(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_1)
    assert port_of(runtime, ASSET_1) == port_of(runtime, ASSET_2)
    one = await client.read_input_registers(10, count=2, device_id=1)
    two = await client.read_input_registers(10, count=2, device_id=2)
    assert (as_float(one.registers), as_float(two.registers)) == (100.0, 40.0)


async def test_ticks_refresh_input_registers(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_3)
    before = await client.read_input_registers(18, count=2, device_id=1)
    await runtime.step(5)
    after = await client.read_input_registers(18, count=2, device_id=1)
    ts = lambda regs: (regs[0] << 16) | regs[1]  # noqa: E731
    assert ts(after.registers) - ts(before.registers) == 5


# --------------------------------------------------------------------------- writes
async def test_float_setpoint_write_dispatches_with_source_and_client(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_1)
    wr = await client.write_registers(0, f32(10.5), device_id=1)
    assert not wr.isError()
    rec = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert (rec.mw, rec.status, rec.source, rec.duration_s) == (
        10.5,
        DispatchStatus.ACCEPTED,
        DispatchSource.MODBUS,
        None,
    )
    host, port = rec.client.rsplit(":", 1) if rec.client else ("", "0")
    assert host == "127.0.0.1" and int(port) > 0
    hr = await client.read_holding_registers(0, count=8, device_id=1)
    assert as_float(hr.registers[0:2]) == 10.5 and hr.registers[7] == 105
    await runtime.step(1)
    assert runtime.fleet.snapshot(ASSET_1).setpoint_mw == 10.5
    ir = await client.read_input_registers(8, count=2, device_id=1)
    assert as_float(ir.registers) == 10.5


async def test_x10_setpoint_via_fc06(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_2)
    wr = await client.write_register(7, (-55) & 0xFFFF, device_id=2)
    assert not wr.isError() and wr.registers == [0xFFC9]  # FC06 echoes the request
    assert runtime.fleet.control(ASSET_2).setpoint_mw == pytest.approx(-5.5)
    hr = await client.read_holding_registers(0, count=2, device_id=2)
    assert as_float(hr.registers) == pytest.approx(-5.5)


async def test_duration_is_staged_for_the_next_setpoints(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_1)
    assert not (await client.write_registers(2, [0, 900], device_id=1)).isError()
    hr = await client.read_holding_registers(2, count=2, device_id=1)
    assert hr.registers == [0, 900]
    assert not (await client.write_registers(0, f32(5.0), device_id=1)).isError()
    assert runtime.fleet.dispatches(ASSET_1, limit=1)[0].duration_s == 900
    # setpoint and duration in one FC16 write
    assert not (await client.write_registers(0, [*f32(-4.0), 0, 60], device_id=1)).isError()
    rec = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert (rec.mw, rec.duration_s) == (-4.0, 60)
    await runtime.step(61)
    assert runtime.fleet.dispatch_record(rec.id).status is DispatchStatus.COMPLETED  # type: ignore[union-attr]
    hr = await client.read_holding_registers(0, count=2, device_id=1)
    assert as_float(hr.registers) == 0.0


async def test_rest_dispatch_shows_in_holding_registers(
    runtime: Runtime, client_for: Client
) -> None:
    runtime.fleet.dispatch(DispatchRequest(ASSET_3, -3.2, source=DispatchSource.REST))
    client = await client_for(ASSET_3)
    hr = await client.read_holding_registers(0, count=8, device_id=1)
    assert as_float(hr.registers[0:2]) == pytest.approx(-3.2) and hr.registers[7] == (-32) & 0xFFFF


async def test_heartbeat_and_watchdog_registers(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    assert not (await client.write_register(4, 4242, device_id=1)).isError()
    assert not (await client.write_register(5, 15, device_id=1)).isError()
    ctl = runtime.fleet.control(ASSET_1)
    assert (ctl.heartbeat, ctl.watchdog_timeout_s) == (4242, 15)
    hr = await client.read_holding_registers(4, count=2, device_id=1)
    assert hr.registers == [4242, 15]
    await runtime.step(1)
    ir = await client.read_input_registers(20, count=1, device_id=1)
    assert ir.registers == [4242]


async def test_fault_reset(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_3)
    runtime.fleet.trip(ASSET_3)
    rr = await client.write_registers(0, f32(1.0), device_id=1)
    assert rr.isError() and rr.exception_code == 0x03  # tripped → dispatch rejected
    assert (await client.write_register(6, 2, device_id=1)).exception_code == 0x03
    assert not (await client.write_register(6, 0, device_id=1)).isError()  # no-op
    assert runtime.fleet.control(ASSET_3).tripped
    assert not (await client.write_register(6, 1, device_id=1)).isError()
    assert not runtime.fleet.control(ASSET_3).tripped
    assert not (await client.write_registers(0, f32(1.0), device_id=1)).isError()


@pytest.mark.parametrize(
    ("address", "values", "code"),
    [
        (0, f32(60.0), 0x03),  # above max_mw 50
        (0, f32(-50.5), 0x03),  # below min_mw
        (0, f32(math.nan), 0x03),
        (0, f32(math.inf), 0x03),
        (7, [501], 0x03),  # x10: 50.1 MW
        (0, f32(1.0)[:1], 0x02),  # half a float
        (1, [0], 0x02),
        (1, [0, 0], 0x02),
        (3, [1], 0x02),  # half of duration_s
        (8, [1], 0x02),  # past the holding table
        (100, [1], 0x02),
        (6, [2], 0x03),
        (0, [*f32(12.5), 0, 0, 0, 0, 0, 10], 0x03),  # float and x10 disagree
    ],
)
async def test_bad_write_answers_exception_and_changes_nothing(
    runtime: Runtime, client_for: Client, address: int, values: list[int], code: int
) -> None:
    client = await client_for(ASSET_1)
    assert not (
        await client.write_registers(0, [*f32(2.0), 0, 300, 9, 0, 0, 20], device_id=1)
    ).isError()
    before_holding = (await client.read_holding_registers(0, count=8, device_id=1)).registers
    before_ctl = runtime.fleet.control(ASSET_1)
    n_records = len(runtime.fleet.dispatches(ASSET_1, limit=1000))
    if len(values) == 1:
        rr = await client.write_register(address, values[0], device_id=1)
    else:
        rr = await client.write_registers(address, values, device_id=1)
    assert rr.isError() and rr.exception_code == code, rr
    assert (
        await client.read_holding_registers(0, count=8, device_id=1)
    ).registers == before_holding
    assert runtime.fleet.control(ASSET_1) == before_ctl
    records = runtime.fleet.dispatches(ASSET_1, limit=1000)
    # a rejected dispatch is recorded (DESIGN §4) but changes nothing; others record nothing
    assert len(records) - n_records in (0, 1)
    if len(records) > n_records:
        assert records[0].status is DispatchStatus.REJECTED


async def test_rejected_block_write_applies_none_of_its_parts(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_1)
    # heartbeat, watchdog and duration are fine, the setpoint is out of range
    rr = await client.write_registers(0, [*f32(99.0), 0, 77, 1234, 33, 0, 990], device_id=1)
    assert rr.exception_code == 0x03
    ctl = runtime.fleet.control(ASSET_1)
    assert (ctl.heartbeat, ctl.watchdog_timeout_s, ctl.setpoint_mw) == (0, 0, 0)
    hr = await client.read_holding_registers(0, count=8, device_id=1)
    assert hr.registers == [0] * 8
    rec = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert rec.status is DispatchStatus.REJECTED and rec.source is DispatchSource.MODBUS
    assert "outside" in (rec.reason or "")


async def test_read_write_multiple_fc23(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    rr = await client.readwrite_registers(
        read_address=0, read_count=8, write_address=0, values=f32(-7.5), device_id=1
    )
    assert not rr.isError()
    assert as_float(rr.registers[0:2]) == -7.5 and rr.registers[7] == (-75) & 0xFFFF


async def test_unsupported_function_codes_answer_0x01(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    calls = [
        client.read_coils(0, count=1, device_id=1),
        client.read_discrete_inputs(0, count=1, device_id=1),
        client.write_coil(0, True, device_id=1),
        client.write_coils(0, [True], device_id=1),
        client.mask_write_register(address=4, and_mask=0, or_mask=1, device_id=1),
        client.read_exception_status(device_id=1),
    ]
    for call in calls:
        rr = await call
        assert rr.isError() and rr.exception_code == 0x01, rr


async def test_reads_outside_the_tables_answer_0x02(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    # the input table ends at 33 (frequency_hz, DESIGN §10), the holding table at 9
    assert (await client.read_input_registers(33, count=2, device_id=1)).exception_code == 0x02
    assert (await client.read_input_registers(1000, count=1, device_id=1)).exception_code == 0x02
    assert (await client.read_holding_registers(9, count=2, device_id=1)).exception_code == 0x02


async def test_unknown_unit_answers_0x0b(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_3)
    rr = await client.read_input_registers(0, count=1, device_id=2)
    assert rr.isError() and rr.exception_code == 0x0B


async def test_requests_are_counted_in_metrics(runtime: Runtime, client_for: Client) -> None:
    client = await client_for(ASSET_1)
    await client.read_input_registers(0, count=2, device_id=1)
    await client.read_input_registers(0, count=2, device_id=1)
    await client.write_register(0, 1, device_id=1)  # 0x02
    sample = runtime.metrics.registry.get_sample_value
    assert sample("bess_modbus_requests_total", {"function_code": "4", "exception_code": "0"}) == 2
    assert sample("bess_modbus_requests_total", {"function_code": "6", "exception_code": "2"}) == 1


# --------------------------------------------------------------------------- lifecycle
async def test_port_in_use_is_a_startup_error_naming_port_and_assets(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        path = tmp_path / "busy.yaml"
        path.write_text(yaml.safe_dump(fleet_data(free_tcp_port(), port)))
        s = make_settings(assets=path)
        rt = Runtime(s, load_assets(path), load_register_map(s.register_map))
        with pytest.raises(StartupError, match=rf"{port}.*BESS-3 \(unit 1\)"):
            async with rt:
                pass
    finally:
        busy.close()


async def test_stop_releases_every_port(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    rt = Runtime(s, load_assets(s.assets), load_register_map(s.register_map))
    async with rt:
        ports = list(rt.modbus_ports.values())
        assert len(ports) == 2 and rt.modbus is not None
    for port in ports:
        with socket.socket() as sock:  # would raise EADDRINUSE if still listening
            sock.bind(("127.0.0.1", port))
            sock.listen()


async def test_two_simulators_in_one_process(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    paths = []
    ports = free_tcp_ports(4)  # all four distinct (two pairs drawn apart could overlap: seen)
    for i in range(2):
        path = tmp_path / f"a{i}.yaml"
        path.write_text(yaml.safe_dump(fleet_data(*ports[2 * i : 2 * i + 2])))
        paths.append(path)
    s1, s2 = make_settings(assets=paths[0]), make_settings(assets=paths[1])
    rm = load_register_map(s1.register_map)
    async with (
        Runtime(s1, load_assets(paths[0]), rm) as r1,
        Runtime(s2, load_assets(paths[1]), rm) as r2,
    ):
        r1.fleet.dispatch(DispatchRequest(ASSET_1, 3.0))
        for rt, want in ((r1, 3.0), (r2, 0.0)):
            c = AsyncModbusTcpClient("127.0.0.1", port=port_of(rt, ASSET_1), timeout=10)
            assert await c.connect()
            try:
                hr = await c.read_holding_registers(0, count=2, device_id=1)
                assert as_float(hr.registers) == want
            finally:
                c.close()


def test_struct_helper_is_big_endian() -> None:
    assert f32(1.5) == [0x3FC0, 0] and struct.pack(">f", 1.5) == b"\x3f\xc0\x00\x00"


async def test_fc23_with_a_bad_read_range_writes_nothing(
    runtime: Runtime, client_for: Client
) -> None:
    client = await client_for(ASSET_1)
    rr = await client.readwrite_registers(
        read_address=6, read_count=5, write_address=0, values=f32(-7.5), device_id=1
    )
    assert rr.isError() and rr.exception_code == 0x02
    assert runtime.fleet.control(ASSET_1).setpoint_mw == 0.0
    assert runtime.fleet.dispatches(ASSET_1) == []


async def test_stop_with_clients_connected_and_requests_in_flight(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    rt = Runtime(s, load_assets(s.assets), load_register_map(s.register_map))
    async with rt:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(rt, ASSET_1))
        writer.write(b"".join(struct.pack(">HHHBBHH", i, 0, 6, 1, 4, 0, 21) for i in range(200)))
        await writer.drain()
    # the server side is closed: the client reads what was answered, then EOF
    rest = await asyncio.wait_for(reader.read(), 10)
    assert len(rest) % (9 + 42) == 0
    writer.close()


def test_cli_run_with_modbus_port_in_use_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        path = tmp_path / "assets.yaml"
        path.write_text(yaml.safe_dump(fleet_data(port, free_tcp_port())))
        res = subprocess.run(
            [sys.executable, "-m", "bess_sim", "run", "--assets", str(path), "--http-port", "0",
             "--clock", "manual"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        busy.close()
    assert res.returncode == 2, res.stderr
    assert f"127.0.0.1:{port}" in res.stderr and "BESS-1 (unit 1), BESS-2 (unit 2)" in res.stderr
    assert "Traceback" not in res.stderr
