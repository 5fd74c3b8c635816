"""Cost of fault injection on the Modbus request path (DESIGN §11): ``python -m bench.faults_hook``.

One in-process simulator (manual clock, two units on one port); a raw client pipelines bursts
of FC04 reads to unit 1 and measures requests/s in four alternating conditions:

- ``none``      — no fault at all (the per-port hook getter returns None);
- ``other-unit``— ``modbus_offline`` on unit 2: every unit-1 request goes through the hook and
                  its decision (None → served normally);
- ``view``      — ``value_override`` on unit 1 (registers differ, no wire effect);
- ``latency``   — ``modbus_latency`` of 1 µs on unit 1 (the HookAction path: a sleep each).

Same-run ratios against ``none`` only; nothing is asserted (DESIGN rule).
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bess_sim.config import load_assets
from bess_sim.faults import FaultRequest
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings

from .common import ROOT, free_port

BURST = 2000
ROUNDS = 7
A1 = "aaaaaaaa-0000-4000-8000-000000000001"
A2 = "aaaaaaaa-0000-4000-8000-000000000002"
SITE = "11111111-1111-4111-8111-111111111111"


def _fleet(port: int) -> dict[str, Any]:
    asset = {"site_id": SITE, "capacity_mwhr": 10, "max_mw": 5, "min_mw": -5,
             "ramp_rate_mw_per_min": 60, "efficiency": 0.9}  # fmt: skip
    return {
        "sites": [{"id": SITE, "name": "S"}],
        "assets": [
            {**asset, "id": A1, "name": "U1", "modbus": {"port": port, "unit_id": 1}},
            {**asset, "id": A2, "name": "U2", "modbus": {"port": port, "unit_id": 2}},
        ],
    }


async def _burst(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    frames = b"".join(
        struct.pack(">HHHBBHH", tid, 0, 6, 1, 4, 0, 22) for tid in range(1, BURST + 1)
    )
    t0 = time.perf_counter()
    writer.write(frames)
    got = 0
    while got < BURST:
        head = await reader.readexactly(7)
        await reader.readexactly(struct.unpack(">H", head[4:6])[0] - 1)
        got += 1
    elapsed = time.perf_counter() - t0
    writer.close()
    return BURST / elapsed


async def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "assets.yaml"
        path.write_text(yaml.safe_dump(_fleet(port)))
        s = Settings(assets=path, register_map=ROOT / "register_map.yaml", http_port=0,
                     clock="manual", log_level="warning")  # fmt: skip
        rt = Runtime(s, load_assets(path), load_register_map(s.register_map))
        conditions: dict[str, dict[str, Any] | None] = {
            "none": None,
            "other-unit": {"kind": "modbus_offline", "asset_id": A2},
            "view": {
                "kind": "value_override",
                "asset_id": A1,
                "params": {"field": "soc_pct", "offset": 1},
            },
            "latency": {"kind": "modbus_latency", "asset_id": A1, "params": {"delay_ms": 0.001}},
        }
        rates: dict[str, list[float]] = {k: [] for k in conditions}
        async with rt:
            await _burst(port)  # warm-up
            for _ in range(ROUNDS):
                for name, body in conditions.items():
                    fid = None if body is None else rt.faults.add(FaultRequest(**body)).id
                    rates[name].append(await _burst(port))
                    if fid is not None:
                        rt.faults.end(fid)
        base = statistics.median(rates["none"])
        print(f"{'condition':<12} {'median req/s':>12} {'vs none':>8}")
        for name, values in rates.items():
            med = statistics.median(values)
            print(f"{name:<12} {med:>12.0f} {med / base:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
