"""Server processes of the benchmarks: ``python -m bench.servers KIND ...``.

Each prints ``READY {json}`` on stdout once it serves, then runs until SIGTERM/SIGINT or
``--max-seconds`` (always bounded). Kinds:

- ``bess``: bess-sim with an assets file, ticking in real time. ``--mode runtime`` is the
  whole simulator (``Runtime``: tick loop + Modbus + HTTP); ``--mode components`` is the
  fleet + ``ModbusService`` + the same real-time clock loop, without HTTP (used while the
  runtime has no Modbus wiring, and to see what HTTP costs).
- ``pymodbus``: the baseline, bare pymodbus 3.16 servers with the same register tables (one
  ``SimDevice`` per port, static values, no action hook, no ticking), same port layout.
- ``rest-bare``: the REST baseline, a bare FastAPI app answering ``GET /telemetry/{id}`` with
  a fixed JSON body of the same shape, served by uvicorn exactly like the runtime serves its
  app.
- ``startup``: times config load → ``Runtime`` ready for an assets file, prints it, exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import REGISTER_MAP, activate

START = datetime(2026, 1, 1, tzinfo=UTC)


def _ready(info: dict[str, Any]) -> None:
    print("READY " + json.dumps(info), flush=True)


async def _wait_stop(max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)


def _settings(args: argparse.Namespace, http_port: int = 0) -> Any:
    from bess_sim.settings import Settings

    return Settings(
        assets=Path(args.assets_file),
        register_map=REGISTER_MAP,
        http_port=http_port,
        clock="realtime",
        tick_interval_s=args.tick,
        start_time=START,
        database_url=None,
        api_token=None,
        log_level="warning",
    )


# --------------------------------------------------------------------------- bess-sim
async def bess(args: argparse.Namespace) -> None:
    from bess_sim.config import load_assets
    from bess_sim.modbus.points import load_register_map
    from bess_sim.runtime import Runtime

    settings = _settings(args, args.http_port)
    fleet_cfg = load_assets(settings.assets)
    rmap = load_register_map(settings.register_map)
    if args.mode == "runtime":
        if args.tick_on_loop:
            settings = settings.model_copy(update={"tick_thread": False})
        rt = Runtime(settings, fleet_cfg, rmap, start_time=START)
        activate(rt.fleet, args.activate)
        async with rt:
            if args.no_fast_path and rt.modbus is not None:
                rt.modbus.fast_path = False
            # Empty while the runtime has no Modbus wiring; the Modbus parts then use
            # --mode components (bench/part_modbus.py checks).
            ports = sorted(rt.modbus_ports.values())
            _ready(
                {
                    "mode": "runtime",
                    "ports": ports[:1000],
                    "n_ports": len(ports),
                    "http_port": rt.http_port,
                }
            )
            await _wait_stop(args.max_seconds)
        return
    # components: Fleet + ModbusService + HistoryBuffer + the real-time clock, like Runtime.tick
    from bess_sim.clock import RealTimeClock
    from bess_sim.metrics import Metrics
    from bess_sim.modbus.server import ModbusService
    from bess_sim.sim import Fleet, HistoryBuffer

    fleet = Fleet(fleet_cfg, START)
    activate(fleet, args.activate)
    metrics = Metrics()
    history = HistoryBuffer((a.id for a in fleet_cfg.assets), settings.history_size)
    svc = ModbusService(fleet, rmap, "127.0.0.1", metrics)

    def tick(dt_s: float) -> None:
        started = time.perf_counter()
        snaps = fleet.advance(dt_s)
        history.publish(snaps)
        svc.publish(snaps)
        metrics.tick_duration.observe(time.perf_counter() - started)
        metrics.ticks.inc()

    clock = RealTimeClock(args.tick, 1.0)
    async with svc:
        task = asyncio.create_task(clock.run(tick))
        ports = sorted(svc.ports.values())
        _ready({"mode": "components", "ports": ports[:1000], "n_ports": len(ports)})
        await _wait_stop(args.max_seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- bare pymodbus
async def bare_pymodbus(args: argparse.Namespace) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    from bess_sim.modbus.points import Table, load_register_map

    rmap = load_register_map(REGISTER_MAP)
    h_size, i_size = rmap.size(Table.HOLDING), rmap.size(Table.INPUT)

    def device() -> SimDevice:
        bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        return SimDevice(
            1,
            simdata=(
                bits,
                list(bits),
                [SimData(0, count=h_size, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=i_size, values=1234, datatype=DataType.REGISTERS)],
            ),
        )

    servers = []
    for i in range(args.devices):
        server = ModbusTcpServer(device(), address=("127.0.0.1", args.base_port + i))
        await server.serve_forever(background=True)
        servers.append(server)
    _ready({"mode": "pymodbus", "ports": [args.base_port + i for i in range(args.devices)]})
    await _wait_stop(args.max_seconds)
    for server in servers:
        with contextlib.suppress(Exception):
            await server.shutdown()


# --------------------------------------------------------------------------- bare REST
async def rest_bare(args: argparse.Namespace) -> None:
    import uvicorn
    from fastapi import FastAPI

    from bess_sim.net import bind_tcp

    app = FastAPI()
    body = {
        "asset_id": "00000000-0000-4000-8000-000000000000",
        "site_id": "00000000-0000-4000-8000-000000000001",
        "timestamp": "2026-01-01T00:00:00Z",
        "soc_mwhr": 50.0,
        "soc_pct": 50.0,
        "capacity_mwhr": 100.0,
        "current_mw": 12.5,
        "setpoint_mw": 25.0,
        "max_mw": 50.0,
        "min_mw": -50.0,
        "status": "discharging",
        "alarms": [],
    }

    @app.get("/telemetry/{asset_id}")
    async def telemetry(asset_id: str) -> dict[str, Any]:
        return {**body, "asset_id": asset_id}

    sock = bind_tcp("127.0.0.1", 0)
    # Same uvicorn settings as Runtime._start_http, so the ratio measures the app, not uvicorn.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    _ready({"mode": "rest-bare", "http_port": sock.getsockname()[1]})
    await _wait_stop(args.max_seconds)
    server.should_exit = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task, 5)


# --------------------------------------------------------------------------- start-up
async def startup(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    from bess_sim.config import load_assets
    from bess_sim.modbus.points import load_register_map
    from bess_sim.runtime import Runtime

    t_import = time.perf_counter()
    settings = _settings(args)
    fleet_cfg = load_assets(settings.assets)
    rmap = load_register_map(settings.register_map)
    t_config = time.perf_counter()
    rt = Runtime(settings, fleet_cfg, rmap, start_time=START)
    async with rt:
        t_ready = time.perf_counter()
        info = {
            "import_s": t_import - t0,
            "config_s": t_config - t_import,
            "runtime_start_s": t_ready - t_config,
            "config_to_ready_s": t_ready - t_import,
            "modbus_ports": len(rt.modbus_ports),
        }
    _ready(info)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.servers")
    sub = ap.add_subparsers(dest="kind", required=True)
    b = sub.add_parser("bess")
    b.add_argument("--assets-file", required=True)
    b.add_argument("--tick", type=float, default=1.0)
    b.add_argument("--mode", choices=["runtime", "components"], default="runtime")
    b.add_argument("--activate", type=float, default=0.5)
    b.add_argument("--http-port", type=int, default=0)
    b.add_argument("--no-fast-path", action="store_true", help="every request via pymodbus")
    b.add_argument("--tick-on-loop", action="store_true", help="settings.tick_thread = false")
    p = sub.add_parser("pymodbus")
    p.add_argument("--base-port", type=int, required=True)
    p.add_argument("--devices", type=int, default=1)
    r = sub.add_parser("rest-bare")
    s = sub.add_parser("startup")
    s.add_argument("--assets-file", required=True)
    s.add_argument("--tick", type=float, default=1.0)
    for x in (b, p, r, s):
        x.add_argument("--max-seconds", type=float, default=900.0)
        x.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    fn = {"bess": bess, "pymodbus": bare_pymodbus, "rest-bare": rest_bare, "startup": startup}[
        args.kind
    ]
    if args.uvloop:
        import uvloop

        uvloop.run(fn(args))
    else:
        asyncio.run(fn(args))


if __name__ == "__main__":
    main()
