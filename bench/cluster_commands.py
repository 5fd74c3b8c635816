"""The forwarded commands of the scale-out bench (bench/cluster.py, docs/scale-out.md): on a
headend each is a NATS request to the owning agent (faults, registration) or to every agent
(``POST /grid``); on ``run`` the same route answers in-process. Measured after the telemetry
window, one request after the other, so they do not disturb its numbers:

- ``POST /faults`` (a derate on one asset) and ``DELETE /faults/{id}`` of it;
- ``POST /grid`` (50 Hz: what the fleet already has, so nothing moves);
- ``POST /assets`` (a new asset on a port of its own: the agent binds it) and
  ``DELETE /assets/{id}`` of it.

A 503 (an agent too busy to answer within the headend's command timeout) is counted, as for
dispatch; any other unexpected answer fails the topology.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from .common import free_port, summary_ms

#: (route label, expected status) in the order of a round.
ROUTES = (
    ("POST /faults", 201),
    ("DELETE /faults/{id}", 200),
    ("POST /grid", 200),
    ("POST /assets", 201),
    ("DELETE /assets/{id}", 204),
)


async def measure(
    base: str, ids: list[str], *, rounds: int, budget_s: float
) -> dict[str, dict[str, Any]]:
    """``rounds`` rounds of every route (fewer if ``budget_s`` runs out); per route the
    round-trip summary (``summary_ms``) and the count of 503s."""
    rng = random.Random(2)
    rtt: dict[str, list[float]] = {name: [] for name, _ in ROUTES}
    busy: dict[str, int] = {name: 0 for name, _ in ROUTES}
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def call(name: str, want: int, method: str, url: str, body: Any = None) -> Any:
            """The answer's JSON (None for 204), or None after a 503 (counted)."""
            t = time.perf_counter()
            r = await c.request(method, url, json=body)
            if r.status_code == 503:
                busy[name] += 1
                return None
            if r.status_code != want:
                raise RuntimeError(f"{name} answered {r.status_code}: {r.text[:300]}")
            rtt[name].append(time.perf_counter() - t)
            return r.json() if r.content else {}

        site_id = (await c.get("/sites")).json()[0]["id"]
        deadline = time.monotonic() + budget_s
        for n in range(rounds):
            if time.monotonic() > deadline:
                break
            fault = {"kind": "derate", "asset_id": rng.choice(ids), "params": {"discharge_pct": 50}}
            asset = {
                "site_id": site_id,
                "name": f"BENCH-REG-{n}",
                "location": "bench",
                "capacity_mwhr": 20.0,
                "max_mw": 10.0,
                "min_mw": -10.0,
                "ramp_rate_mw_per_min": 30.0,
                "efficiency": 0.94,
                "modbus": {"port": free_port(), "unit_id": 1},
            }
            made = await call("POST /faults", 201, "POST", "/faults", fault)
            if made is not None:
                await call("DELETE /faults/{id}", 200, "DELETE", f"/faults/{made['id']}")
            await call("POST /grid", 200, "POST", "/grid", {"frequency_hz": 50.0})
            made = await call("POST /assets", 201, "POST", "/assets", asset)
            if made is not None:
                await call("DELETE /assets/{id}", 204, "DELETE", f"/assets/{made['id']}")
    return {name: {**summary_ms(rtt[name]), "answered_503": busy[name]} for name, _ in ROUTES}


def table(results: list[dict[str, Any]]) -> str:
    """One row per topology: p50 / p99 ms of every route (503s counted beside)."""
    head = " | ".join(f"{name} p50 / p99 ms" for name, _ in ROUTES)
    lines = [f"| assets | topology | {head} |", "|---|---|" + "---|" * len(ROUTES)]
    for r in results:
        cmds = r.get("commands_ms")
        if not cmds:
            continue
        cells = []
        for name, _ in ROUTES:
            s = cmds[name]
            cell = "–" if not s.get("n") else f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}"
            if s["answered_503"]:
                cell += f" ({s['answered_503']} × 503)"
            cells.append(cell)
        lines.append(f"| {r['assets']} | {r['topology']} | {' | '.join(cells)} |")
    return "\n".join(lines)
