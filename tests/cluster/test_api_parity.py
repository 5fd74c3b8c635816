"""The same API tests against both topologies (issue 14, DESIGN §15): ``bess-sim run`` and
``bess-sim headend`` + 2 agents, real subprocesses started side by side from the same
assets.yaml with ``--clock manual`` and the same ``--start-time`` (the single process binds
its Modbus ports on 127.0.0.2, the agents on 127.0.0.1: same ports, no clash).

Every check runs on both (``api`` is parametrized); where the answer must be the same the
bodies of the two are compared. Both deployments receive the same requests in the same order,
so their simulated state stays identical. The database run also sets ``BESS_API_TOKEN`` on both
(the clients send it; ``test_auth_is_the_same_on_both`` checks the 401s)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.cluster.conftest import NATS_URL, START_TIMEOUT_S, _delete_streams, asset_id, free_port
from tests.cluster.conftest import write_assets as write_cluster_assets
from tests.storage.conftest import server_url, with_database

IDS = [asset_id(i) for i in range(1, 5)]
UNKNOWN = "7c1e2d3f-4a5b-4c6d-8e7f-999999999999"
START = "2026-01-01T00:00:00Z"
TOPOLOGIES = ("run", "headend")
STATIC_FILES = sorted(
    p for p in (Path(__file__).parents[2] / "src/bess_sim/api/static").iterdir() if p.is_file()
)


@dataclass
class Deployments:
    tmp: Path
    urls: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]]
    #: BESS_API_TOKEN of both APIs (the database run sets one), or None.
    token: str | None = None

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n{(self.tmp / f'{n}.log').read_text(errors='replace')[-2000:]}"
            for n in self.procs
        )


def _start(
    tmp: Path, name: str, args: list[str], token: str | None = None
) -> subprocess.Popen[bytes]:
    out = (tmp / f"{name}.log").open("ab")
    cmd = [sys.executable, "-m", "bess_sim", *args]
    env = {k: v for k, v in os.environ.items() if k != "BESS_API_TOKEN"}
    if token is not None:
        env["BESS_API_TOKEN"] = token
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


async def _wait_online(base: str, d: Deployments) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        while time.monotonic() < deadline:
            try:
                states = [(await c.get(f"/telemetry/{a}")).json()["status"] for a in IDS]
                if "offline" not in states:
                    return
            except (httpx.TransportError, KeyError, ValueError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{base} not online within {START_TIMEOUT_S} s\n{d.logs()}")


def _database(action: str, name: str) -> str:
    """CREATE or DROP database ``name`` on the test server; its URL. Unreachable → fail."""

    async def run() -> None:
        try:
            con = await asyncpg.connect(server_url(), timeout=10)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            pytest.fail(f"PostgreSQL not reachable at {server_url()} ({exc!r})", pytrace=False)
        try:
            if action == "create":
                await con.execute(f'CREATE DATABASE "{name}"')
            else:
                await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await con.close()

    asyncio.run(run())
    return with_database(server_url(), name)


@pytest.fixture(scope="module", params=["memory", pytest.param("database", marks=pytest.mark.db)])
def deployments(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployments]:
    """Both topologies; with ``database`` each has a fresh PostgreSQL database of its own
    (history is then read from it on both) and both APIs need a bearer token for changes."""
    tmp = tmp_path_factory.mktemp("parity")
    dbs = {t: f"bess_test_{uuid.uuid4().hex[:12]}" for t in TOPOLOGIES}
    db_args = {t: [] for t in TOPOLOGIES}
    token = None
    if request.param == "database":
        db_args = {t: ["--database-url", _database("create", dbs[t])] for t in TOPOLOGIES}
        token = f"t-{uuid.uuid4().hex}"
    assets = tmp / "assets.yaml"
    write_cluster_assets(assets, [free_port() for _ in IDS])
    prefix = f"p{uuid.uuid4().hex[:10]}"
    common = ["--assets", str(assets), "--clock", "manual", "--start-time", START]
    nats = ["--nats", NATS_URL, "--nats-prefix", prefix]
    ports = {t: free_port() for t in TOPOLOGIES}
    procs = {
        "run": _start(
            tmp,
            "run",
            [
                *("run", *common, *db_args["run"], "--http-port", str(ports["run"])),
                *("--modbus-host", "127.0.0.2"),
            ],
            token,
        ),
        "headend": _start(
            tmp,
            "headend",
            ["headend", *common, *nats, *db_args["headend"], "--http-port", str(ports["headend"])],
            token,
        ),
    }
    for k in range(2):
        procs[f"agent{k}"] = _start(
            tmp, f"agent{k}", ["agent", *common, *nats, "--shard", f"{k}/2"]
        )
    d = Deployments(tmp, {t: f"http://127.0.0.1:{p}" for t, p in ports.items()}, procs, token)
    try:
        for t in TOPOLOGIES:
            asyncio.run(_wait_online(d.urls[t], d))
        yield d
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        asyncio.run(_delete_streams(prefix))
        if request.param == "database":
            for name in dbs.values():
                _database("drop", name)


@pytest.fixture
async def both(deployments: Deployments) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    auth = {} if deployments.token is None else {"Authorization": f"Bearer {deployments.token}"}
    async with (
        httpx.AsyncClient(base_url=deployments.urls["run"], timeout=15, headers=auth) as run,
        httpx.AsyncClient(
            base_url=deployments.urls["headend"], timeout=15, headers=auth
        ) as headend,
    ):
        yield {"run": run, "headend": headend}


@pytest.fixture(params=TOPOLOGIES)
def api(request: pytest.FixtureRequest, both: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    return both[request.param]


async def _same(
    both: dict[str, httpx.AsyncClient], method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    """The request on both topologies (run first); asserts equal status and body."""
    answers = [await both[t].request(method, url, **kw) for t in TOPOLOGIES]
    run, headend = answers
    assert run.status_code == headend.status_code, (url, run.text, headend.text)
    body = (
        run.json()
        if run.headers.get("content-type", "").startswith("application/json")
        else run.text
    )
    other = (
        headend.json()
        if headend.headers.get("content-type", "").startswith("application/json")
        else headend.text
    )
    assert body == other, (url, body, other)
    return run.status_code, body


# ------------------------------------------------------------------ reads
async def test_assets_list_and_one(api: httpx.AsyncClient) -> None:
    r = await api.get("/assets")
    assert r.status_code == 200
    assert [a["id"] for a in r.json()] == IDS  # assets.yaml order
    r = await api.get(f"/assets/{IDS[2]}")
    assert r.status_code == 200 and r.json()["name"] == "B3"


async def test_telemetry_of_an_asset(api: httpx.AsyncClient) -> None:
    for aid in IDS:
        r = await api.get(f"/telemetry/{aid}")
        assert r.status_code == 200
        t = r.json()
        assert t["asset_id"] == aid and t["status"] != "offline"
        assert 0 <= t["soc_pct"] <= 100


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    for url in (f"/assets/{UNKNOWN}", f"/telemetry/{UNKNOWN}", f"/telemetry/{UNKNOWN}/history"):
        r = await api.get(url)
        assert r.status_code == 404, (url, r.text)
    r = await api.post("/dispatch", json={"asset_id": UNKNOWN, "mw": 1})
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"], r.text
    r = await api.post(f"/assets/{UNKNOWN}/trip")
    assert r.status_code == 404, r.text


async def test_reads_are_the_same_on_both(both: dict[str, httpx.AsyncClient]) -> None:
    for url in (
        "/assets",
        f"/assets/{IDS[0]}",
        "/sites",
        "/",  # the dashboard page and its own JS/CSS (no CDN)
        *(f"/static/{f.name}" for f in STATIC_FILES),
        "/telemetry",  # no collection route in either (per asset only): the same 404
        *(f"/telemetry/{a}" for a in IDS),
        f"/assets/{UNKNOWN}",
        f"/telemetry/{UNKNOWN}",
        "/telemetry/not-a-uuid",
        f"/telemetry/{IDS[0]}/history?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
    ):
        await _same(both, "GET", url)


# ------------------------------------------------------------------ dispatch
async def test_dispatch_accepted_201(api: httpx.AsyncClient) -> None:
    r = await api.post("/dispatch", json={"asset_id": IDS[0], "mw": 5, "duration_s": 3600})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["asset_id"] == IDS[0] and rec["mw"] == 5 and rec["status"] == "accepted"
    r = await api.get(f"/dispatches/{rec['id']}")
    assert r.status_code == 200 and r.json()["id"] == rec["id"], r.text


async def test_dispatch_records_match_apart_from_their_id(
    both: dict[str, httpx.AsyncClient],
) -> None:
    recs = []
    for t in TOPOLOGIES:
        r = await both[t].post("/dispatch", json={"asset_id": IDS[1], "mw": -4, "duration_s": 600})
        assert r.status_code == 201, (t, r.text)
        # The id is random and the client is the caller's own ip:port (one per connection).
        recs.append({k: v for k, v in r.json().items() if k not in ("id", "client")})
    assert recs[0] == recs[1]


async def test_dispatch_validation_errors_422(api: httpx.AsyncClient) -> None:
    r = await api.post("/dispatch", json={"asset_id": IDS[3], "mw": 500})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "mw 500 is outside [-20, 20] MW for asset B4", r.text
    r = await api.post("/dispatch", json={"asset_id": IDS[3], "mw": "lots"})
    assert r.status_code == 422, r.text


async def test_dispatch_errors_are_the_same_on_both(both: dict[str, httpx.AsyncClient]) -> None:
    for body in (
        {"asset_id": IDS[3], "mw": 500},
        {"asset_id": IDS[3], "mw": -500},
        {"asset_id": IDS[3], "mw": 1, "duration_s": -5},
        {"asset_id": IDS[3], "mw": "lots"},
        {"asset_id": IDS[3]},
        {"asset_id": UNKNOWN, "mw": 1},
        {"asset_id": "not-a-uuid", "mw": 1},
    ):
        status, answer = await _different_record_ids(both, "/dispatch", body)
        assert status in (404, 422), (body, answer)


async def _different_record_ids(
    both: dict[str, httpx.AsyncClient], url: str, body: dict[str, Any]
) -> tuple[int, Any]:
    """POST on both; a rejected dispatch is recorded (§4), so its record id (random) and client
    (the caller's ip:port) differ: compared without them."""
    answers = [await both[t].post(url, json=body) for t in TOPOLOGIES]
    assert answers[0].status_code == answers[1].status_code, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    for b in bodies:
        if isinstance(b, dict) and isinstance(b.get("dispatch"), dict):
            b["dispatch"].pop("id", None)
            b["dispatch"].pop("client", None)
    assert bodies[0] == bodies[1], bodies
    return answers[0].status_code, bodies[0]


# ------------------------------------------------------------------ trip / reset
async def test_trip_and_reset_are_the_same_on_both(both: dict[str, httpx.AsyncClient]) -> None:
    status, tripped = await _same(both, "POST", f"/assets/{IDS[2]}/trip")
    assert status == 200 and tripped["status"] == "fault" and "trip" in tripped["alarms"]
    status, answer = await _different_record_ids(both, "/dispatch", {"asset_id": IDS[2], "mw": 1})
    assert status == 422 and "tripped" in answer["detail"], answer
    status, reset = await _same(both, "POST", f"/assets/{IDS[2]}/reset")
    assert status == 200 and reset["status"] != "fault"


# ------------------------------------------------------------------ manual clock
async def test_step_then_telemetry_and_history_are_identical(
    both: dict[str, httpx.AsyncClient],
) -> None:
    for t in TOPOLOGIES:  # discharging for the whole step on both
        r = await both[t].post("/dispatch", json={"asset_id": IDS[0], "mw": 5, "duration_s": 3600})
        assert r.status_code == 201, (t, r.text)
    before = (await both["run"].get(f"/telemetry/{IDS[0]}")).json()
    status, stepped = await _same(both, "POST", "/sim/step", json={"seconds": 30})
    assert status == 200, stepped
    await _same(both, "POST", "/sim/step", json={"seconds": 5})
    for aid in IDS:
        _, t = await _same(both, "GET", f"/telemetry/{aid}")
        assert t["status"] != "offline"
    after = (await both["run"].get(f"/telemetry/{IDS[0]}")).json()
    # Discharging at 5 MW: SOC fell (and identically on both).
    assert after["soc_pct"] < before["soc_pct"], (before, after)
    _, hist = await _same(both, "GET", f"/telemetry/{IDS[0]}/history?limit=10")
    assert len(hist) == 10 and hist[0]["timestamp"] == after["timestamp"]
    _, clock = await _same(both, "GET", "/sim/clock")
    assert clock


async def test_step_validation_is_the_same_on_both(both: dict[str, httpx.AsyncClient]) -> None:
    for body in ({"seconds": -1}, {"seconds": "x"}, {}):
        status, _ = await _same(both, "POST", "/sim/step", json=body)
        assert status == 422, body


# ------------------------------------------------------------------ WebSocket, metrics
async def test_websocket_first_message(deployments: Deployments) -> None:
    first = {}
    for t in TOPOLOGIES:
        url = deployments.urls[t].replace("http://", "ws://") + "/ws/telemetry"
        async with websockets.connect(url, open_timeout=10) as ws:
            first[t] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert set(first[t]) >= {"tick", "sim_time_s", "timestamp", "snapshots"}, first[t]
        assert sorted(s["asset_id"] for s in first[t]["snapshots"]) == sorted(IDS)
    # The same state (both stepped alike): identical apart from the mirror's tick counter.
    for m in first.values():
        m.pop("tick")
    assert first["run"] == first["headend"]


async def test_metrics_answer(api: httpx.AsyncClient) -> None:
    r = await api.get("/metrics")
    assert r.status_code == 200 and "bess_" in r.text, r.text[:500]


async def test_health_answers(api: httpx.AsyncClient) -> None:
    r = await api.get("/health")
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ not forwarded yet
#: Harmless requests (each invalid: ``run`` refuses them, 422 or 405, and changes nothing).
_MUTATIONS = [
    ("POST", "/faults", {"kind": "no-such-fault"}),
    ("PUT", "/grid", {"frequency_hz": "x"}),
    ("POST", "/grid", {"frequency_hz": "x"}),
    ("POST", "/assets", {"name": 1}),
    ("POST", "/sites", {"name": 1}),
    ("POST", "/scenarios", {"no": "scenario"}),
]


@pytest.mark.parametrize(("method", "url", "body"), _MUTATIONS)
async def test_bad_mutations_answer_the_same_on_both(
    both: dict[str, httpx.AsyncClient], method: str, url: str, body: dict[str, Any]
) -> None:
    """Every mutating route is forwarded now (no 501 left): a bad request gets the same
    status and reason from the headend as from one process."""
    run = await both["run"].request(method, url, json=body)
    headend = await both["headend"].request(method, url, json=body)
    assert run.status_code != 501 and run.status_code < 500, run.text
    assert headend.status_code == run.status_code, (run.text, headend.text)
    assert headend.json() == run.json()


# ------------------------------------------------------------------ scenario API errors
async def test_scenario_api_errors_are_the_same_on_both(
    both: dict[str, httpx.AsyncClient],
) -> None:
    """No scenario has run in this module: current/stop are 404 on both; a file naming an
    unknown asset, a bad field or a bad step is the same 422 (step and field named)."""
    assert (await _same(both, "GET", "/scenarios/current"))[0] == 404
    assert (await _same(both, "POST", "/scenarios/current/stop"))[0] == 404
    base: dict[str, Any] = {"name": "parity", "tick_interval_s": 1}
    for steps in (
        [{"at": 0, "dispatch": {"asset": "NO-SUCH", "mw": 1}}],
        [{"at": 0, "expect": {"asset": "B1", "field": "no_field", "op": "==", "value": 0}}],
        [{"at": -1, "dispatch": {"asset": "B1", "mw": 1}}],
        [{"at": 0, "expect": {"asset": "B1", "field": "soc_pct", "op": "~=", "value": 0}}],
    ):
        status, body = await _same(both, "POST", "/scenarios", json={**base, "steps": steps})
        assert status == 422, body
    assert (await _same(both, "GET", "/scenarios/current"))[0] == 404  # nothing started


# ------------------------------------------------------------------ auth (BESS_API_TOKEN)
async def test_auth_is_the_same_on_both(deployments: Deployments) -> None:
    """With a token (the database run) a change without it, or with a wrong one, is the same
    401 on both and changes nothing; reads need none. Without a token (the memory run) no
    request is refused for its header."""
    headers: list[dict[str, str]] = [{}, {"Authorization": "Bearer wrong"}]
    answers: dict[str, list[tuple[int, Any]]] = {}
    for t in TOPOLOGIES:
        async with httpx.AsyncClient(base_url=deployments.urls[t], timeout=15) as c:
            before = (await c.get(f"/telemetry/{IDS[2]}")).json()
            got = []
            for h in headers:
                # mw "lots" fails validation, so even an accepted header changes nothing.
                r = await c.post("/dispatch", json={"asset_id": IDS[2], "mw": "lots"}, headers=h)
                got.append((r.status_code, r.json()))
                r = await c.post("/sim/step", json={"seconds": "x"}, headers=h)
                got.append((r.status_code, r.json()))
            r = await c.get(f"/telemetry/{IDS[2]}")
            assert r.status_code == 200 and r.json() == before, t  # nothing changed
            answers[t] = got
    assert answers["run"] == answers["headend"]
    expected = 401 if deployments.token is not None else 422
    assert [status for status, _ in answers["run"]] == [expected] * 4, answers["run"]
