"""``bess-sim scenario run FILE`` and ``bess-sim run --scenario FILE`` (DESIGN §12).

Exit codes: 0 every expectation held, 1 one failed (or the run was interrupted), 2 bad input
(the file, its fleet, a fault step without fault injection, a port in use).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import ScenarioError, ScenarioFile, parse_text
from .plan import Plan, build_plan

if TYPE_CHECKING:
    from ..modbus.points import RegisterMap
    from ..settings import Settings
    from ..sim import FleetConfig

log = logging.getLogger("bess_sim.scenario")

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def read_scenario(path: Path) -> ScenarioFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(f"{path}: cannot read the scenario file: {reason}") from None
    return parse_text(text, str(path))


def settings_overrides(scenario: ScenarioFile, given: set[str], realtime: bool) -> dict[str, Any]:
    """Settings a scenario run implies; flags the user gave (``given``) win."""
    # No database: a test run starts from the fleet file's initial state every time (a
    # database would restore SOC and dispatches from the last run).
    out: dict[str, Any] = {"clock": "realtime" if realtime else "manual", "database_url": None}
    if scenario.tick_interval_s is not None and "tick_interval_s" not in given:
        out["tick_interval_s"] = scenario.tick_interval_s
    if scenario.start_time is not None and "start_time" not in given:
        out["start_time"] = scenario.start_time
    if not realtime:
        # Headless: nothing to serve; an ephemeral HTTP port cannot clash with a simulator
        # already running on 3001.
        out["modbus_enabled"] = False
        if "http_port" not in given:
            out["http_port"] = 0
    return out


def plan_for(scenario: ScenarioFile, fleet: FleetConfig, source: str) -> Plan:
    return build_plan(scenario, fleet.assets, source)


def _print(line: str) -> None:
    print(line, flush=True)


async def run_headless(
    settings: Settings,
    fleet: FleetConfig,
    regmap: RegisterMap,
    plan: Plan,
    source: str,
    report_dir: Path | None,
    progress: Callable[[str], None] = _print,
) -> int:
    from ..runtime import Runtime
    from .report import write_reports
    from .runner import ScenarioRun
    from .target import RuntimeTarget

    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    runtime = Runtime(settings, fleet, regmap)
    run = ScenarioRun(plan, RuntimeTarget(runtime), source=source, progress=progress)
    run.attach()  # before Modbus is bound: an EMS's first write must reach the scorecard
    async with runtime as rt:
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, run.stop)
                handled.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                pass
        if settings.clock == "realtime":
            progress(
                f"scenario {plan.name}: paced (speed {settings.speed:g}x); Modbus "
                f"{', '.join(str(p) for p in rt.modbus_ports.values()) or '-'}, "
                f"HTTP {settings.http_host}:{rt.http_port}"
            )
        try:
            await run.run()
        except ScenarioError as exc:
            print(f"bess-sim: scenario error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        status = run.status()
    wall = time.perf_counter() - started
    progress(
        f"scenario {plan.name}: {status['state'].upper()}: {status['passed']} passed, "
        f"{status['failed']} failed, {status['sim_time_s']:g} simulated s in {wall:.2f} s"
    )
    if report_dir is not None:
        paths = write_reports(report_dir, status, wall_s=wall)
        progress("reports: " + " ".join(str(p) for p in paths))
    return EXIT_PASSED if status["state"] == "passed" else EXIT_FAILED
