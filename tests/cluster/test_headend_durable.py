"""Headend (with PostgreSQL) SIGKILLed while its agent keeps ticking, then restarted (DESIGN
§15): the telemetry published while it was down is written afterwards from the durable
consumer, so every tick's row of every asset is in the database exactly once, with no gap;
the mirror meanwhile shows the newest tick, never the replayed backlog. A dispatch record
made while it was down (a Modbus write to the agent) reaches its log and database too."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import websockets
from pymodbus.client import AsyncModbusTcpClient

from tests.cluster.conftest import START_TIMEOUT_S, Cluster, asset_id
from tests.cluster.test_multiprocess import regs_f32
from tests.storage.conftest import TcpProxy, fresh_database, server_url, with_hostport

pytestmark = pytest.mark.db
IDS = [asset_id(i) for i in range(1, 5)]
TICK_S = 0.2


async def _rows(db: str) -> dict[str, list[datetime]]:
    con = await asyncpg.connect(db)
    try:
        out = {}
        for aid in IDS:
            found = await con.fetch("SELECT ts FROM telemetry WHERE asset_id = $1 ORDER BY ts", aid)
            out[aid] = [r["ts"] for r in found]
        return out
    finally:
        await con.close()


async def test_headend_killed_writes_the_missed_ticks_once(cluster: Cluster) -> None:
    async with (
        fresh_database(server_url()) as db,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as http,
    ):
        tick = ("--tick-interval", str(TICK_S))
        headend = ("headend", "--http-port", str(cluster.http_port), "--database-url", db, *tick)
        cluster.start("headend", *headend)
        cluster.start("agent0", "agent", "--shard", "0/1", *tick)
        await cluster.wait_online(http, IDS)
        await asyncio.sleep(1.5)

        cluster.procs["headend"].send_signal(signal.SIGKILL)
        cluster.procs["headend"].wait(timeout=10)
        killed_at = datetime.fromisoformat((await _agent_ts(cluster)) or "1970-01-01T00:00:00Z")
        # A setpoint written over Modbus while no headend runs: its record is only in the stream.
        mb = AsyncModbusTcpClient("127.0.0.1", port=cluster.modbus_ports[1], timeout=5)
        assert await mb.connect()
        try:
            assert not (await mb.write_registers(0, regs_f32(-7.5), device_id=1)).isError()
        finally:
            mb.close()
        await asyncio.sleep(3)  # ~15 ticks published with no headend to write them

        cluster.start("headend", *headend)
        restarted = time.monotonic()
        ws_url = cluster.base_url.replace("http://", "ws://") + f"/ws/telemetry?asset_id={IDS[0]}"
        ws_task = asyncio.create_task(_ws_stamps(ws_url, 3.0))
        await cluster.wait_online(http, IDS)
        # The mirror shows the newest tick at once, and never steps back while the backlog
        # replays into the database.
        seen = [
            datetime.fromisoformat((await http.get(f"/telemetry/{IDS[0]}")).json()["timestamp"])
            for _ in range(10)
        ]
        assert seen == sorted(seen), seen
        assert seen[0] > killed_at + timedelta(seconds=2), (
            seen[0],
            killed_at,
        )
        # WebSocket clients get the live ticks only, in order: not the replayed backlog.
        stamps = await ws_task
        assert stamps == sorted(set(stamps)) and stamps[0] > killed_at, (stamps, killed_at)
        assert len(stamps) <= 3.0 / TICK_S + 3, len(stamps)
        # Every row passed to the live sinks (WebSocket, history ring) is counted: only the
        # last stored tick's and those since, never the backlog the database gets.
        metrics = (await http.get("/metrics")).text
        live = float(metrics.split("\nbess_telemetry_rows_total ")[1].split()[0])
        ticks = (time.monotonic() - restarted) / TICK_S + 2
        assert 0 < live <= ticks * len(IDS), (live, metrics[:300])
        await asyncio.sleep(1)
        cluster.procs["agent0"].terminate()
        cluster.procs["agent0"].wait(timeout=30)
        last = (await http.get(f"/telemetry/{IDS[0]}")).json()["timestamp"]

        # Messages in flight when the headend was killed come back after the ack wait (10 s).
        deadline = time.monotonic() + 60
        while True:
            rows = await _rows(db)
            complete = all(
                ts and ts[-1] == datetime.fromisoformat(last) for ts in rows.values()
            ) and all(
                {b - a for a, b in itertools.pairwise(ts)} == {timedelta(seconds=TICK_S)}
                for ts in rows.values()
            )
            if complete or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        for aid, ts in rows.items():
            steps = sorted({b - a for a, b in itertools.pairwise(ts)})
            # Consecutive simulated ticks (a lost row shows as a 0.4 s step), none twice.
            assert steps == [timedelta(seconds=TICK_S)], (aid, steps[:5], cluster.log("headend"))
            assert len(ts) == len(set(ts))
            assert ts[-1] == datetime.fromisoformat(last), (aid, ts[-1], last)
            # The rows span the outage: ticks from before the kill to after the restart.
            assert ts[0] < killed_at - timedelta(seconds=1) and len(ts) > 30, (aid, len(ts))
        assert "database ingest from durable consumer" in cluster.log("headend")

        recs = (await http.get("/dispatches", params={"asset_id": IDS[1]})).json()
        assert [(r["source"], r["mw"]) for r in recs] == [("modbus", -7.5)], recs
        con = await asyncpg.connect(db)
        try:
            found = await con.fetch("SELECT source, mw, status FROM dispatches")
        finally:
            await con.close()
        assert [(r["source"], r["mw"]) for r in found] == [("modbus", -7.5)], found


async def _ws_stamps(url: str, seconds: float) -> list[datetime]:
    """Timestamps of the WebSocket tick messages for ``seconds`` from the first connection
    that succeeds (the headend is still starting when this begins)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            ws = await websockets.connect(url, open_timeout=5)
            break
        except (OSError, websockets.exceptions.InvalidHandshake):
            assert time.monotonic() < deadline, "headend WebSocket never answered"
            await asyncio.sleep(0.05)
    stamps = []
    async with ws:
        # The state on connecting (while no agent has reported yet: placeholders stamped with
        # the headend's own start) is not a tick.
        await asyncio.wait_for(ws.recv(), 10)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            stamps.append(datetime.fromisoformat(json.loads(msg)["timestamp"]))
    return stamps


async def _agent_ts(cluster: Cluster) -> str | None:
    """The agent's newest published tick, read from the stream (no headend running)."""
    from bess_sim.cluster import wire
    from bess_sim.cluster.bus import Bus

    async with Bus(cluster.nats_url, wire.Subjects(cluster.prefix), "test") as bus:
        s = bus.subjects
        data = await bus.last_message(s.telemetry_stream, s.telemetry(0, 0))
    if data is None:
        return None
    return wire.decode_snapshots(data).snapshots[0].timestamp.isoformat()


async def test_database_outage_longer_than_the_buffer_loses_no_row(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The headend's storage buffer holds 40 rows (10 ticks of 4 assets); the database is cut
    for ~20 ticks. A single process would drop rows past the buffer; the headend's ingest
    stops fetching at half of it and takes the rest from the stream once the database is back."""
    monkeypatch.setenv("BESS_DB_BUFFER_ROWS", "40")
    async with fresh_database(server_url()) as db:
        parts = urlsplit(db)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        try:
            await _outage(cluster, with_hostport(db, "127.0.0.1", proxy.port), db, proxy)
        finally:
            await proxy.close()


async def _outage(cluster: Cluster, via_proxy: str, db: str, proxy: TcpProxy) -> None:
    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as http:
        tick = ("--tick-interval", str(TICK_S))
        cluster.start(
            "headend", "headend", "--http-port", str(cluster.http_port),
            "--database-url", via_proxy, *tick,
        )  # fmt: skip
        cluster.start("agent0", "agent", "--shard", "0/1", *tick)
        await cluster.wait_online(http, IDS)
        await asyncio.sleep(1)
        await proxy.cut()
        await asyncio.sleep(4)  # ~20 ticks = 80 rows: twice the buffer
        # The mirror follows the agent while the database is away.
        t0 = datetime.fromisoformat((await http.get(f"/telemetry/{IDS[0]}")).json()["timestamp"])
        await asyncio.sleep(0.6)
        t1 = datetime.fromisoformat((await http.get(f"/telemetry/{IDS[0]}")).json()["timestamp"])
        assert t1 > t0, (t0, t1)
        await proxy.restore()
        await asyncio.sleep(2)
        cluster.procs["agent0"].terminate()
        cluster.procs["agent0"].wait(timeout=30)
        last = datetime.fromisoformat((await http.get(f"/telemetry/{IDS[0]}")).json()["timestamp"])
        deadline = time.monotonic() + 60
        while True:
            rows = await _rows(db)
            if all(ts and ts[-1] == last for ts in rows.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        for aid, ts in rows.items():
            steps = sorted({b - a for a, b in itertools.pairwise(ts)})
            assert steps == [timedelta(seconds=TICK_S)], (aid, steps[:5], cluster.log("headend"))
            assert ts[-1] == last and len(ts) > 30, (aid, len(ts), ts[-1], last)
        metrics = (await http.get("/metrics")).text
        assert "bess_db_dropped_rows_total 0.0" in metrics, [
            line for line in metrics.splitlines() if "dropped" in line
        ]
