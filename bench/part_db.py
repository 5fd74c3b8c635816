"""Part 4: persistence into the local PostgreSQL.

- Writer throughput: telemetry rows/s through ``bess_sim.storage.Storage`` (publish → bounded
  buffer → background writer: binary COPY into a staging table + INSERT … ON CONFLICT), from
  publish of the first tick to the flush of the last row. Same-run baselines on identical rows
  (including the Snapshot → tuple conversion): a plain asyncpg ``executemany`` INSERT into a
  table of the same shape, and a bare ``copy_records_to_table`` (the ceiling).
- 10,000 assets at 1 Hz with the writer on: ``Runtime.tick`` (fleet + history + Modbus
  register refresh + storage publish) driven by the real-time clock; tick p99, overruns, and
  the event-loop lag (how late a 10 ms sleeper wakes: what a Modbus request would wait while
  the writer holds the loop).

A database of its own is created (``bench_<pid>``) and dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from .common import REGISTER_MAP, activate, fleet_config, ratio, summary_ms

ADMIN_URL = (
    os.environ.get("BENCH_DATABASE_URL")
    or os.environ.get("TEST_DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
START = datetime(2026, 1, 1, tzinfo=UTC)

_BASE_TABLE = """
CREATE TABLE {name} (
    asset_id uuid NOT NULL, ts timestamptz NOT NULL, soc_mwhr double precision NOT NULL,
    soc_pct double precision NOT NULL, current_mw double precision NOT NULL,
    setpoint_mw double precision NOT NULL, status text NOT NULL,
    alarms text[] NOT NULL DEFAULT '{{}}', current_mvar double precision,
    setpoint_mvar double precision, available_discharge_mw double precision,
    available_charge_mw double precision, temperature_c double precision,
    frequency_hz double precision, UNIQUE (asset_id, ts)
)"""


def _db_url(name: str) -> str:
    head, _, _ = ADMIN_URL.rpartition("/")
    return f"{head}/{name}"


async def _create_db(name: str) -> None:
    import asyncpg

    con = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()


async def _drop_db(name: str) -> None:
    import asyncpg

    con = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await con.close()


def _runtime(n: int) -> Any:
    from bess_sim.modbus.points import load_register_map
    from bess_sim.runtime import Runtime
    from bess_sim.settings import Settings

    settings = Settings(
        register_map=REGISTER_MAP,
        clock="manual",
        start_time=START,
        database_url=None,
        api_token=None,
        history_size=60,
    )
    rt = Runtime(
        settings,
        fleet_config(n, layout="gateway"),
        load_register_map(REGISTER_MAP),
        start_time=START,
    )
    activate(rt.fleet, 0.5)
    return rt


async def _throughput(url: str, n_assets: int, ticks: int, rounds: int) -> dict[str, Any]:
    import asyncpg

    from bess_sim.storage import Storage, StorageConfig, rows, schema

    rt = _runtime(n_assets)
    runs: list[dict[str, float]] = []
    # The same columns the writer stores (schema.TELEMETRY_COLUMNS), so the baselines move
    # the same bytes as the writer whenever the schema grows.
    cols = schema.TELEMETRY_COLUMNS
    placeholders = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    insert = f"INSERT INTO telemetry_executemany ({', '.join(cols)}) VALUES ({placeholders})"
    con = await asyncpg.connect(url, timeout=10)
    try:
        await con.execute(_BASE_TABLE.format(name="telemetry_executemany"))
        await con.execute(_BASE_TABLE.format(name="telemetry_copy"))
        async with Storage(StorageConfig(url, reset=True), rt.fleet, rt.metrics) as storage:
            for _ in range(rounds):
                batches = [rt.fleet.advance(1.0) for _ in range(ticks)]
                total = sum(len(b) for b in batches)
                # bess-sim writer
                t = time.perf_counter()
                for b in batches:
                    storage.publish(b)
                ok = await storage.flush(600.0)
                writer_s = time.perf_counter() - t
                if not ok:
                    raise RuntimeError("storage writer did not flush within 600 s")
                # plain executemany
                t = time.perf_counter()
                for b in batches:
                    await con.executemany(insert, [rows.telemetry_row(s) for s in b])
                many_s = time.perf_counter() - t
                # bare COPY (no staging, no conflict handling)
                t = time.perf_counter()
                for b in batches:
                    await con.copy_records_to_table(
                        "telemetry_copy", records=[rows.telemetry_row(s) for s in b], columns=cols
                    )
                copy_s = time.perf_counter() - t
                runs.append(
                    {
                        "rows": total,
                        "writer_rows_per_s": total / writer_s,
                        "executemany_rows_per_s": total / many_s,
                        "copy_rows_per_s": total / copy_s,
                    }
                )
            stored = await con.fetchval("SELECT count(*) FROM telemetry")
    finally:
        await con.close()

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    return {
        "assets": n_assets,
        "rows_per_round": runs[0]["rows"],
        "rounds": rounds,
        "writer_rows_per_s": med("writer_rows_per_s"),
        "executemany_rows_per_s": med("executemany_rows_per_s"),
        "copy_rows_per_s": med("copy_rows_per_s"),
        "writer/executemany": float(
            statistics.median(
                ratio(r["writer_rows_per_s"], r["executemany_rows_per_s"]) or 0.0 for r in runs
            )
        ),
        "writer/copy": float(
            statistics.median(
                ratio(r["writer_rows_per_s"], r["copy_rows_per_s"]) or 0.0 for r in runs
            )
        ),
        "rows_in_table": stored,
        "raw": runs,
    }


async def _ticking(url: str, n_assets: int, seconds: float) -> dict[str, Any]:
    from bess_sim.clock import RealTimeClock
    from bess_sim.metrics import Metrics
    from bess_sim.modbus.server import ModbusService
    from bess_sim.storage import Storage, StorageConfig

    rt = _runtime(n_assets)
    svc = ModbusService(rt.fleet, rt.register_map, "127.0.0.1", Metrics())
    rt.add_sink(svc)
    ticks: list[float] = []
    lags: list[float] = []

    def tick(dt_s: float) -> None:
        t = time.perf_counter()
        rt.tick(dt_s)
        ticks.append(time.perf_counter() - t)

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(max(loop.time() - t - 0.01, 0.0))

    async with Storage(StorageConfig(url, reset=True), rt.fleet, rt.metrics) as storage:
        rt.add_sink(storage)
        clock = RealTimeClock(1.0, 1.0)
        tasks = [asyncio.create_task(clock.run(tick)), asyncio.create_task(probe())]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = storage.pending_rows
        dropped = storage.dropped_rows
        t = time.perf_counter()
        await storage.flush(120.0)
        drain_s = time.perf_counter() - t
    return {
        "assets": n_assets,
        "seconds": seconds,
        "ticks": len(ticks),
        "tick": summary_ms(ticks),
        "overruns": clock.overruns,
        "loop_lag": summary_ms(lags),
        "pending_rows_at_end": pending,
        "dropped_rows": dropped,
        "drain_after_s": drain_s,
    }


async def _run(quick: bool) -> dict[str, Any]:
    name = f"bench_{os.getpid()}"
    await _create_db(name)
    url = _db_url(name)
    try:
        if quick:
            thr = await _throughput(url, 2000, 3, 1)
            tick = await _ticking(url, 10000, 2.5)
        else:
            thr = await _throughput(url, 10000, 10, 3)
            tick = await _ticking(url, 10000, 30.0)
    finally:
        await _drop_db(name)
    return {
        "database": ADMIN_URL.rpartition("/")[0] + "/<bench db>",
        "throughput": thr,
        "ticking_10k": tick,
    }


def run_db(quick: bool) -> dict[str, Any]:
    return asyncio.run(_run(quick))
