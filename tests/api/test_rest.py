"""REST routes over real HTTP: every route and every error case of DESIGN §6."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ASSET_2, ASSET_3, SITE_A, SITE_B

from .conftest import TOKEN, base_url

UNKNOWN = "aaaaaaaa-0000-4000-8000-0000000000ff"
JSON = {"content-type": "application/json"}


def all_floats(obj: Any) -> list[float]:
    if isinstance(obj, float):
        return [obj]
    if isinstance(obj, dict):
        return [f for v in obj.values() for f in all_floats(v)]
    if isinstance(obj, list):
        return [f for v in obj for f in all_floats(v)]
    return []


# ---------------------------------------------------------------- sites and assets
async def test_sites(client: httpx.AsyncClient) -> None:
    r = await client.get("/sites")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == [SITE_A, SITE_B]
    assert r.json()[0] == {"id": SITE_A, "name": "Site A", "location": "North"}


async def test_assets_carry_yaml_fields_and_modbus(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    r = await client.get("/assets")
    assert r.status_code == 200
    body = r.json()
    assert [a["id"] for a in body] == [ASSET_1, ASSET_2, ASSET_3]
    yaml_assets = yaml.safe_load(runtime.settings.assets.read_text())["assets"]
    b2 = body[1]
    assert b2["modbus"] == yaml_assets[1]["modbus"]
    assert b2 == {
        "id": ASSET_2, "site_id": SITE_A, "name": "BESS-2", "location": "bay 2",
        "capacity_mwhr": 40.0, "max_mw": 20.0, "min_mw": -20.0,
        "ramp_rate_mw_per_min": 20.0, "efficiency": 0.92, "initial_soc_pct": 80.0,
        "soc_min_pct": 10.0, "soc_max_pct": 90.0, "watchdog_timeout_s": 30.0,
        "modbus": yaml_assets[1]["modbus"],
    }  # fmt: skip
    # Defaults of optional fields are reported too.
    assert body[0]["initial_soc_pct"] == 50.0
    assert body[0]["soc_min_pct"] == 0.0
    assert body[0]["watchdog_timeout_s"] == 0.0


async def test_asset_by_id(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/assets/{ASSET_3}")
    assert r.status_code == 200
    assert r.json()["name"] == "BESS-3"
    # Any UUID spelling is accepted (upper case, no dashes).
    r = await client.get(f"/assets/{ASSET_3.upper().replace('-', '')}")
    assert r.status_code == 200 and r.json()["id"] == ASSET_3


@pytest.mark.parametrize("path", ["/assets/{}", "/telemetry/{}", "/telemetry/{}/history"])
async def test_unknown_asset_is_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path.format(UNKNOWN))
    assert r.status_code == 404
    assert r.json() == {"detail": f"unknown asset {UNKNOWN}"}


@pytest.mark.parametrize(
    "path",
    [
        "/assets/{}", "/telemetry/{}", "/telemetry/{}/history", "/dispatches/{}",
    ],
)  # fmt: skip
@pytest.mark.parametrize("bad", ["not-a-uuid", "1", "%00", "aaaaaaaa-0000-4000-8000-00000000000g"])
async def test_malformed_ids_are_422(client: httpx.AsyncClient, path: str, bad: str) -> None:
    r = await client.get(path.format(bad))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][0] == "path"


# ---------------------------------------------------------------- telemetry
async def test_latest_telemetry(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/telemetry/{ASSET_3}")
    assert r.status_code == 200
    assert r.json() == {
        "asset_id": ASSET_3, "site_id": SITE_B, "timestamp": "2026-01-01T00:00:00Z",
        "soc_mwhr": 2.0, "soc_pct": 20.0, "capacity_mwhr": 10.0, "current_mw": 0.0,
        "setpoint_mw": 0.0, "max_mw": 5.0, "min_mw": -5.0, "status": "idle", "alarms": [],
        # DESIGN §10 fields (an asset without the v2 model: rated limits, no Q, no thermal)
        "current_mvar": 0.0, "setpoint_mvar": 0.0, "available_discharge_mw": 5.0,
        "available_charge_mw": -5.0, "temperature_c": None, "frequency_hz": 50.0,
    }  # fmt: skip


async def test_telemetry_follows_steps_and_floats_are_rounded(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    r = await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": -7.3})
    assert r.status_code == 201
    await runtime.step(37)
    t = (await client.get(f"/telemetry/{ASSET_1}")).json()
    assert t["timestamp"] == "2026-01-01T00:00:37Z"
    assert t["setpoint_mw"] == -7.3
    assert t["current_mw"] == pytest.approx(-10 / 60 * 37)  # ramp 10 MW/min
    assert t["status"] == "charging"
    for value in all_floats(t):
        assert round(value, 9) == value


def test_float_dust_is_rounded_at_the_edge() -> None:
    from bess_sim.api.schemas import r9, r9n

    assert r9(9.999999999999998) == 10.0
    assert r9(0.1 + 0.2) == 0.3
    assert math.copysign(1.0, r9(-0.0000000000001)) == 1.0  # no "-0.0" in JSON
    assert r9n(float("nan")) is None and r9n(float("inf")) is None and r9n(None) is None


async def test_history_newest_first_with_limit_and_window(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await runtime.step(5)
    r = await client.get(f"/telemetry/{ASSET_2}/history")
    assert r.status_code == 200
    stamps = [row["timestamp"] for row in r.json()]
    assert stamps == [f"2026-01-01T00:00:0{s}Z" for s in (5, 4, 3, 2, 1)]
    assert {row["asset_id"] for row in r.json()} == {ASSET_2}

    r = await client.get(f"/telemetry/{ASSET_2}/history", params={"limit": 2})
    assert [row["timestamp"][-3:] for row in r.json()] == ["05Z", "04Z"]

    params = {"start": "2026-01-01T00:00:02Z", "end": "2026-01-01T00:00:04+00:00"}
    r = await client.get(f"/telemetry/{ASSET_2}/history", params=params)
    assert [row["timestamp"][-3:] for row in r.json()] == ["04Z", "03Z", "02Z"]

    # A timestamp without an offset is UTC; another offset is converted.
    params = {"start": "2026-01-01T00:00:04", "end": "2026-01-01T01:00:05+01:00"}
    r = await client.get(f"/telemetry/{ASSET_2}/history", params=params)
    assert [row["timestamp"][-3:] for row in r.json()] == ["05Z", "04Z"]


async def test_history_bucket_is_accepted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.step(120)
    for bucket in ("15s", "1m", "1h", "1d", "500ms", "30", "2.5m", "9999999d"):
        r = await client.get(f"/telemetry/{ASSET_1}/history", params={"bucket": bucket})
        assert r.status_code == 200, bucket
        rows = r.json()
        assert 1 <= len(rows) <= 100
        stamps = [row["timestamp"] for row in rows]
        assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0}, {"limit": 10001}, {"limit": "x"}, {"limit": -1},
        {"start": "yesterday"}, {"end": "2026-13-01T00:00:00Z"},
        {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        {"bucket": "fast"}, {"bucket": "-1m"}, {"bucket": "1M"}, {"bucket": "1 m"},
        {"bucket": "1" * 40}, {"bucket": "1e3s"}, {"bucket": "nan"},
    ],
)  # fmt: skip
async def test_history_bad_query_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    r = await client.get(f"/telemetry/{ASSET_1}/history", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"


async def test_history_zero_bucket_is_raw(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.step(3)
    url = f"/telemetry/{ASSET_1}/history"
    raw = (await client.get(url)).json()
    assert len(raw) == 3
    assert (await client.get(url, params={"bucket": "0s"})).json() == raw


async def test_history_limit_bounds_are_inclusive(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await runtime.step(3)
    for limit in (1, 10_000):
        r = await client.get(f"/telemetry/{ASSET_1}/history", params={"limit": limit})
        assert r.status_code == 200
        assert len(r.json()) == min(limit, 3)


# ---------------------------------------------------------------- dispatch
async def test_dispatch_accepted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 20, "duration_s": 600})
    assert r.status_code == 201
    rec = r.json()
    assert set(rec) == {
        "id", "asset_id", "mw", "duration_s", "status", "reason", "source", "client",
        "submitted_at", "ended_at", "mvar",
    }  # fmt: skip
    assert rec["asset_id"] == ASSET_1
    assert rec["mw"] == 20.0 and rec["duration_s"] == 600.0
    assert rec["status"] == "accepted" and rec["reason"] is None
    assert rec["source"] == "rest"
    assert rec["client"].startswith("127.0.0.1:")
    assert rec["submitted_at"] == "2026-01-01T00:00:00Z" and rec["ended_at"] is None
    assert (await client.get(f"/dispatches/{rec['id']}")).json() == rec
    # Telemetry is the snapshot of the last tick: the setpoint shows from the next tick on.
    await runtime.step(1)
    t = (await client.get(f"/telemetry/{ASSET_1}")).json()
    assert t["setpoint_mw"] == 20.0 and t["current_mw"] > 0


async def test_dispatch_completes_after_duration(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    rec = (
        await client.post("/dispatch", json={"asset_id": ASSET_3, "mw": 1, "duration_s": 10})
    ).json()
    await runtime.step(12)
    done = (await client.get(f"/dispatches/{rec['id']}")).json()
    assert done["status"] == "completed"
    assert done["ended_at"] == "2026-01-01T00:00:10Z"
    assert (await client.get(f"/telemetry/{ASSET_3}")).json()["setpoint_mw"] == 0.0


async def test_new_dispatch_supersedes(client: httpx.AsyncClient) -> None:
    first = (await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 5})).json()
    second = (await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": -5})).json()
    assert (await client.get(f"/dispatches/{first['id']}")).json()["status"] == "superseded"
    assert (await client.get(f"/dispatches/{second['id']}")).json()["status"] == "accepted"


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        ({"mw": 80}, "outside [-50, 50]"),
        ({"mw": -50.5}, "outside [-50, 50]"),
        ({"mw": 10, "mode": "charge"}, "mode 'charge'"),
        ({"mw": -10, "mode": "discharge"}, "mode 'discharge'"),
        ({"mw": 50, "duration_s": 7200}, "insufficient energy"),
        ({"mw": -50, "duration_s": 7200}, "insufficient headroom"),
    ],
)
async def test_dispatch_rejected_is_422_with_record(
    client: httpx.AsyncClient, body: dict[str, Any], reason_part: str
) -> None:
    before = (await client.get(f"/telemetry/{ASSET_1}")).json()
    r = await client.post("/dispatch", json={"asset_id": ASSET_1, **body})
    assert r.status_code == 422
    out = r.json()
    assert reason_part in out["detail"]
    rec = out["dispatch"]
    assert rec["status"] == "rejected" and rec["reason"] == out["detail"]
    assert rec["ended_at"] == rec["submitted_at"]
    # Recorded, and nothing changed.
    assert (await client.get(f"/dispatches/{rec['id']}")).json() == rec
    assert (await client.get(f"/telemetry/{ASSET_1}")).json() == before


async def test_energy_check_reason_has_the_numbers(client: httpx.AsyncClient) -> None:
    # BESS-3: 10 MWh, 20 % SOC, eff 0.9 → 2 MWh stored; 5 MW for 1 h needs 5.5556 MWh.
    r = await client.post("/dispatch", json={"asset_id": ASSET_3, "mw": 5, "duration_s": 3600})
    assert r.status_code == 422
    assert "5.5556 MWh" in r.json()["detail"] and "2.0000 MWh" in r.json()["detail"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_mw_is_recorded_and_rejected(
    client: httpx.AsyncClient, token: str
) -> None:
    raw = f'{{"asset_id": "{ASSET_1}", "mw": {token}}}'
    r = await client.post("/dispatch", content=raw, headers=JSON)
    assert r.status_code == 422
    out = r.json()
    assert "finite" in out["detail"]
    assert out["dispatch"]["mw"] is None and out["dispatch"]["status"] == "rejected"


@pytest.mark.parametrize(
    "raw",
    [
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "duration_s": NaN}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "duration_s": Infinity}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1e999999}}' + "",
        f'{{"asset_id": "{ASSET_1}", "mw": 1{"0" * 400}}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "duration_s": 0}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "duration_s": -5}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "mode": "sideways"}}',
        f'{{"asset_id": "{ASSET_1}", "mw": 1, "colour": "red"}}',
        f'{{"asset_id": "{ASSET_1}", "mw": "lots"}}',
        f'{{"asset_id": "{ASSET_1}"}}',
        '{"asset_id": "nope", "mw": 1}',
        '{"mw": 1}',
        "[]",
        "null",
        "{",
        "\xff\xfe",
    ],
)
async def test_malformed_dispatch_is_plain_422_and_not_recorded(
    client: httpx.AsyncClient, raw: str
) -> None:
    r = await client.post("/dispatch", content=raw.encode("utf-8", "surrogateescape"), headers=JSON)
    if r.status_code == 422 and isinstance(r.json()["detail"], str):
        # 1e999999 parses as inf in Python's json: then it is a recorded rejection (finite check).
        assert "finite" in r.json()["detail"]
        return
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)
    assert (await client.get("/dispatches")).json() == []


async def test_dispatch_unknown_asset_is_404_and_not_recorded(client: httpx.AsyncClient) -> None:
    r = await client.post("/dispatch", json={"asset_id": UNKNOWN, "mw": 1})
    assert r.status_code == 404
    assert r.json() == {"detail": f"unknown asset {UNKNOWN}"}
    assert (await client.get("/dispatches")).json() == []


async def test_dispatch_list_filters_newest_first(client: httpx.AsyncClient) -> None:
    a = (await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 1})).json()
    b = (await client.post("/dispatch", json={"asset_id": ASSET_2, "mw": 99})).json()["dispatch"]
    c = (await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 2})).json()
    ids = [d["id"] for d in (await client.get("/dispatches")).json()]
    assert ids == [c["id"], b["id"], a["id"]]
    r = await client.get("/dispatches", params={"asset_id": ASSET_1})
    assert [d["id"] for d in r.json()] == [c["id"], a["id"]]
    r = await client.get("/dispatches", params={"status": "rejected"})
    assert [d["id"] for d in r.json()] == [b["id"]]
    r = await client.get("/dispatches", params={"asset_id": ASSET_1, "status": "superseded"})
    assert [d["id"] for d in r.json()] == [a["id"]]
    r = await client.get("/dispatches", params={"limit": 1})
    assert [d["id"] for d in r.json()] == [c["id"]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"asset_id": UNKNOWN}, 404), ({"asset_id": "x"}, 422), ({"status": "done"}, 422),
        ({"limit": 0}, 422), ({"limit": 10001}, 422),
    ],
)  # fmt: skip
async def test_dispatch_list_errors(
    client: httpx.AsyncClient, params: dict[str, Any], code: int
) -> None:
    r = await client.get("/dispatches", params=params)
    assert r.status_code == code


async def test_unknown_dispatch_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/dispatches/{UNKNOWN}")
    assert r.status_code == 404
    assert r.json() == {"detail": f"unknown dispatch {UNKNOWN}"}


# ---------------------------------------------------------------- fault injection
async def test_trip_and_reset(client: httpx.AsyncClient, runtime: Runtime) -> None:
    rec = (await client.post("/dispatch", json={"asset_id": ASSET_3, "mw": 2})).json()
    await runtime.step(5)
    r = await client.post(f"/assets/{ASSET_3}/trip")
    assert r.status_code == 200
    assert r.json()["status"] == "fault" and "trip" in r.json()["alarms"]
    assert r.json()["setpoint_mw"] == 0.0
    assert (await client.get(f"/dispatches/{rec['id']}")).json()["status"] == "interrupted"
    r = await client.post("/dispatch", json={"asset_id": ASSET_3, "mw": 1})
    assert r.status_code == 422 and "tripped" in r.json()["detail"]
    await runtime.step(10)
    assert (await client.get(f"/telemetry/{ASSET_3}")).json()["current_mw"] == 0.0
    r = await client.post(f"/assets/{ASSET_3}/reset")
    assert r.status_code == 200 and "trip" not in r.json()["alarms"]
    assert r.json()["status"] != "fault"
    assert (await client.post("/dispatch", json={"asset_id": ASSET_3, "mw": 1})).status_code == 201


@pytest.mark.parametrize("action", ["trip", "reset"])
async def test_trip_reset_errors(client: httpx.AsyncClient, action: str) -> None:
    assert (await client.post(f"/assets/{UNKNOWN}/{action}")).status_code == 404
    assert (await client.post(f"/assets/zzz/{action}")).status_code == 422


# ---------------------------------------------------------------- health / metrics / clock
async def test_health(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.step(3)
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok", "tick": 3, "sim_time_s": 3.0, "now": "2026-01-01T00:00:03Z",
        "db": "disabled",
    }  # fmt: skip
    runtime.set_db_status("down")
    r = await client.get("/health")
    assert r.json()["db"] == "down" and r.json()["status"] == "degraded"
    runtime.set_db_status("disabled")


async def test_metrics(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 1})
    await client.post("/dispatch", json={"asset_id": ASSET_1, "mw": 1000})
    await runtime.step(4)
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    assert "bess_ticks_total 4.0" in text
    assert f"bess_telemetry_rows_total {4.0 * len(runtime.fleet.specs)}" in text
    assert "bess_tick_duration_seconds_bucket" in text
    assert 'bess_dispatches_total{source="rest",status="accepted"} 1.0' in text
    assert 'bess_dispatches_total{source="rest",status="rejected"} 1.0' in text
    assert "bess_tick_overruns_total" in text
    assert "bess_db_dropped_rows_total" in text


async def test_clock_and_step(client: httpx.AsyncClient) -> None:
    r = await client.get("/sim/clock")
    assert r.status_code == 200
    assert r.json() == {
        "mode": "manual", "tick_interval_s": 1.0, "speed": 0.0, "sim_time_s": 0.0,
        "now": "2026-01-01T00:00:00Z", "start_time": "2026-01-01T00:00:00Z", "tick": 0,
        "overruns": 0,
    }  # fmt: skip
    r = await client.post("/sim/step", json={"seconds": 2.5})
    assert r.status_code == 200
    assert r.json() == {
        "ticks": 3, "tick": 3, "sim_time_s": 2.5, "now": "2026-01-01T00:00:02.500000Z",
    }  # fmt: skip
    clock = (await client.get("/sim/clock")).json()
    assert clock["tick"] == 3 and clock["sim_time_s"] == 2.5
    rows = (await client.get(f"/telemetry/{ASSET_1}/history")).json()
    assert len(rows) == 3


@pytest.mark.parametrize(
    "raw",
    [
        '{"seconds": 0}', '{"seconds": -1}', '{"seconds": NaN}', '{"seconds": Infinity}',
        '{"seconds": 1e12}', '{"seconds": 2000000}', '{"seconds": "soon"}', "{}",
        '{"seconds": 1, "extra": 2}', "nope",
    ],
)  # fmt: skip
async def test_step_rejects_absurd_values(client: httpx.AsyncClient, raw: str) -> None:
    r = await client.post("/sim/step", content=raw, headers=JSON)
    assert r.status_code == 422, r.text
    assert (await client.get("/sim/clock")).json()["tick"] == 0


async def test_step_on_realtime_clock_is_409(start_runtime: Callable[..., Runtime]) -> None:
    # A one-hour tick interval: the real-time clock does not tick during the test.
    async with (
        start_runtime(clock="realtime", tick_interval_s=3600) as rt,
        httpx.AsyncClient(base_url=base_url(rt), timeout=30) as c,
    ):
        r = await c.post("/sim/step", json={"seconds": 1})
        assert r.status_code == 409
        assert "real-time" in r.json()["detail"]
        clock = (await c.get("/sim/clock")).json()
        assert clock["mode"] == "realtime" and clock["speed"] == 1.0
        assert clock["tick"] == 0


# ---------------------------------------------------------------- bearer token
async def test_token_guards_mutating_routes_only(start_runtime: Callable[..., Runtime]) -> None:
    async with (
        start_runtime(api_token=TOKEN) as rt,
        httpx.AsyncClient(base_url=base_url(rt), timeout=30) as c,
    ):
        posts: list[tuple[str, Any]] = [
            ("/dispatch", {"asset_id": ASSET_1, "mw": 1}),
            ("/sim/step", {"seconds": 1}),
            (f"/assets/{ASSET_1}/trip", None),
            (f"/assets/{ASSET_1}/reset", None),
        ]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                            {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
            for path, body in posts:
                r = await c.post(path, json=body, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
            # Even a malformed body gets 401 first.
            r = await c.post("/dispatch", content="{", headers={**JSON, **headers})
            assert r.status_code == 401
        assert (await c.get("/dispatches")).json() == []
        assert (await c.get("/sim/clock")).json()["tick"] == 0
        # Reads stay open.
        for path in ("/assets", "/sites", f"/telemetry/{ASSET_1}", "/health", "/metrics",
                         "/dispatches", "/sim/clock", "/"):  # fmt: skip
            assert (await c.get(path)).status_code == 200, path
        ok = {"Authorization": f"Bearer {TOKEN}"}
        r = await c.post("/dispatch", json={"asset_id": ASSET_1, "mw": 1}, headers=ok)
        assert r.status_code == 201
        r = await c.post("/sim/step", json={"seconds": 1}, headers=ok)
        assert r.status_code == 200
        r = await c.post("/dispatch", content="{", headers={**JSON, **ok})
        assert r.status_code == 422


# ---------------------------------------------------------------- failures inside
async def test_history_source_down_is_503(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A history source (the database) that fails: 503 with a JSON detail, logged."""

    class BrokenSource:
        async def history(self, query: object) -> list[Any]:
            raise ConnectionRefusedError("database down")

    runtime.set_history_source(BrokenSource())
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        r = await c.get(f"/telemetry/{ASSET_1}/history")
        assert r.status_code == 503
        assert r.json() == {"detail": "history unavailable: ConnectionRefusedError"}
        # Everything else keeps working.
        assert (await c.get(f"/telemetry/{ASSET_1}")).status_code == 200
    assert "database down" in caplog.text


async def test_unexpected_error_is_a_logged_json_500(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last-resort handler: a bug inside a route answers a JSON 500 and is logged."""

    def broken_render() -> bytes:
        raise RuntimeError("bug in a collector")

    monkeypatch.setattr(runtime.metrics, "render", broken_render)
    async with httpx.AsyncClient(base_url=base_url(runtime), timeout=30) as c:
        r = await c.get("/metrics")
        assert r.status_code == 500
        assert r.json() == {"detail": "internal error (logged by the simulator)"}
        assert (await c.get("/health")).status_code == 200
    assert "bug in a collector" in caplog.text


# ---------------------------------------------------------------- dashboard and docs
async def test_dashboard_and_static_files_are_local(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "static/app.js" in r.text
    for name in ("app.js", "chart.js", "style.css"):
        s = await client.get(f"/static/{name}")
        assert s.status_code == 200, name
        text = s.text + r.text
        for needle in ('src="http', 'href="http', "url(http", "@import", "fonts.googleapis"):
            assert needle not in text, (name, needle)
    assert (await client.get("/static/nope.js")).status_code == 404
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    expected = {
        ("get", "/assets"), ("get", "/assets/{asset_id}"), ("get", "/sites"),
        ("get", "/telemetry/{asset_id}"), ("get", "/telemetry/{asset_id}/history"),
        ("post", "/dispatch"), ("get", "/dispatches"), ("get", "/dispatches/{dispatch_id}"),
        ("get", "/health"), ("get", "/metrics"), ("get", "/sim/clock"), ("post", "/sim/step"),
        ("post", "/assets/{asset_id}/trip"), ("post", "/assets/{asset_id}/reset"),
        ("get", "/grid"), ("post", "/grid"),
        # run-time registration (DESIGN §14)
        ("post", "/sites"), ("delete", "/sites/{site_id}"), ("post", "/assets"),
        ("put", "/assets/{asset_id}"), ("delete", "/assets/{asset_id}"), ("get", "/fleet.yaml"),
        # fault injection (DESIGN §11)
        ("post", "/faults"), ("get", "/faults"), ("get", "/faults/{fault_id}"),
        ("delete", "/faults/{fault_id}"),
        # scenarios (DESIGN §12)
        ("post", "/scenarios"), ("get", "/scenarios/current"),
        ("post", "/scenarios/current/stop"),
    }  # fmt: skip
    found = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert found == expected
    for method, path in expected:
        op = spec["paths"][path][method]
        assert op.get("summary"), path
        codes = set(op["responses"])
        if "{" in path:
            assert {"404", "422"} <= codes, path
        if method in ("post", "put", "delete"):
            assert "401" in codes, path
            # Stopping a scenario takes no input at all: nothing to be malformed.
            assert "422" in codes or path == "/scenarios/current/stop", path
            # An open simulator documents no security scheme (see test_openapi_security).
            assert "security" not in op
    assert "409" in spec["paths"]["/sim/step"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    for name in ("AssetOut", "TelemetryOut", "DispatchOut", "DispatchRejectedOut", "DispatchIn"):
        assert schemas[name].get("examples"), name
    assert (await client.get("/docs")).status_code == 200


async def test_openapi_security_when_token_set(start_runtime: Callable[..., Runtime]) -> None:
    async with (
        start_runtime(api_token=TOKEN) as rt,
        httpx.AsyncClient(base_url=base_url(rt), timeout=30) as c,
    ):
        spec = (await c.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method in ("post", "put", "delete"):
                assert op["security"] == [{"bearer": []}], path
            else:
                assert "security" not in op, path
