"""pymodbus async client load generator: ``python -m bench.pyclient -t TARGETS -c N -d S``.

The Python counterpart of bench/c/mbload.c (closed loop only): N ``AsyncModbusTcpClient``
connections, each reading 10 input registers (FC04) in a loop, one request in flight per
connection. Bounded by time (warm-up + duration) and by ``--max-requests``. Prints one JSON
line. At more than a few connections it is limited by its own CPU (one Python core), which
the report says: the C generator is the one that finds the servers' ceilings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from .common import percentile


def read_targets(path: str) -> list[tuple[int, int]]:
    """(port, unit) per line of a targets file."""
    return [
        (int(parts[0]), int(parts[1]))
        for parts in (line.split() for line in Path(path).read_text().splitlines())
        if len(parts) == 2
    ]


async def run(args: argparse.Namespace, targets: list[tuple[int, int]]) -> dict[str, Any]:
    from pymodbus.client import AsyncModbusTcpClient

    clients = []
    for i in range(args.conns):
        port, unit = targets[i % len(targets)]
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        if not await client.connect():
            raise SystemExit(f"pyclient: cannot connect to 127.0.0.1:{port}")
        clients.append((client, unit))
    t0 = time.perf_counter()
    measure_from = t0 + args.warmup
    measure_to = measure_from + args.duration
    lat: list[float] = []
    errors = 0
    budget = [args.max_requests]

    async def worker(client: Any, unit: int) -> None:
        nonlocal errors
        while budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            if start >= measure_to:
                return
            rr = await client.read_input_registers(args.address, count=args.count, device_id=unit)
            done = time.perf_counter()
            if start >= measure_from and done <= measure_to:
                if rr.isError() or len(rr.registers) != args.count:
                    errors += 1
                else:
                    lat.append(done - start)

    await asyncio.wait_for(
        asyncio.gather(*(worker(c, u) for c, u in clients)), args.warmup + args.duration + 30
    )
    for client, _ in clients:
        client.close()
    lat.sort()
    return {
        "conns": args.conns,
        "mode": "closed",
        "duration_s": args.duration,
        "ok": len(lat),
        "errors": errors,
        "rps": len(lat) / args.duration,
        "p50_us": percentile(lat, 50) * 1e6,
        "p99_us": percentile(lat, 99) * 1e6,
        "p999_us": percentile(lat, 99.9) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pyclient")
    ap.add_argument("-t", "--targets", required=True, help='file of "PORT UNIT" lines')
    ap.add_argument("-c", "--conns", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=1.0)
    ap.add_argument("-w", "--warmup", type=float, default=0.2)
    ap.add_argument("-a", "--address", type=int, default=0)
    ap.add_argument("-n", "--count", type=int, default=10)
    ap.add_argument("--max-requests", type=int, default=5_000_000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(run(args, read_targets(args.targets)))), flush=True)


if __name__ == "__main__":
    main()
