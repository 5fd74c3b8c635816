"""``bess-sim`` command line: argv/env → Settings → runtime (DESIGN §2).

Exit codes: 0 success / clean shutdown, 2 bad configuration, bad flags or a port in use.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import DEFAULT_FLEET_SOURCE, ConfigError, load_assets
from .modbus.points import RegisterMap, Table, load_register_map
from .scenario.cli import EXIT_FAILED, plan_for, read_scenario, run_headless, settings_overrides
from .scenario.model import ScenarioError, ScenarioFile
from .scenario.plan import Plan, check_fault_steps
from .scenario.target import FAULT_CHECKER
from .settings import Settings
from .sim import FleetConfig
from .sim.model import ModbusProfile
from .sunspec.points import check_no_clash, sunspec_rows

log = logging.getLogger("bess_sim")

EXIT_OK = 0
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bess-sim", description="BESS fleet simulator")
    sub = p.add_subparsers(dest="command", required=True)

    def files(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--assets", type=Path, help="assets.yaml (env BESS_ASSETS)")
        sp.add_argument(
            "--register-map", type=Path, help="register_map.yaml (env BESS_REGISTER_MAP)"
        )

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--http-host", help="HTTP bind address (default 127.0.0.1)")
        sp.add_argument("--http-port", type=int, help="HTTP port (default 3001)")
        sp.add_argument("--modbus-host", help="Modbus bind address (default 127.0.0.1)")
        sp.add_argument("--modbus-max-connections", type=int,
                     help="connections per Modbus port (default 100)")  # fmt: skip
        sp.add_argument("--modbus-idle-timeout", dest="modbus_idle_timeout_s", type=float,
                     help="close idle Modbus connections after s (default 300, 0 off)")  # fmt: skip
        sp.add_argument("--modbus-frame-timeout", dest="modbus_frame_timeout_s", type=float,
                     help="close half-sent requests after s (default 10, 0 off)")  # fmt: skip
        sp.add_argument("--modbus-backlog", type=int,
                     help="listen backlog of each Modbus port (default 1024)")  # fmt: skip
        sp.add_argument("--tick-interval", dest="tick_interval_s", type=float,
                     help="seconds between ticks (default 1.0)")  # fmt: skip
        sp.add_argument("--speed", type=float, help="simulated seconds per wall second (default 1)")
        sp.add_argument("--clock", choices=["realtime", "manual"], help="manual: POST /sim/step")
        sp.add_argument("--start-time", help="simulated UTC start, ISO 8601 (default: now)")
        sp.add_argument("--database-url", help="PostgreSQL URL (env DATABASE_URL)")
        sp.add_argument("--reset-db", action="store_true", default=None,
                     help="truncate tables first (env RESET_DB=1)")  # fmt: skip
        sp.add_argument("--seed", type=int,
                     help="seed of random comm faults (default 1)")  # fmt: skip
        sp.add_argument("--history-size", type=int, help="in-memory snapshots kept per asset")
        sp.add_argument("--log-level", help="debug|info|warning|error (env LOG_LEVEL)")

    run = sub.add_parser("run", help="start the simulator")
    files(run)
    run_options(run)
    run.add_argument("--scenario", type=Path, help="run this scenario file live (DESIGN §12)")

    for name, text in (
        ("headend", "scale-out: REST/WebSocket/dashboard/database over NATS (DESIGN §15)"),
        ("agent", "scale-out: tick loop and Modbus of one shard of the assets (DESIGN §15)"),
    ):
        sp = sub.add_parser(name, help=text)
        files(sp)
        run_options(sp)
        sp.add_argument("--nats", default="nats://127.0.0.1:4222",
                        help="NATS server URL (JetStream enabled)")  # fmt: skip
        sp.add_argument("--nats-prefix", default="bess",
                        help="subject/stream prefix (one per cluster)")  # fmt: skip
        if name == "agent":
            sp.add_argument("--shard", required=True, help="K/N: assets at index mod N == K")
        else:
            sp.add_argument("--scenario", type=Path,
                            help="run this scenario once every agent has reported")  # fmt: skip

    scen = sub.add_parser("scenario", help="scenario files (DESIGN §12)")
    scen_sub = scen.add_subparsers(dest="scenario_command", required=True)
    srun = scen_sub.add_parser(
        "run", help="run a scenario headless (exit 0 passed, 1 failed, 2 bad input)"
    )
    srun.add_argument("file", type=Path, help="the scenario YAML file")
    files(srun)
    srun.add_argument("--report", type=Path, help="write report.json and junit.xml here")
    srun.add_argument("--realtime", action="store_true",
                      help="paced, with Modbus and REST up for an EMS under test")  # fmt: skip
    srun.add_argument("--http-host", help="HTTP bind address (--realtime)")
    srun.add_argument("--http-port", type=int, help="HTTP port (--realtime; default 3001)")
    srun.add_argument("--modbus-host", help="Modbus bind address (--realtime)")
    srun.add_argument("--tick-interval", dest="tick_interval_s", type=float,
                      help="seconds between ticks (default: the file's, else 1.0)")  # fmt: skip
    srun.add_argument("--speed", type=float, help="--realtime: simulated s per wall s")
    srun.add_argument("--start-time", help="simulated UTC start (default: the file's, else now)")
    srun.add_argument("--log-level", help="debug|info|warning|error (env LOG_LEVEL)")

    check = sub.add_parser("check-config", help="validate assets.yaml and register_map.yaml")
    files(check)
    points = sub.add_parser("points", help="print the register points list per asset")
    files(points)
    points.add_argument("--format", choices=["csv", "markdown"], default="markdown")
    return p


def _settings(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Settings:
    fields = set(Settings.model_fields)
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in fields and v is not None
    }
    return Settings(**{**(extra or {}), **overrides})


def load_config(settings: Settings) -> tuple[FleetConfig, RegisterMap]:
    fleet = load_assets(settings.assets)
    if fleet.source == DEFAULT_FLEET_SOURCE:
        log.warning("assets: %s not found; using the built-in default fleet", settings.assets)
    regmap = load_register_map(settings.register_map)
    if not settings.register_map.exists():
        log.warning(
            "register map: %s not found; using the built-in default map", settings.register_map
        )
    check_no_clash(
        fleet,
        [(p.name, p.address, p.end) for p in regmap.points if p.table is Table.HOLDING],
        regmap.source,
    )
    return fleet, regmap


def points_rows(fleet: FleetConfig, regmap: RegisterMap) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for asset in fleet.assets:
        native = () if asset.modbus.profile is ModbusProfile.SUNSPEC else regmap.points
        for pt in sorted(native, key=lambda p: (p.table != "input", p.address)):
            rows.append(
                {
                    "asset": asset.name,
                    "asset_id": asset.id,
                    "port": str(asset.modbus.port),
                    "unit_id": str(asset.modbus.unit_id),
                    "table": pt.table.value,
                    "address": str(pt.address),
                    "registers": str(pt.width),
                    "name": pt.name,
                    "type": pt.type.value,
                    "word_order": pt.word_order.value if pt.width == 2 else "",
                    "scale": f"{pt.scale:g}",
                    "unit": pt.unit,
                    "access": pt.access,
                    "description": pt.description,
                }
            )
        rows.extend(sunspec_rows(asset))
    return rows


def _print_points(rows: list[dict[str, str]], fmt: str) -> None:
    if not rows:
        return
    cols = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        sys.stdout.write(buf.getvalue())
        return
    sys.stdout.write("| " + " | ".join(cols) + " |\n")
    sys.stdout.write("|" + "---|" * len(cols) + "\n")
    for r in rows:
        sys.stdout.write("| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |\n")


def _summary(fleet: FleetConfig, regmap: RegisterMap) -> None:
    print(f"assets: {fleet.source}: {len(fleet.sites)} sites, {len(fleet.assets)} assets")
    for a in fleet.assets:
        print(
            f"  {a.name:<16} {a.capacity_mwhr:g} MWh  [{a.min_mw:g}, {a.max_mw:g}] MW  "
            f"ramp {a.ramp_rate_mw_per_min:g} MW/min  eff {a.efficiency:g}  "
            f"modbus port {a.modbus.port} unit {a.modbus.unit_id}"
        )
    print(
        f"register map: {regmap.source}: {len(regmap.points)} points, "
        f"word order {regmap.word_order}"
    )
    print("OK")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (a dependency on Linux/macOS): it serves Modbus and HTTP faster
    (bench/RESULTS.md); the stock asyncio loop otherwise."""
    try:
        import uvloop
    except ImportError:
        log.info("event loop: asyncio")
        return None
    log.info("event loop: uvloop")
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario: ScenarioFile | None = None
    scenario_path: Path | None = (
        args.file if args.command == "scenario" else getattr(args, "scenario", None)
    )
    extra: dict[str, Any] = {}
    if scenario_path is not None:
        try:
            scenario = read_scenario(scenario_path)
        except ScenarioError as exc:
            print(f"bess-sim: scenario error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if args.command == "scenario":
            given = {k for k, v in vars(args).items() if v is not None}
            extra = settings_overrides(scenario, given, args.realtime)
    try:
        settings = _settings(args, extra)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "settings"
            print(f"bess-sim: invalid setting {loc}: {err['msg']}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level != "debug":
        # pymodbus logs every connection at INFO ("Server listening.", ...): noise for an
        # operator; our own start-up lines name the bound ports.
        logging.getLogger("pymodbus").setLevel(logging.WARNING)
    try:
        fleet, regmap = load_config(settings)
    except ConfigError as exc:
        print(f"bess-sim: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        _summary(fleet, regmap)
        return EXIT_OK
    if args.command == "points":
        _print_points(points_rows(fleet, regmap), args.format)
        return EXIT_OK
    plan = None
    if scenario is not None and scenario_path is not None:
        try:
            plan = plan_for(scenario, fleet, str(scenario_path))
            check_fault_steps(plan, str(scenario_path), FAULT_CHECKER)
        except ScenarioError as exc:
            print(f"bess-sim: scenario error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.command == "scenario":
        assert plan is not None and scenario_path is not None
        return _run_scenario(settings, fleet, regmap, plan, scenario_path, args.report)
    if args.command in ("agent", "headend"):
        return _run_cluster(args, settings, fleet, regmap)
    from .runtime import serve  # heavy imports only for `run`

    live = None
    if scenario_path is not None:
        live = (scenario_path.read_text(encoding="utf-8"), str(scenario_path))
    return _serve_until_stopped(lambda: serve(settings, fleet, regmap, scenario=live))


def _serve_until_stopped(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a serving coroutine until SIGINT/SIGTERM: exit 0, or 2 when it cannot start."""
    from .runtime import StartupError

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except StartupError as exc:
        print(f"bess-sim: cannot start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _run_cluster(
    args: argparse.Namespace, settings: Settings, fleet: FleetConfig, regmap: RegisterMap
) -> int:
    from .cluster.serve import serve_agent, serve_headend
    from .cluster.wire import Shard

    if args.command == "headend":
        live = None
        if args.scenario is not None:
            live = (args.scenario.read_text(encoding="utf-8"), str(args.scenario))
        return _serve_until_stopped(
            lambda: serve_headend(
                settings, fleet, regmap, args.nats, args.nats_prefix, scenario=live
            )
        )
    try:
        shard = Shard.parse(args.shard)
    except ValueError as exc:
        print(f"bess-sim agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _serve_until_stopped(
        lambda: serve_agent(settings, fleet, regmap, args.nats, args.nats_prefix, shard)
    )


def _run_scenario(
    settings: Settings,
    fleet: FleetConfig,
    regmap: RegisterMap,
    plan: Plan,
    path: Path,
    report: Path | None,
) -> int:
    from .runtime import StartupError

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(run_headless(settings, fleet, regmap, plan, str(path), report))
    except StartupError as exc:
        print(f"bess-sim: cannot start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
