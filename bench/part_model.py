"""Battery model v2 (DESIGN §10) tick cost: the same fleet size with the plain §3 model and
with every §10 effect on, ticks interleaved in one run (``Fleet.advance``: physics and
snapshots, 1 s ticks, half the assets dispatched, grid at 49.9 Hz so droop acts).

Target (issue 10): 10,000 assets with all models, tick p99 < 100 ms. Run alone with
``python -m bench.part_model [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime
from typing import Any

from .common import ratio, summary_ms

START = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_P99_MS = 100.0


def _config(n: int, all_models: bool) -> Any:
    from bess_sim.sim.model import AssetSpec, FleetConfig, ModbusAddress, Site
    from bess_sim.sim.models.curve import Curve
    from bess_sim.sim.models.params import (
        FrequencyParams,
        ModelParams,
        ReactiveParams,
        ThermalParams,
    )

    model = (
        ModelParams(
            efficiency_curve=Curve.of(((0.0, 0.8), (10.0, 0.88), (50.0, 0.92), (100.0, 0.9))),
            self_discharge_pct_per_day=0.5,
            charge_taper=Curve.of(((80.0, 100.0), (95.0, 20.0))),
            discharge_taper=Curve.of(((5.0, 20.0), (20.0, 100.0))),
            thermal=ThermalParams(25.0, 25.0, 20.0, 50.0, 40.0, 50.0, 55.0),
            reactive=ReactiveParams(5.5, -3.0, 3.0, "p"),
            frequency_response=FrequencyParams("droop", 50.0, 0.015, 4.0, 5.0),
        )
        if all_models
        else None
    )
    site = Site("s", "S", "")
    assets = tuple(
        AssetSpec(
            id=f"a{i}",
            site_id="s",
            name=f"A{i}",
            location="",
            capacity_mwhr=10.0,
            max_mw=5.0,
            min_mw=-5.0,
            ramp_rate_mw_per_min=60.0,
            efficiency=0.9,
            modbus=ModbusAddress(5020 + i // 200, 1 + i % 200),
            model=model,
        )
        for i in range(n)
    )
    return FleetConfig((site,), assets, "bench")


def _fleet(n: int, all_models: bool) -> Any:
    from bess_sim.sim import DispatchRequest, Fleet

    f = Fleet(_config(n, all_models), START)
    for i in range(0, n, 2):  # half dispatched, alternating sign
        f.dispatch(DispatchRequest(f"a{i}", 2.0 if i % 4 == 0 else -2.0, mvar=None))
    f.set_grid(frequency_hz=49.9)
    return f


def run_model(quick: bool) -> dict[str, Any]:
    n = 1_000 if quick else 10_000
    ticks = 5 if quick else 60
    fleets = {"plain": _fleet(n, False), "all": _fleet(n, True)}
    times: dict[str, list[float]] = {k: [] for k in fleets}
    gc.collect()
    for _ in range(ticks):  # interleaved: both see the same machine load
        for name, fleet in fleets.items():
            t = time.perf_counter()
            fleet.advance(1.0)
            times[name].append(time.perf_counter() - t)
    summary = {k: summary_ms(v) for k, v in times.items()}
    return {
        "assets": n,
        "ticks": ticks,
        "summary": summary,
        "ratio_p50": ratio(summary["all"]["p50_ms"], summary["plain"]["p50_ms"]),
        "target_p99_ms": TARGET_P99_MS,
        "target_holds": summary["all"]["p99_ms"] < TARGET_P99_MS,
    }


def render_model(p: dict[str, Any]) -> list[str]:
    s = p["summary"]
    lines = [
        f"## Battery model v2: {p['assets']:,} assets, {p['ticks']} ticks of 1 s (Fleet.advance)",
        "",
        "| model | tick p50 ms | tick p99 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for name in ("plain", "all"):
        v = s[name]
        lines.append(f"| {name} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['max_ms']:.1f} |")
    r = p.get("ratio_p50")
    lines += [
        "",
        f"all / plain (p50): {r:.2f}×" if r else "all / plain: n/a",
        f"target p99 < {p['target_p99_ms']:.0f} ms with all models: "
        + ("holds" if p["target_holds"] else "NOT met"),
        "",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print("\n".join(render_model(run_model(args.quick))))


if __name__ == "__main__":
    main()
