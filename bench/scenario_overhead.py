"""Cost of a running scenario (DESIGN §12) on the tick, and headless scenario speed.

In one run, interleaved rounds of: stepping ``--hours`` of simulated time on the manual clock
with no scenario (*plain*); the same stretch as a headless scenario with one point check at the
end, i.e. the EMS scorecard's per-tick cost alone (*scorecard*); and with one expectation
checked on every asset at every tick as well (*scenario*). Half the fleet
carries a setpoint (bench.common.activate). Reports wall time per simulated hour and the
ratio scenario/plain (same run, same machine).

    python -m bench.scenario_overhead [--assets 100] [--hours 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime

from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.scenario import build_plan, parse_scenario
from bess_sim.scenario.runner import ScenarioRun
from bess_sim.scenario.target import RuntimeTarget
from bess_sim.settings import Settings

from .common import ROOT, activate, fleet_config, ratio

START = datetime(2026, 1, 1, tzinfo=UTC)


async def one(n_assets: int, seconds: float, mode: str) -> float:
    settings = Settings(http_port=0, modbus_enabled=False, clock="manual", start_time=START,
                        tick_interval_s=1.0, database_url=None, api_token=None)  # fmt: skip
    cfg = fleet_config(n_assets)
    async with Runtime(settings, cfg, load_register_map(ROOT / "register_map.yaml")) as rt:
        activate(rt.fleet)
        t0 = time.perf_counter()
        if mode != "plain":
            when = {"during": [0, seconds]} if mode == "scenario" else {"at": seconds}
            data = {
                "name": "bench",
                "steps": [
                    {"at": 0, "expect": {"asset": "*", "field": "soc_pct", "op": "between",
                                         "value": [0, 100], **when}},
                ],
            }  # fmt: skip
            plan = build_plan(parse_scenario(data, "bench"), rt.fleet.specs, "bench")
            state = await ScenarioRun(plan, RuntimeTarget(rt)).run()
            assert state == "passed", state
        else:
            await rt.step(seconds)
        return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> dict[str, object]:
    seconds = args.hours * 3600.0
    walls: dict[str, list[float]] = {"plain": [], "scorecard": [], "scenario": []}
    for _ in range(args.rounds):
        for mode, times in walls.items():
            times.append(await one(args.assets, seconds, mode))
    best = {mode: min(times) for mode, times in walls.items()}
    return {
        "assets": args.assets,
        "simulated_s": seconds,
        **{f"{mode}_wall_s": v for mode, v in best.items()},
        "scorecard_ratio": ratio(best["scorecard"], best["plain"]),
        "scenario_ratio": ratio(best["scenario"], best["plain"]),
        "scenario_sim_s_per_wall_s": seconds / best["scenario"],
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=100)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    r = asyncio.run(main(p.parse_args()))
    cols = ["assets", "simulated s", "plain wall s", "scorecard wall s", "scenario wall s",
            "scorecard/plain", "scenario/plain", "sim s per wall s"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    row = [f"{r['assets']}", f"{r['simulated_s']:g}", f"{r['plain_wall_s']:.3f}",
           f"{r['scorecard_wall_s']:.3f}", f"{r['scenario_wall_s']:.3f}",
           f"{r['scorecard_ratio']:.2f}", f"{r['scenario_ratio']:.2f}",
           f"{r['scenario_sim_s_per_wall_s']:.0f}"]  # fmt: skip
    print("| " + " | ".join(row) + " |")
    print(json.dumps(r))
