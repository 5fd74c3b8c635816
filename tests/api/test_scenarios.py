"""``/scenarios`` (DESIGN §12) over real HTTP: start (JSON or YAML), progress, stop, 409,
422 naming step and field, bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from bess_sim.runtime import Runtime
from tests.api.conftest import base_url

QUICK = {
    "name": "quick",
    "steps": [
        {"at": 0, "dispatch": {"asset": "BESS-3", "mw": 2}},
        {"at": 30, "expect": {"asset": "BESS-3", "field": "current_mw", "op": "==",
                              "value": 2, "during": [30, 60]}},
        {"at": 60, "expect": {"asset": "BESS-3", "field": "status", "op": "==",
                              "value": "discharging"}},
    ],
}  # fmt: skip
#: Runs for a simulated year on the manual clock: long enough to be stopped.
LONG = {"name": "long", "steps": [{"at": 31_000_000, "speed": {"x": 1}}]}


async def until_done(c: httpx.AsyncClient) -> dict[str, Any]:
    for _ in range(500):
        body: dict[str, Any] = (await c.get("/scenarios/current")).json()
        if body["state"] not in ("pending", "running"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(body)


async def test_run_a_scenario_and_read_its_results(runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        assert (await c.get("/scenarios/current")).status_code == 404
        r = await c.post("/scenarios", json=QUICK)
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "quick" and r.json()["steps"] == 3
        done = await until_done(c)
        assert done["state"] == "passed", done
        assert [e["status"] for e in done["expectations"]] == ["passed", "passed"]
        assert done["sim_time_s"] == 60
        card = done["scorecard"]
        assert card["fleet"]["commands_by_source"]["scenario"] == 1
        assert card["fleet"]["energy_discharged_mwh"] > 0
        # The scenario's dispatch is in the log with source "scenario".
        (rec,) = (await c.get("/dispatches", params={"limit": 1})).json()
        assert rec["source"] == "scenario"
        # YAML body; a finished scenario does not block the next one.
        r = await c.post("/scenarios", content=yaml.safe_dump(QUICK),
                         headers={"content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 201, r.text
        assert (await until_done(c))["state"] == "passed"


async def test_one_at_a_time_and_stop(runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        assert (await c.post("/scenarios", json=LONG)).status_code == 201
        busy = await c.post("/scenarios", json=QUICK)
        assert busy.status_code == 409 and "'long' is running" in busy.json()["detail"]
        stopped = await c.post("/scenarios/current/stop")
        assert stopped.status_code == 200
        assert stopped.json()["state"] == "stopped"
        assert 0 < stopped.json()["sim_time_s"] < 31_000_000
        assert (await c.post("/scenarios", json=QUICK)).status_code == 201
        assert (await until_done(c))["state"] == "passed"


async def test_bad_scenarios_are_422_naming_step_and_field(runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        bad = {"name": "b", "steps": [{"at": 1, "dispatch": {"asset": "BESS-1", "mw": "x"}}]}
        r = await c.post("/scenarios", json=bad)
        assert r.status_code == 422
        assert "step 0 (at 1): dispatch.mw" in r.json()["detail"][0]["msg"]
        # A fault step is checked by the fault layer's own model before the run starts.
        fault = {"name": "f", "steps": [{"at": 2, "fault": {
            "kind": "derate", "asset": "BESS-1", "params": {"discharge_pct": -5}}}]}  # fmt: skip
        r = await c.post("/scenarios", json=fault)
        assert r.status_code == 422
        assert "step 0 (at 2): fault: " in r.text and "discharge_pct" in r.text
        r = await c.post("/scenarios", content="name: [", headers={
            "content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 422 and "not valid YAML" in r.text
        r = await c.post("/scenarios", content="[1]", headers={"content-type": "application/json"})
        assert r.status_code == 422
        r = await c.post("/scenarios", content="name: x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/scenarios/current")).status_code == 404  # nothing started


async def test_token_guards_start_and_stop(start_runtime: Callable[..., Runtime]) -> None:
    async with (
        start_runtime(api_token="tok") as rt,
        httpx.AsyncClient(base_url=base_url(rt), timeout=30) as c,
    ):
        assert (await c.post("/scenarios", json=QUICK)).status_code == 401
        assert (await c.post("/scenarios/current/stop")).status_code == 401
        auth = {"authorization": "Bearer tok"}
        assert (await c.post("/scenarios", json=LONG, headers=auth)).status_code == 201
        assert (await c.get("/scenarios/current")).status_code == 200
        r = await c.post("/scenarios/current/stop", headers=auth)
        assert r.json()["state"] == "stopped"


async def test_yaml_bodies_only_where_a_route_takes_them(runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        yaml_ct = {"content-type": "application/yaml"}
        r = await c.post("/sim/step", content="seconds: 5", headers=yaml_ct)
        assert r.status_code == 415
        r = await c.post("/assets/aaaaaaaa-0000-4000-8000-000000000001/trip", content="x: 1",
                         headers=yaml_ct)  # fmt: skip
        assert r.status_code == 415
        assert not runtime.fleet.control("aaaaaaaa-0000-4000-8000-000000000001").tripped
