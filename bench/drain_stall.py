"""Event-loop stall while the writer drains a large backlog (issue 9 item 5).

A backlog of ``--rows`` telemetry rows (default 300 000, the size reported in the issue) is
published at once, as after a database outage; then, in the same run:
- *drain*: a 1 ms sleeper measures how late the loop wakes it (what a Modbus request or the
  tick would wait) while ``Storage`` writes the backlog;
- *idle*: the same sleeper for the same duration with nothing to write.
Reported per writer setting (rows per transaction / rows per COPY slice): lateness
p50/p99/max, the drain/idle ratios,
and the drain rate. Needs PostgreSQL (``BENCH_DATABASE_URL`` / ``TEST_DATABASE_URL``, default
the local test server); a database of its own is created and dropped.

    python -m bench.drain_stall [--rows 300000] [--assets 100] [--cases 20000/2000,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from .common import fleet_config, ratio, summary_ms
from .part_db import START, _create_db, _db_url, _drop_db


async def _lateness(seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    out: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        t = loop.time()
        await asyncio.sleep(0.001)
        out.append(max(loop.time() - t - 0.001, 0.0))
    return out


async def _one(
    url: str, n_assets: int, n_rows: int, batch_rows: int, slice_rows: int
) -> dict[str, Any]:
    from bess_sim.metrics import Metrics
    from bess_sim.sim import Fleet
    from bess_sim.storage import Storage, StorageConfig

    fleet = Fleet(fleet_config(n_assets, layout="gateway"), START)
    cfg = StorageConfig(
        url,
        reset=True,
        batch_rows=batch_rows,
        slice_rows=slice_rows,
        buffer_rows=n_rows + n_assets,
    )
    async with Storage(cfg, fleet, Metrics()) as storage:
        for _ in range(n_rows // n_assets):  # no await: the writer cannot start meanwhile
            storage.publish(fleet.advance(1.0))
        backlog = storage.pending_rows
        t = time.perf_counter()
        flush = asyncio.create_task(storage.flush(600.0))
        lags: list[float] = []
        loop = asyncio.get_running_loop()
        while not flush.done():
            t0 = loop.time()
            await asyncio.sleep(0.001)
            lags.append(max(loop.time() - t0 - 0.001, 0.0))
        drain_s = time.perf_counter() - t
        ok = await flush
        idle = await _lateness(drain_s)
    drain_sum, idle_sum = summary_ms(lags), summary_ms(idle)
    return {
        "batch_rows": batch_rows,
        "slice_rows": slice_rows,
        "backlog_rows": backlog,
        "drained": ok,
        "drain_s": drain_s,
        "rows_per_s": backlog / drain_s if drain_s else None,
        "drain_lateness_ms": drain_sum,
        "idle_lateness_ms": idle_sum,
        "p99_ratio": ratio(drain_sum.get("p99_ms"), idle_sum.get("p99_ms")),
        "max_ratio": ratio(drain_sum.get("max_ms"), idle_sum.get("max_ms")),
    }


async def _run(n_assets: int, n_rows: int, cases: list[tuple[int, int]]) -> list[dict[str, Any]]:
    name = f"bench_drain_{os.getpid()}"
    await _create_db(name)
    try:
        return [await _one(_db_url(name), n_assets, n_rows, b, s) for b, s in cases]
    finally:
        await _drop_db(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument(
        "--cases",
        default="20000/2000,2000/2000,50000/50000",
        help="batch_rows/slice_rows pairs, comma-separated (50000/50000 = the old writer)",
    )
    args = ap.parse_args()
    cases = [(int(b), int(s)) for b, s in (c.split("/") for c in args.cases.split(","))]
    print(json.dumps(asyncio.run(_run(args.assets, args.rows, cases)), indent=2))


if __name__ == "__main__":
    main()
