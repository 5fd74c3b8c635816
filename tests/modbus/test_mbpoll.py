"""mbpoll (libmodbus) as the master: what a SCADA engineer runs, checked against REST."""

from __future__ import annotations

import asyncio
import re
import shutil

import httpx
import pytest

from bess_sim.runtime import Runtime
from bess_sim.sim import DispatchRequest
from tests.modbus.conftest import ASSET_1, ASSET_2, ASSET_3, port_of, unit_of

MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt install mbpoll)")


async def mbpoll(
    runtime: Runtime, asset_id: str, *args: str, write: str | None = None
) -> tuple[int, str]:
    """Run mbpoll against an asset (0-based addresses, big-endian word order: -0 -B); with
    ``write``, write that value instead of reading."""
    assert MBPOLL is not None
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, "-m", "tcp", "-p", str(port_of(runtime, asset_id)),
        "-a", str(unit_of(runtime, asset_id)), "-0", "-B", "-o", "5", *args, "127.0.0.1",
        *([] if write is None else ["--", write]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def values(output: str) -> dict[int, float]:
    """``[ref]: value`` lines of an mbpoll read."""
    return {int(m[1]): float(m[2]) for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", output, re.M)}


async def telemetry(runtime: Runtime, asset_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
        res = await http.get(f"/telemetry/{asset_id}", timeout=30)
        res.raise_for_status()
        data: dict[str, object] = res.json()
        return data


async def test_float_read_equals_rest_telemetry_of_the_same_tick(runtime: Runtime) -> None:
    runtime.fleet.dispatch(DispatchRequest(ASSET_2, -15.0))
    await runtime.step(42)
    rc, out = await mbpoll(runtime, ASSET_2, "-t", "3:float", "-r", "2", "-c", "7", "-1")
    assert rc == 0, out
    read = values(out)
    rest = await telemetry(runtime, ASSET_2)
    for ref, field in ((2, "soc_pct"), (4, "soc_mwhr"), (6, "current_mw"), (8, "setpoint_mw"),
                       (10, "capacity_mwhr"), (12, "max_mw"), (14, "min_mw")):  # fmt: skip
        want = float(rest[field])  # type: ignore[arg-type]
        # mbpoll prints 6 significant digits (%g)
        assert read[ref] == pytest.approx(want, rel=1e-5, abs=1e-5), field
    assert rest["status"] == "charging"


async def test_status_word_read(runtime: Runtime) -> None:
    runtime.fleet.trip(ASSET_3)
    await runtime.step(1)
    rc, out = await mbpoll(runtime, ASSET_3, "-t", "3", "-r", "0", "-c", "2", "-1")
    assert rc == 0, out
    assert values(out) == {0: 3, 1: 8}  # fault; alarm bit3 trip


async def test_setpoint_write_shows_in_rest(runtime: Runtime) -> None:
    rc, out = await mbpoll(runtime, ASSET_1, "-t", "4:float", "-r", "0", write="12.5")
    assert rc == 0, out
    await runtime.step(1)
    assert (await telemetry(runtime, ASSET_1))["setpoint_mw"] == 12.5
    rec = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert rec.source.value == "modbus" and (rec.client or "").startswith("127.0.0.1:")


async def test_x10_setpoint_write_with_fc06(runtime: Runtime) -> None:
    rc, out = await mbpoll(runtime, ASSET_3, "-t", "4", "-r", "7", write="35")
    assert rc == 0, out
    assert runtime.fleet.control(ASSET_3).setpoint_mw == pytest.approx(3.5)


async def test_out_of_range_write_exits_with_illegal_data_value(runtime: Runtime) -> None:
    rc, out = await mbpoll(runtime, ASSET_1, "-t", "4:float", "-r", "0", write="999")
    assert rc != 0 and "Illegal data value" in out, out
    assert runtime.fleet.control(ASSET_1).setpoint_mw == 0.0


async def test_unknown_unit_is_target_device_failed_to_respond(runtime: Runtime) -> None:
    assert MBPOLL is not None
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, "-m", "tcp", "-p", str(port_of(runtime, ASSET_3)), "-a", "9", "-0", "-t", "3",
        "-r", "0", "-1", "-o", "5", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert "Target device failed to respond" in out.decode()
