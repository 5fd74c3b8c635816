"""``/faults`` over real HTTP: validation (422 naming the field, nothing changed), auth,
listing, deleting, metrics and the log lines (DESIGN §11)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3
from tests.faults.helpers import delete_fault, post_fault

TOKEN = "fault-token"

BAD: list[tuple[dict[str, Any], str]] = [
    ({"kind": "meteor", "asset_id": ASSET_1}, "kind"),
    ({"kind": "modbus_latency", "asset_id": ASSET_1}, "delay_ms"),
    ({"kind": "modbus_latency", "asset_id": ASSET_1, "params": {"delay_ms": -1}}, "delay_ms"),
    ({"kind": "modbus_latency", "asset_id": ASSET_1, "params": {"delay_ms": "5"}}, "delay_ms"),
    ({"kind": "modbus_drop", "asset_id": ASSET_1, "params": {"probability": 1.5}}, "probability"),
    ({"kind": "modbus_exception", "asset_id": ASSET_1, "params": {}}, "code"),
    ({"kind": "modbus_exception", "asset_id": ASSET_1,
      "params": {"code": 2, "function_codes": [0]}}, "function_codes"),
    ({"kind": "derate", "asset_id": ASSET_1, "params": {"discharge_pct": 120}}, "discharge_pct"),
    ({"kind": "derate", "asset_id": ASSET_1, "params": {"power_pct": 50}}, "power_pct"),
    ({"kind": "soc_bias", "asset_id": ASSET_1, "params": {"offset_pct": "x"}}, "offset_pct"),
    ({"kind": "frozen_telemetry", "asset_id": ASSET_1,
      "params": {"surfaces": ["fax"]}}, "surfaces"),
    ({"kind": "value_override", "asset_id": ASSET_1,
      "params": {"field": "colour", "value": 1}}, "field"),
    ({"kind": "value_override", "asset_id": ASSET_1,
      "params": {"field": "soc_pct", "value": 1, "offset": 2}}, "value, offset, scale"),
    ({"kind": "trip"}, "asset_id"),
    ({"kind": "trip", "port": 5020}, "port"),
    ({"kind": "modbus_offline", "asset_id": ASSET_1, "port": 5020}, "asset_id and port"),
    ({"kind": "modbus_offline", "port": 1}, "port"),
    ({"kind": "trip", "asset_id": "aaaaaaaa-0000-4000-8000-00000000dead"}, "asset_id"),
    ({"kind": "trip", "asset_id": "not-a-uuid"}, "asset_id"),
    ({"kind": "trip", "asset_id": ASSET_1, "start_in_s": -1}, "start_in_s"),
    ({"kind": "trip", "asset_id": ASSET_1, "duration_s": 0}, "duration_s"),
    ({"kind": "trip", "asset_id": ASSET_1, "colour": "red"}, "colour"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD)
async def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    runtime: Runtime, client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/faults", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert runtime.faults.list() == []
    assert runtime.fleet.snapshot(ASSET_1).status == 0  # not tripped


async def test_list_filters_get_and_delete(runtime: Runtime, client: httpx.AsyncClient) -> None:
    port = runtime.fleet.spec(ASSET_1).modbus.port
    a = await post_fault(client, {"kind": "stuck", "asset_id": ASSET_1})
    b = await post_fault(client, {"kind": "modbus_offline", "port": port, "start_in_s": 30})
    c = await post_fault(client, {"kind": "derate", "asset_id": ASSET_3, "duration_s": 5,
                                  "params": {"discharge_pct": 10}})  # fmt: skip
    await runtime.step(10)
    ids = lambda r: [f["id"] for f in r.json()]  # noqa: E731
    assert ids(await client.get("/faults")) == [c["id"], b["id"], a["id"]]
    assert ids(await client.get("/faults", params={"state": "active"})) == [a["id"]]
    assert ids(await client.get("/faults", params={"state": "scheduled"})) == [b["id"]]
    assert ids(await client.get("/faults", params={"state": "ended"})) == [c["id"]]
    # a port-wide fault shows for every asset of that port
    assert ids(await client.get("/faults", params={"asset_id": ASSET_2})) == [b["id"]]
    assert ids(await client.get("/faults", params={"asset_id": ASSET_1})) == [b["id"], a["id"]]
    assert (await client.get("/faults", params={"state": "over"})).status_code == 422
    got = (await client.get(f"/faults/{a['id']}")).json()
    assert got["state"] == "active" and got["started_at"] == "2026-01-01T00:00:00Z"
    cancelled = await delete_fault(client, b["id"])
    assert cancelled["state"] == "ended" and cancelled["end_reason"] == "deleted (never started)"
    again = await delete_fault(client, b["id"])  # ending an ended fault changes nothing
    assert again == cancelled
    missing = "bbbbbbbb-0000-4000-8000-000000000000"
    assert (await client.get(f"/faults/{missing}")).status_code == 404
    assert (await client.delete(f"/faults/{missing}")).status_code == 404
    assert (await client.get("/faults/nope")).status_code == 422


async def test_metrics_and_one_log_line_at_start_and_end(
    runtime: Runtime, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bess_sim.faults")
    await post_fault(client, {"kind": "modbus_latency", "asset_id": ASSET_1, "start_in_s": 2,
                              "duration_s": 3, "params": {"delay_ms": 1}})  # fmt: skip
    await runtime.step(1)
    m = (await client.get("/metrics")).text
    assert 'bess_faults_total{event="scheduled",kind="modbus_latency"} 1.0' in m
    for _ in range(10):
        await runtime.step(1)
    m = (await client.get("/metrics")).text
    assert 'bess_faults_total{event="started",kind="modbus_latency"} 1.0' in m
    assert 'bess_faults_total{event="ended",kind="modbus_latency"} 1.0' in m
    assert 'bess_faults_active{kind="modbus_latency"} 0.0' in m
    lines = [r.getMessage() for r in caplog.records if r.name == "bess_sim.faults"]
    assert sum(" started: " in x for x in lines) == 1, lines
    assert sum(" ended: " in x for x in lines) == 1, lines


async def test_token_guards_mutating_routes(start_runtime: Callable[..., Any]) -> None:
    async with (
        start_runtime(api_token=TOKEN) as rt,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.http_port}") as c,
    ):
        body = {"kind": "stuck", "asset_id": ASSET_1}
        assert (await c.post("/faults", json=body)).status_code == 401
        assert (await c.post("/faults", json={"kind": "bad"})).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = await c.post("/faults", json=body, headers=auth)
        assert r.status_code == 201
        fid = r.json()["id"]
        assert (await c.get("/faults")).status_code == 200  # reads stay open
        assert (await c.delete(f"/faults/{fid}")).status_code == 401
        assert (await c.delete(f"/faults/{fid}", headers=auth)).status_code == 200


async def test_override_value_accepts_a_python_style_nan_and_refuses_booleans(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    params = '{"field": "soc_pct", "value": NaN}'
    body = f'{{"kind": "value_override", "asset_id": "{ASSET_1}", "params": {params}}}'
    r = await client.post("/faults", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["params"]["value"] == "NaN"
    bad = {"field": "soc_pct", "value": True}
    r = await client.post(
        "/faults", json={"kind": "value_override", "asset_id": ASSET_1, "params": bad}
    )
    assert r.status_code == 422 and "value" in r.text


async def test_faults_follow_registration(runtime: Runtime, client: httpx.AsyncClient) -> None:
    """A registered asset can be faulted at once (its new port too); deleting it ends them."""
    from tests.conftest import free_tcp_port
    from tests.registry_helpers import NEW_ASSET, asset_body

    port = free_tcp_port()
    assert (await client.post("/assets", json=asset_body(port))).status_code == 201
    f = await post_fault(client, {"kind": "modbus_offline", "port": port})
    g = await post_fault(client, {"kind": "stuck", "asset_id": NEW_ASSET})
    assert runtime.faults.comm_for(port) is not None
    assert (await client.delete(f"/assets/{NEW_ASSET}")).status_code == 204
    ended = (await client.get(f"/faults/{g['id']}")).json()
    assert ended["state"] == "ended" and ended["end_reason"] == "asset removed"
    # the port-wide fault stays until it ends, but its port serves nobody now
    assert (await client.get(f"/faults/{f['id']}")).json()["state"] == "active"
