"""Scale-out bench (DESIGN §15, docs/scale-out.md): the same fleet as ``bess-sim run`` and as
headend + 1 or 2 shard agents over NATS (127.0.0.1:4222), in one run, on this machine.

Per topology: REST dispatch round trip (sequential ``POST /dispatch``, p50/p99) and the age
of ``GET /telemetry`` (wall clock minus the snapshot's simulated timestamp at speed 1) above
its smallest value in the run: the phase within the 1-s tick (0–1 s in every topology) plus,
for the cluster, the trip through JetStream to the headend's mirror. Compare ratios within
one run only: the machine is shared. Not the issue-14 grid (10k/40k/100k assets over
1/2/4 agents): see docs/scale-out.md.

    python -m bench.cluster [--assets 500] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .common import PYTHON, free_port, port_block, summary_ms, write_fleet

NATS = "nats://127.0.0.1:4222"


def _wait_up(base: str, ids: list[str], timeout_s: float = 180.0) -> None:
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


def _measure(base: str, ids: list[str], samples: int) -> dict[str, object]:
    rng = random.Random(1)
    rtt, age = [], []
    with httpx.Client(base_url=base, timeout=10) as c:
        for _ in range(samples):
            aid = rng.choice(ids)
            t = time.perf_counter()
            r = c.post("/dispatch", json={"asset_id": aid, "mw": 0.0})
            rtt.append(time.perf_counter() - t)
            assert r.status_code == 201, r.text
            snap = c.get(f"/telemetry/{aid}").json()
            ts = datetime.fromisoformat(snap["timestamp"])
            age.append((datetime.now(UTC) - ts).total_seconds())
            time.sleep(rng.uniform(0, 0.05))
    # The absolute age includes the start-up time between --start-time and the first tick
    # (seconds with hundreds of Modbus ports), so only the spread above this run's smallest
    # age is compared: tick-to-headend transport plus the phase within the tick interval.
    floor = min(age)
    return {
        "dispatch_rtt_ms": summary_ms(rtt),
        "telemetry_age_over_min_ms": summary_ms([a - floor for a in age]),
    }


def _topology(
    name: str, assets: Path, ids: list[str], agents: int, samples: int
) -> dict[str, object]:
    http = free_port()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    common = ["--assets", str(assets), "--start-time", datetime.now(UTC).isoformat()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if agents == 0:
            argv = [PYTHON, "-m", "bess_sim", "run", "--http-port", str(http), *common]
            procs.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
        else:
            nats = ["--nats", NATS, "--nats-prefix", prefix]
            head = ["headend", "--http-port", str(http), *common, *nats]
            procs.append(
                subprocess.Popen([PYTHON, "-m", "bess_sim", *head], stderr=subprocess.DEVNULL)
            )
            for k in range(agents):
                argv = [
                    PYTHON,
                    "-m",
                    "bess_sim",
                    "agent",
                    "--shard",
                    f"{k}/{agents}",
                    *common,
                    *nats,
                ]
                procs.append(subprocess.Popen(argv, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{http}"
        _wait_up(base, ids)
        time.sleep(2)
        return {"topology": name, **_measure(base, ids, samples)}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if agents:
            asyncio.run(_delete_streams(prefix))


async def _delete_streams(prefix: str) -> None:
    from bess_sim.cluster.bus import Bus
    from bess_sim.cluster.wire import Subjects

    async with Bus(NATS, Subjects(prefix), "bench cleanup") as bus:
        await bus.delete_streams()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=500)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fleet(Path(tmp) / "assets.yaml", args.assets, port_block(args.assets))
        from .common import asset_uuid

        ids = [asset_uuid(i) for i in range(args.assets)]
        results = [
            _topology(name, path, ids, agents, args.samples)
            for name, agents in (("run (1 process)", 0), ("headend + 1 agent", 1),
                                 ("headend + 2 agents", 2))
        ]  # fmt: skip
    print(json.dumps({"assets": args.assets, "results": results}, indent=1))


if __name__ == "__main__":
    main()
