"""modbus.profile (native | sunspec | both): what each device serves; config errors exit 2;
`bess-sim points` lists the SunSpec points; mbpoll reads 'SunS' at 40000."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bess_sim.cli import main
from bess_sim.config import load_assets
from bess_sim.modbus.points import default_register_map_data, load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from bess_sim.sunspec import load_layout
from tests.conftest import ASSET_1, ASSET_2, ASSET_3, fleet_data, two_free_tcp_ports
from tests.modbus.conftest import mbap, port_of, read_frame, unit_of

MBPOLL = shutil.which("mbpoll")


def _fleet(profiles: dict[str, str]) -> dict[str, Any]:
    data = fleet_data(*two_free_tcp_ports())
    for asset in data["assets"]:
        if asset["id"] in profiles:
            asset["modbus"]["profile"] = profiles[asset["id"]]
    return data


@pytest.fixture
async def mixed(tmp_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    """BESS-1 sunspec only, BESS-2 both (default), BESS-3 native only."""
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(_fleet({ASSET_1: "sunspec", ASSET_3: "native"})))
    settings = make_settings(assets=path)
    async with Runtime(settings, load_assets(path), load_register_map(settings.register_map)) as rt:
        yield rt


async def request(rt: Runtime, asset_id: str, pdu: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(rt, asset_id))
    try:
        writer.write(mbap(1, unit_of(rt, asset_id), pdu))
        return (await read_frame(reader))[2]
    finally:
        writer.close()


async def test_each_profile_serves_its_maps(mixed: Runtime) -> None:
    suns = struct.pack(">BHH", 3, 40000, 2)
    native_in = struct.pack(">BHH", 4, 0, 2)
    native_hr = struct.pack(">BHH", 3, 0, 2)
    assert await request(mixed, ASSET_1, suns) == b"\x03\x04SunS"
    assert await request(mixed, ASSET_1, native_in) == b"\x84\x02"
    assert await request(mixed, ASSET_1, native_hr) == b"\x83\x02"
    assert await request(mixed, ASSET_1, struct.pack(">BHH", 6, 4, 1)) == b"\x86\x02"
    assert await request(mixed, ASSET_2, suns) == b"\x03\x04SunS"
    assert (await request(mixed, ASSET_2, native_in))[0] == 4
    assert await request(mixed, ASSET_3, suns) == b"\x83\x02"
    assert (await request(mixed, ASSET_3, native_in))[0] == 4


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_bad_profile_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = _write(tmp_path, "a.yaml", _fleet({ASSET_2: "modbus-sunspec"}))
    assert main(["check-config", "--assets", assets]) == 2
    err = capsys.readouterr().err
    assert "a.yaml" in err and "BESS-2" in err and "modbus.profile" in err


def test_native_point_inside_the_sunspec_block_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regmap = default_register_map_data()
    regmap["points"].append(
        {"name": "extra", "table": "holding", "address": 40010, "type": "uint16",
         "source": "heartbeat"}
    )  # fmt: skip
    rm = _write(tmp_path, "rm.yaml", regmap)
    assets = _write(tmp_path, "a.yaml", _fleet({}))
    assert main(["check-config", "--assets", assets, "--register-map", rm]) == 2
    err = capsys.readouterr().err
    assert "rm.yaml" in err and "'extra'" in err and "SunSpec block" in err
    # with no asset serving both maps the same register map is fine
    only = {ASSET_1: "native", ASSET_2: "sunspec", ASSET_3: "native"}
    assets = _write(tmp_path, "b.yaml", _fleet(only))
    assert main(["check-config", "--assets", assets, "--register-map", rm]) == 0


def test_points_lists_sunspec_points_with_absolute_addresses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assets = _write(tmp_path, "a.yaml", _fleet({ASSET_1: "sunspec", ASSET_3: "native"}))
    assert main(["points", "--format", "csv", "--assets", assets]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    lay = load_layout()
    by_asset = {a: [r for r in rows if r["asset"] == a] for a in ("BESS-1", "BESS-2", "BESS-3")}
    sunspec_rows = len(lay.points) + 2  # + marker and end model
    assert len(by_asset["BESS-1"]) == sunspec_rows  # sunspec only
    assert len(by_asset["BESS-2"]) == 26 + sunspec_rows  # 19 of DESIGN §5 + 7 of §10
    assert all(int(r["address"]) < 40000 for r in by_asset["BESS-3"])
    w = next(r for r in by_asset["BESS-1"] if r["name"] == "701.W")
    assert (w["address"], w["type"], w["scale"], w["unit"], w["access"]) == (
        str(lay.point(701, "W").address), "int16", "10000", "W", "R",
    )  # fmt: skip  # 50 MW → W_SF 4
    wset = next(r for r in by_asset["BESS-1"] if r["name"] == "704.WSet")
    assert (wset["registers"], wset["access"], wset["scale"]) == ("2", "RW", "1")
    # Var reads the model-v2 reactive power; BESS-1 has no `reactive`: no VarSet (704).
    var = next(r for r in by_asset["BESS-1"] if r["name"] == "701.Var")
    assert "not implemented" not in var["description"]
    var_set = next(r for r in by_asset["BESS-1"] if r["name"] == "704.VarSet")
    assert "not implemented" in var_set["description"]
    assert main(["points", "--assets", assets]) == 0
    assert "| 704.WSet |" in capsys.readouterr().out


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_mbpoll_reads_suns_at_40000(runtime: Runtime) -> None:
    assert MBPOLL is not None
    # The README recipe: mbpoll counts references from 1 unless -0; 40000 0-based = 40001.
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, "-m", "tcp", "-p", str(port_of(runtime, ASSET_2)), "-a", "2", "-t", "4:hex",
        "-r", "40001", "-c", "4", "-1", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    for ref, value in ((40001, "0x5375"), (40002, "0x6E53"), (40003, "0x0001"), (40004, "0x0042")):
        assert f"[{ref}]: \t{value}" in text or f"[{ref}]:\t{value}" in text, text
