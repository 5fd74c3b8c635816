"""Run-time registration over real HTTP (DESIGN §14): status codes, validation identical to
assets.yaml, clashes, file-managed assets, nothing changed after a refusal, /fleet.yaml."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
import yaml

from bess_sim.config import parse_assets
from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ROOT, SITE_A, SITE_B, free_tcp_port
from tests.registry_helpers import NEW_ASSET, asset_body, fleet_state, http


async def test_register_tick_change_delete(runtime: Runtime) -> None:
    port = free_tcp_port()
    async with http(runtime) as c:
        r = await c.post("/assets", json=asset_body(port))
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["id"] == NEW_ASSET and out["origin"] == "api"
        assert out["modbus"] == {"port": port, "unit_id": 1}
        assert (await c.get(f"/assets/{NEW_ASSET}")).json()["name"] == "BESS-NEW"
        assert NEW_ASSET in [a["id"] for a in (await c.get("/assets")).json()]
        # It ticks from the next tick: dispatch and step.
        d = await c.post("/dispatch", json={"asset_id": NEW_ASSET, "mw": 5.0})
        assert d.status_code == 201, d.text
        dispatch_id = d.json()["id"]
        await c.post("/sim/step", json={"seconds": 60})
        t = (await c.get(f"/telemetry/{NEW_ASSET}")).json()
        assert t["current_mw"] == 5.0 and t["soc_mwhr"] < 8.0
        # Change: a smaller max_mw interrupts the 5 MW dispatch; SOC carries over.
        r = await c.put(f"/assets/{NEW_ASSET}", json=asset_body(port, max_mw=4.0))
        assert r.status_code == 200, r.text
        assert r.json()["max_mw"] == 4.0
        assert (await c.get(f"/dispatches/{dispatch_id}")).json()["status"] == "interrupted"
        t2 = (await c.get(f"/telemetry/{NEW_ASSET}")).json()
        assert t2["soc_mwhr"] == t["soc_mwhr"] and t2["max_mw"] == 4.0
        # Delete: 204, gone, its dispatch ends interrupted, its history stays readable.
        d = await c.post("/dispatch", json={"asset_id": NEW_ASSET, "mw": -3.0})
        second = d.json()["id"]
        await c.post("/sim/step", json={"seconds": 1})
        assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 204
        assert (await c.get(f"/assets/{NEW_ASSET}")).status_code == 404
        assert (await c.get(f"/dispatches/{second}")).json()["status"] == "interrupted"
        hist = await c.get(f"/telemetry/{NEW_ASSET}/history", params={"limit": 5})
        assert hist.status_code == 200 and len(hist.json()) == 5
        assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 404
        # The rest of the fleet keeps ticking.
        await c.post("/sim/step", json={"seconds": 1})
        assert (await c.get("/health")).status_code == 200


async def test_id_is_optional_and_sites_can_be_registered(runtime: Runtime) -> None:
    async with http(runtime) as c:
        s = await c.post("/sites", json={"name": "Depot", "location": "East"})
        assert s.status_code == 201, s.text
        site_id = s.json()["id"]
        body = asset_body(free_tcp_port(), site_id=site_id)
        del body["id"]
        a = await c.post("/assets", json=body)
        assert a.status_code == 201, a.text
        asset_id = a.json()["id"]
        assert asset_id != NEW_ASSET
        # A site with assets cannot go; after its asset is deleted it can.
        r = await c.delete(f"/sites/{site_id}")
        assert r.status_code == 409 and "BESS-NEW" in r.json()["detail"]
        assert (await c.delete(f"/assets/{asset_id}")).status_code == 204
        assert (await c.delete(f"/sites/{site_id}")).status_code == 204
        assert site_id not in [x["id"] for x in (await c.get("/sites")).json()]
        assert (await c.delete(f"/sites/{site_id}")).status_code == 404
        dup = await c.post("/sites", json={"id": SITE_B, "name": "again"})
        assert dup.status_code == 409


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"capacity_mwhr": 0}, "capacity_mwhr"),
        ({"max_mw": -1}, "max_mw"),
        ({"min_mw": 1}, "min_mw"),
        ({"efficiency": 1.5}, "efficiency"),
        ({"ramp_rate_mw_per_min": 0}, "ramp_rate_mw_per_min"),
        ({"soc_min_pct": 60, "soc_max_pct": 50}, "soc_max_pct"),
        ({"initial_soc_pct": 95, "soc_max_pct": 90}, "initial_soc_pct"),
        ({"watchdog_timeout_s": 70000}, "watchdog_timeout_s"),
        ({"name": ""}, "name"),
        ({"site_id": "99999999-9999-4999-8999-999999999999"}, "site_id"),
        ({"modbus": {"port": 70000, "unit_id": 1}}, "modbus.port"),
        ({"modbus": {"port": 5020, "unit_id": 0}}, "modbus.unit_id"),
        ({"capacity_mwhr": "lots"}, "capacity_mwhr"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_values_are_422_naming_the_field_and_change_nothing(
    runtime: Runtime, override: dict[str, Any], field: str
) -> None:
    async with http(runtime) as c:
        before = await fleet_state(c)
        r = await c.post("/assets", json=asset_body(free_tcp_port(), **override))
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        locs = [".".join(str(p) for p in d["loc"][1:]) for d in detail]
        assert field in locs, detail
        assert await fleet_state(c) == before


async def test_validation_messages_are_those_of_assets_yaml(
    runtime: Runtime, tmp_path: Path
) -> None:
    """One rule set: the API message is the file check's message for the same entry."""
    body = asset_body(free_tcp_port(), efficiency=0)
    async with http(runtime) as c:
        msg = (await c.post("/assets", json=body)).json()["detail"][0]["msg"]
    data = {"sites": [{"id": SITE_A, "name": "A"}], "assets": [body]}
    with pytest.raises(Exception) as exc:
        parse_assets(data, "assets.yaml")
    assert msg.split(": ", 1)[1] == str(exc.value).split(": ", 1)[1]


async def test_clashes_are_409_and_change_nothing(runtime: Runtime) -> None:
    a1 = runtime.fleet.spec(ASSET_1)
    async with http(runtime) as c:
        before = await fleet_state(c)
        same_unit = await c.post("/assets", json=asset_body(a1.modbus.port, a1.modbus.unit_id))
        assert same_unit.status_code == 409 and "BESS-1" in same_unit.json()["detail"]
        same_id = await c.post("/assets", json=asset_body(free_tcp_port(), id=ASSET_1))
        assert same_id.status_code == 409 and "duplicate asset id" in same_id.json()["detail"]
        # A port in use by something else: bind fails → 409 with the reason.
        busy = runtime.http_port
        assert busy is not None
        r = await c.post("/assets", json=asset_body(busy))
        assert r.status_code == 409 and str(busy) in r.json()["detail"]
        assert await fleet_state(c) == before


async def test_file_managed_assets_and_sites_are_refused(runtime: Runtime) -> None:
    a1 = runtime.fleet.spec(ASSET_1)
    async with http(runtime) as c:
        body = asset_body(a1.modbus.port, a1.modbus.unit_id, id=ASSET_1)
        for r in (
            await c.put(f"/assets/{ASSET_1}", json=body),
            await c.delete(f"/assets/{ASSET_1}"),
            await c.delete(f"/sites/{SITE_A}"),
        ):
            assert r.status_code == 409, r.text
            assert "assets.yaml" in r.json()["detail"]
        missing = "99999999-9999-4999-8999-999999999999"
        assert (await c.put(f"/assets/{missing}", json=asset_body(1))).status_code == 404


async def test_put_body_id_must_match_path(runtime: Runtime) -> None:
    async with http(runtime) as c:
        port = free_tcp_port()
        assert (await c.post("/assets", json=asset_body(port))).status_code == 201
        r = await c.put(f"/assets/{NEW_ASSET}", json=asset_body(port, id=ASSET_1))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "id"]


async def test_token_guards_every_mutating_route(start_runtime: Callable[..., Runtime]) -> None:
    async with start_runtime(api_token="tok") as rt:
        port = free_tcp_port()
        async with http(rt) as c:
            assert (await c.post("/assets", json=asset_body(port))).status_code == 401
            assert (await c.post("/sites", json={"name": "x"})).status_code == 401
            assert (await c.put(f"/assets/{NEW_ASSET}", json=asset_body(port))).status_code == 401
            assert (await c.delete(f"/assets/{ASSET_1}")).status_code == 401
            assert (await c.delete(f"/sites/{SITE_A}")).status_code == 401
            assert (await c.get("/fleet.yaml")).status_code == 200
        async with http(rt, "wrong") as c:
            assert (await c.post("/assets", json=asset_body(port))).status_code == 401
        async with http(rt, "tok") as c:
            assert (await c.post("/assets", json=asset_body(port))).status_code == 201


async def test_concurrent_registrations_of_one_address_exactly_one_wins(
    runtime: Runtime,
) -> None:
    port = free_tcp_port()
    async with http(runtime) as c:
        bodies = [
            asset_body(port, 7, id=f"cccccccc-0000-4000-8000-{i:012d}", name=f"RACE-{i}")
            for i in range(6)
        ]
        results = await asyncio.gather(*(c.post("/assets", json=b) for b in bodies))
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in results]
        names = [a["name"] for a in (await c.get("/assets")).json()]
        assert sum(n.startswith("RACE-") for n in names) == 1


async def test_fleet_yaml_round_trips(runtime: Runtime, tmp_path: Path) -> None:
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(free_tcp_port()))).status_code == 201
        r = await c.get("/fleet.yaml")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
        assets = (await c.get("/assets")).json()
        sites = (await c.get("/sites")).json()
    cfg = parse_assets(yaml.safe_load(r.text), "fleet.yaml")
    assert cfg.assets == runtime.fleet.specs and cfg.sites == runtime.fleet.sites
    assert [a["id"] for a in assets] == [a.id for a in cfg.assets]
    assert [s["id"] for s in sites] == [s.id for s in cfg.sites]
    assert "BESS-NEW" in r.text.splitlines()[1]  # the header names registered assets


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bess_sim", "check-config", "--assets", str(path),
         "--register-map", str(ROOT / "register_map.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_fleet_yaml_passes_check_config(runtime: Runtime, tmp_path: Path) -> None:
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(free_tcp_port()))).status_code == 201
        text = (await c.get("/fleet.yaml")).text
    path = tmp_path / "fleet.yaml"
    await asyncio.to_thread(path.write_text, text)
    res = await asyncio.to_thread(check_config, path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 assets" in res.stdout + res.stderr


async def test_websocket_streams_a_registered_asset(runtime: Runtime) -> None:
    url = f"ws://127.0.0.1:{runtime.http_port}/ws/telemetry"
    async with websockets.connect(url) as ws, http(runtime) as c:
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert NEW_ASSET not in [s["asset_id"] for s in first["snapshots"]]
        assert (await c.post("/assets", json=asset_body(free_tcp_port()))).status_code == 201
        await runtime.step(1)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert [s["asset_id"] for s in msg["snapshots"]][-1] == NEW_ASSET
        assert (await c.delete(f"/assets/{NEW_ASSET}")).status_code == 204
        await runtime.step(1)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert NEW_ASSET not in [s["asset_id"] for s in msg["snapshots"]]
        # A filtered stream of a deleted asset is refused like any unknown one.
        async with websockets.connect(f"{url}?asset_id={NEW_ASSET}") as one:
            refused = json.loads(await asyncio.wait_for(one.recv(), 30))
            assert refused["type"] == "error"


async def test_in_memory_registration_is_logged_as_such(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bess_sim.registry")
    async with http(runtime) as c:
        assert (await c.post("/assets", json=asset_body(free_tcp_port()))).status_code == 201
    assert "added asset BESS-NEW" in caplog.text and "in memory only, lost at exit" in caplog.text
