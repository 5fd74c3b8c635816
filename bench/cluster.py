"""Scale-out bench (issue 14, DESIGN §15, docs/scale-out.md): for each fleet size, the same
assets.yaml as ``bess-sim run`` and as headend + K shard agents over NATS, at 1 Hz, one
topology after the other in one run, on this machine.

NATS: by default a nats-server of the bench's own (free port, JetStream store in a temporary
directory, deleted afterwards) with ``max_payload`` 64 MB: an agent publishes one telemetry
message per tick of ~210 B per asset, so past ~5,000 assets per agent it exceeds NATS's
default 1 MB limit (docs/scale-out.md, "Not done"). ``--nats URL`` uses a running server
instead; grid cells whose message would exceed its ``max_payload`` are reported as errors.
Its store is in the temporary directory (``TMPDIR``): ~20 MB/s at 100,000 assets while a
topology runs, deleted after each.

Per topology, over ``--seconds`` of steady running:

- **agent tick p99**: wall time of each tick of each agent (carried by the agents'
  heartbeats, ``tick_ms``; agents serve no HTTP) — the worst agent's p99; for ``run`` the
  ``bess_tick_duration_seconds`` histogram of /metrics (a bucket bound, shown as ``≤``);
- **ingest rows/s**: snapshots the headend (or the single process) took in per second
  (``bess_telemetry_rows`` of /metrics), beside the offered rows/s, and the headend's CPU
  share (``/proc``): rows/s ÷ CPU share is its ingest capacity estimate;
- **telemetry lag p99**: arrival time of ``/ws/telemetry?asset_id=`` messages (one asset per
  shard) minus their simulated timestamp, above the smallest such age of that shard in the run
  (each process's first tick fixes its own offset): how much later than its best a tick shows;
- **dispatch p99**: sequential ``POST /dispatch`` round trip;
- after that window, the **forwarded commands** (faults, grid, registration;
  ``bench/cluster_commands.py``), ``--command-rounds`` sequential rounds, in a second table;
- with ``--database-url``: **db rows/s**, rows the database writer committed per second
  (``bess_db_written_rows``; the headend's come from its durable consumer). The database is
  reset (``--reset-db``) for each topology.

The machine is shared: compare within one run only. 100,000 assets at 1 Hz is ~20 MB/s of
telemetry JSON into JetStream (docs/scale-out.md, Sizing): needs the disk and the time.

    python -m bench.cluster --assets 10000,40000,100000 --agents 1,2,4 --seconds 20
    python -m bench.cluster --assets 200 --agents 1,2 --seconds 5        # smoke size
    python -m bench.cluster --assets 10000 --agents 2 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import re
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

from . import cluster_commands
from .common import PYTHON, asset_uuid, cpu_seconds, fleet_data, free_port, port_block, summary_ms

NATS = "nats://127.0.0.1:4222"  # replaced by main(): the bench's own server or --nats
UNITS_PER_PORT = 100
#: Telemetry bytes per asset in an agent's message (positional JSON row; measured ~207 B).
ROW_BYTES = 215
#: The own server's limits: NATS's largest max_payload, and room for a few such messages
#: queued to each subscriber.
MAX_PAYLOAD = 64 * 1024 * 1024
MAX_PENDING = 512 * 1024 * 1024


@contextlib.contextmanager
def own_nats_server(tmp: Path) -> Iterator[str]:
    """A nats-server with JetStream for this run only; yields its URL."""
    port = free_port()
    conf = tmp / "nats.conf"
    conf.write_text(
        f"listen: 127.0.0.1:{port}\nmax_payload: {MAX_PAYLOAD}\nmax_pending: {MAX_PENDING}\n"
        f'jetstream {{ store_dir: "{tmp / "js"}" }}\n'
    )
    proc = subprocess.Popen(
        ["nats-server", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server -c {conf} did not start")
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _max_payload(url: str) -> int:
    from bess_sim.cluster.bus import Bus
    from bess_sim.cluster.wire import Subjects

    async with Bus(url, Subjects("bench"), "bench probe") as bus:
        return int(bus.nc.max_payload)


def sharded_fleet(path: Path, n_assets: int, groups: int) -> Path:
    """assets.yaml of ``n_assets`` with 100 unit ids per Modbus port (a site gateway: 10,000
    assets on 100 ports, 100,000 on 1,000), laid out so all units of one port belong to one
    shard for every agent count dividing ``groups``: asset i goes to port group i mod
    ``groups`` (and shard = i mod N, a function of i mod groups when N divides groups).
    Without this, agents on one host would clash on a shared port (docs/scale-out.md)."""
    per_group = math.ceil(math.ceil(n_assets / groups) / UNITS_PER_PORT)
    base = port_block(per_group * groups)
    data = fleet_data(n_assets, base)
    for i, a in enumerate(data["assets"]):
        g, j = i % groups, i // groups
        a["modbus"] = {
            "port": base + g * per_group + j // UNITS_PER_PORT,
            "unit_id": 1 + j % UNITS_PER_PORT,
        }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _wait_up(base: str, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base, timeout=10) as c:
        while time.monotonic() < deadline:
            try:
                if all(c.get(f"/telemetry/{a}").json()["status"] != "offline" for a in ids):
                    return
            except (httpx.TransportError, KeyError, ValueError):
                pass
            time.sleep(0.5)
    raise RuntimeError(f"{base}: fleet not up within {timeout_s} s")


_METRIC = re.compile(r"^(bess_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN|\+Inf)$", re.M)


def _metrics(text: str) -> dict[str, float]:
    return {m[1] + (m[2] or ""): float(m[3]) for m in _METRIC.finditer(text)}


def _hist_p99_ms(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    """Upper bound of the bucket holding the 99th percentile of the observations between two
    scrapes (a Prometheus histogram keeps counts per bucket, not samples)."""
    buckets = []
    for key, value in after.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            buckets.append((float(m[1]), value - before.get(key, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = 0.99 * buckets[-1][1]
    for le, count in buckets:
        if count >= target:
            return le * 1e3
    return None


async def _lag_listener(url: str, ages: list[float], stop: asyncio.Event) -> None:
    async with websockets.connect(url, open_timeout=30, max_size=None) as ws:
        await ws.recv()  # the current state on connect: not a tick
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = datetime.now(UTC)
            ts = datetime.fromisoformat(json.loads(msg)["timestamp"])
            ages.append((now - ts).total_seconds())


async def _heartbeats(prefix: str, ticks: dict[int, list[float]], stop: asyncio.Event) -> None:
    from bess_sim.cluster import wire
    from bess_sim.cluster.bus import Bus

    async def on_beat(data: bytes) -> None:
        hb = wire.loads(data)
        ticks.setdefault(int(hb["shard"]), []).extend(hb.get("tick_ms", []))

    async with Bus(NATS, wire.Subjects(prefix), "bench heartbeats") as bus:
        await bus.subscribe(bus.subjects.heartbeat("*"), on_beat)
        await stop.wait()


async def _dispatches(
    base: str, ids: list[str], rtt: list[float], failed: list[str], stop: asyncio.Event
) -> None:
    """Dispatches one after the other; a 503 (an agent too busy to answer within the
    headend's command timeout) is counted, not fatal: it is what an EMS would meet."""
    rng = random.Random(1)
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        while not stop.is_set():
            t = time.perf_counter()
            r = await c.post("/dispatch", json={"asset_id": rng.choice(ids), "mw": 0.0})
            if r.status_code == 503:
                failed.append(r.text)
            elif r.status_code != 201:
                raise RuntimeError(f"dispatch answered {r.status_code}: {r.text}")
            else:
                rtt.append(time.perf_counter() - t)
            await asyncio.sleep(rng.uniform(0, 0.05))


async def _measure(
    base: str,
    ids: list[str],
    agents: int,
    prefix: str,
    seconds: float,
    head_pid: int,
    command_rounds: int,
) -> dict[str, Any]:
    shards = max(agents, 1)
    stop = asyncio.Event()
    ages: dict[int, list[float]] = {k: [] for k in range(shards)}
    ticks: dict[int, list[float]] = {}
    rtt: list[float] = []
    failed: list[str] = []
    ws = base.replace("http://", "ws://")
    tasks = [
        asyncio.create_task(_lag_listener(f"{ws}/ws/telemetry?asset_id={ids[k]}", ages[k], stop))
        for k in range(shards)  # asset k belongs to shard k (index mod N)
    ]
    if agents:
        tasks.append(asyncio.create_task(_heartbeats(prefix, ticks, stop)))
    await asyncio.sleep(1.5)  # listeners connected, heartbeats subscribed
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        m0 = _metrics((await c.get("/metrics")).text)
        cpu0, t0 = cpu_seconds(head_pid), time.monotonic()
        for v in ticks.values():
            v.clear()
        tasks.append(asyncio.create_task(_dispatches(base, ids, rtt, failed, stop)))
        await asyncio.sleep(seconds)
        m1 = _metrics((await c.get("/metrics")).text)
        cpu1, t1 = cpu_seconds(head_pid), time.monotonic()
    stop.set()
    for t in tasks:
        await t  # a listener or the dispatch loop that failed fails the topology
    elapsed = t1 - t0
    rows = m1.get("bess_telemetry_rows_total", 0.0) - m0.get("bess_telemetry_rows_total", 0.0)
    written = m1.get("bess_db_written_rows_total", 0.0) - m0.get("bess_db_written_rows_total", 0.0)
    lag = [a - min(v) for v in ages.values() if v for a in v]
    out: dict[str, Any] = {
        "ingest_rows_per_s": rows / elapsed,
        "offered_rows_per_s": len(ids) / 1.0,
        "head_cpu_share": (cpu1 - cpu0) / elapsed,
        "db_rows_per_s": written / elapsed if "bess_db_written_rows_total" in m1 else None,
        "telemetry_lag_ms": summary_ms(lag),
        "dispatch_rtt_ms": summary_ms(rtt),
        "dispatch_503": len(failed),
        "dispatch_503_example": failed[0][:200] if failed else None,
    }
    if command_rounds:
        out["commands_ms"] = await cluster_commands.measure(
            base, ids, rounds=command_rounds, budget_s=max(seconds, 10.0)
        )
    if agents:
        per_agent = {k: summary_ms([t / 1e3 for t in v]) for k, v in sorted(ticks.items())}
        out["agent_tick_ms"] = per_agent
        out["tick_p99_ms"] = max((s["p99_ms"] for s in per_agent.values()), default=None)
        out["tick_p99_bound"] = False
    else:
        out["tick_p99_ms"] = _hist_p99_ms(m0, m1, "bess_tick_duration_seconds")
        out["tick_p99_bound"] = True
    return out


def _topology(
    assets: Path, ids: list[str], agents: int, seconds: float, db: str | None, rounds: int
) -> dict[str, Any]:
    http = free_port()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    common = ["--assets", str(assets), "--start-time", datetime.now(UTC).isoformat()]
    # The database belongs to the HTTP process (run or headend); agents never connect.
    with_db = ["--database-url", db, "--reset-db"] if db else []
    procs: list[subprocess.Popen[bytes]] = []
    bess = [PYTHON, "-m", "bess_sim"]
    try:
        if agents == 0:
            argv = [*bess, "run", "--http-port", str(http), *common, *with_db]
            procs.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
        else:
            nats = ["--nats", NATS, "--nats-prefix", prefix]
            head = [*bess, "headend", "--http-port", str(http), *common, *nats, *with_db]
            procs.append(subprocess.Popen(head, stderr=subprocess.DEVNULL))
            for k in range(agents):
                argv = [*bess, "agent", "--shard", f"{k}/{agents}", *common, *nats]
                procs.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{http}"
        # A sample per shard, not every asset (100,000 GETs would take longer than the run).
        probe = ids[: max(agents, 1) * 4] + ids[-max(agents, 1) :]
        _wait_up(base, probe, timeout_s=120 + len(ids) / 100)
        time.sleep(2)
        out = asyncio.run(_measure(base, ids, agents, prefix, seconds, procs[0].pid, rounds))
        if not db:
            out["db_rows_per_s"] = None  # the counter exists (at 0) without a database
        return out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if agents:
            asyncio.run(_delete_streams(prefix))


async def _delete_streams(prefix: str) -> None:
    from bess_sim.cluster.bus import Bus
    from bess_sim.cluster.wire import Subjects

    async with Bus(NATS, Subjects(prefix), "bench cleanup") as bus:
        await bus.delete_streams()


def _name(agents: int) -> str:
    return "run (1 process)" if agents == 0 else f"headend + {agents} agent{'s' * (agents > 1)}"


def _ms(v: float | None, bound: bool = False) -> str:
    if v is None or v != v:
        return "–"
    return f"{'≤' if bound else ''}{v:.1f}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| assets | topology | tick p99 ms | ingest rows/s (offered) | head CPU | "
        "lag p99 ms | dispatch p50 / p99 ms | db rows/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['assets']} | {r['topology']} | error: {r['error']} ||||||")
            continue
        d = r["dispatch_rtt_ms"]
        lines.append(
            f"| {r['assets']} | {r['topology']} | {_ms(r['tick_p99_ms'], r['tick_p99_bound'])} | "
            f"{r['ingest_rows_per_s']:,.0f} ({r['offered_rows_per_s']:,.0f}) | "
            f"{100 * r['head_cpu_share']:.0f} % | {_ms(r['telemetry_lag_ms']['p99_ms'])} | "
            f"{_ms(d['p50_ms'])} / {_ms(d['p99_ms'])}"
            f"{_failed(r.get('dispatch_503', 0), len_ok=d.get('n', 0))} | "
            f"{_rate(r.get('db_rows_per_s'))} |"
        )
    return "\n".join(lines)


def _failed(n: int, len_ok: int) -> str:
    return f" ({n} of {n + len_ok} answered 503)" if n else ""


def _rate(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers expected, got {text!r}")
    return values


def _grid(args: argparse.Namespace, groups: int, max_payload: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for n in args.assets:
        with tempfile.TemporaryDirectory() as tmp:
            path = sharded_fleet(Path(tmp) / "assets.yaml", n, groups)
            ids = [asset_uuid(i) for i in range(n)]
            for agents in ([] if args.no_single else [0]) + args.agents:
                row: dict[str, Any] = {"assets": n, "agents": agents, "topology": _name(agents)}
                message_b = n // max(agents, 1) * ROW_BYTES
                try:
                    if agents and message_b > max_payload:
                        raise RuntimeError(
                            f"a telemetry message (~{message_b / 1e6:.1f} MB) exceeds the "
                            f"server's max_payload ({max_payload / 1e6:.1f} MB)"
                        )
                    row |= _topology(
                        path, ids, agents, args.seconds, args.database_url, args.command_rounds
                    )
                except Exception as exc:  # one failed topology does not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"
                results.append(row)
                print(table(results[-1:]).splitlines()[-1], flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--assets", type=_ints, default=[500], help="fleet sizes, e.g. 10000,40000")
    ap.add_argument("--agents", type=_ints, default=[1, 2], help="agent counts, e.g. 1,2,4")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per topology")
    ap.add_argument("--no-single", action="store_true", help="skip the bess-sim run baseline")
    ap.add_argument(
        "--command-rounds",
        type=int,
        default=20,
        help="rounds of the forwarded commands after the window (0: none)",
    )
    ap.add_argument("--output", type=Path, help="also write the results as JSON here")
    ap.add_argument("--nats", help="use this NATS server (default: one of the bench's own)")
    ap.add_argument(
        "--database-url",
        help="PostgreSQL database for run and headend: TRUNCATED per topology (use a scratch one)",
    )
    args = ap.parse_args()
    # The bench's own NATS connections (heartbeats, cleanup) log their closing: not news here.
    logging.getLogger("bess_sim.cluster").setLevel(logging.ERROR)
    groups = math.lcm(*args.agents)
    for n in args.assets:
        if n % groups:
            ap.error(f"--assets {n}: must be a multiple of {groups} (equal shards)")
    global NATS
    with contextlib.ExitStack() as stack:
        if args.nats:
            NATS = args.nats
        else:
            store = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nats-"))
            NATS = stack.enter_context(own_nats_server(Path(store)))
        results = _grid(args, groups, asyncio.run(_max_payload(NATS)))
    doc = {"seconds": args.seconds, "results": results}
    if args.output is not None:
        args.output.write_text(json.dumps(doc, indent=1))
    print()
    print(table(results))
    if args.command_rounds:
        print()
        print(cluster_commands.table(results))
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
