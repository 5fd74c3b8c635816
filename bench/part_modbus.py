"""Parts 1 and 2: Modbus throughput/latency at 1, 10, 100 connections, and paced SCADA load.

Systems (each its own process, started once, measured in interleaved rounds so that a noisy
phase of the shared machine hits all of them alike):

- ``bess``: bess-sim with 1,000 assets ticking at 1 Hz (half of them dispatched, so the physics
  ramps and integrates), one Modbus TCP port per asset (unit 1) — each BESS is its own Modbus
  endpoint as real BESS controllers each have their own IP, and DESIGN §5's default layout.
- ``pymodbus``: bare pymodbus 3.16 servers, same ports layout (1,000 ports), same register
  tables, static values, no ticking (the baseline).
- ``libmodbus``: libmodbus's C server on one port (the ceiling of a single-threaded server).
- ``+uvloop`` variants of the Python servers when uvloop is available (bench/extras.py).

Request: FC04 reading 10 input registers at address 0. Connection i talks to asset i's port.
"""

from __future__ import annotations

import contextlib
import statistics
from pathlib import Path
from typing import Any

from . import cbuild, extras
from .common import (
    BUILD_DIR,
    PYTHON,
    port_block,
    ratio,
    run_json,
    start_server,
    write_fleet,
    write_targets,
)

N_ASSETS = 1000
CONNS = (1, 10, 100)


def _systems(tag: str, with_uvloop: bool, bess_mode: str) -> list[tuple[str, list[str], bool]]:
    """(name, argv, needs extras) per system; every Python server gets its own 1,000 ports."""
    server = cbuild.libmodbus_server()
    n_python = 4 if with_uvloop else 2
    bases = [b for b in range(port_block(N_ASSETS * n_python), 65536, N_ASSETS)][:n_python]

    def bess(base: int, suffix: str) -> list[str]:
        fleet = write_fleet(BUILD_DIR / f"fleet-{tag}{suffix}.yaml", N_ASSETS, base)
        return [
            PYTHON,
            "-m",
            "bench.servers",
            "bess",
            "--assets-file",
            str(fleet),
            "--mode",
            bess_mode,
            "--tick",
            "1.0",
        ]

    def pym(base: int) -> list[str]:
        return [
            PYTHON,
            "-m",
            "bench.servers",
            "pymodbus",
            "--base-port",
            str(base),
            "--devices",
            str(N_ASSETS),
        ]

    systems = [
        ("bess", bess(bases[0], ""), False),
        ("pymodbus", pym(bases[1]), False),
        ("libmodbus", [str(server), "0", "1800"], False),
    ]
    if with_uvloop:
        systems.insert(1, ("bess+uvloop", [*bess(bases[2], "-uvloop"), "--uvloop"], True))
        systems.append(("pymodbus+uvloop", [*pym(bases[3]), "--uvloop"], True))
    return systems


def _bess_mode() -> str:
    """``runtime`` once the Runtime wires Modbus (the whole simulator, HTTP included), else
    ``components`` (fleet + ModbusService + real-time tick loop)."""
    import inspect

    from bess_sim.runtime import Runtime

    code = inspect.getsource(Runtime._start_modbus)
    return "runtime" if "ModbusService" in code else "components"


def _targets(name: str, info: dict[str, Any], n: int) -> Path:
    ports = info.get("ports") or [info["port"]]
    lines = [f"{ports[i % len(ports)]} 1" for i in range(n)]
    return write_targets(BUILD_DIR / f"targets-{name}-{n}.txt", lines)


def _sanity(load: Path, servers: dict[str, Any], systems: list[Any]) -> dict[str, str]:
    """Drop a system that does not answer a plain FC04 read (and say why) instead of failing
    the whole part: e.g. bess-sim on uvloop (see bench/RESULTS.md)."""
    excluded: dict[str, str] = {}
    for name, _, _ in list(systems):
        targets = _targets(name, servers[name].info, 1)
        res = run_json([str(load), "-t", str(targets), "-c", "1", "-d", "0.3", "-w", "0.05"], 30)
        if res["ok"] == 0:
            excluded[name] = f"no answer to FC04 (ok=0, errors={res['errors']})"
            systems.remove(next(s for s in systems if s[0] == name))
    return excluded


def run_throughput(quick: bool, uvloop: bool) -> dict[str, Any]:
    load = cbuild.load_generator()
    duration, warmup, rounds = (0.4, 0.15, 1) if quick else (3.0, 0.7, 3)
    with_uvloop = uvloop and extras.available("uvloop")
    mode = _bess_mode()
    systems = _systems("modbus", with_uvloop, mode)
    raw: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    servers = {}
    with contextlib.ExitStack() as stack:
        for name, argv, use_extras in systems:
            srv = stack.enter_context(start_server(argv, timeout_s=120, extras=use_extras))
            servers[name] = srv
            raw[name] = {"c": {}, "py": {}}
        excluded = _sanity(load, servers, systems)
        for name in excluded:
            del raw[name]
        for _round in range(rounds):
            for conns in CONNS:
                for name, _, _ in systems:
                    targets = _targets(name, servers[name].info, conns)
                    c_res = run_json(
                        [
                            str(load),
                            "-t",
                            str(targets),
                            "-c",
                            str(conns),
                            "-d",
                            str(duration),
                            "-w",
                            str(warmup),
                            "-f",
                            "4",
                            "-a",
                            "0",
                            "-n",
                            "10",
                        ],
                        timeout_s=duration + warmup + 60,
                    )
                    raw[name]["c"].setdefault(str(conns), []).append(c_res)
                    py_res = run_json(
                        [
                            PYTHON,
                            "-m",
                            "bench.pyclient",
                            "-t",
                            str(targets),
                            "-c",
                            str(conns),
                            "-d",
                            str(duration),
                            "-w",
                            str(warmup),
                        ],
                        timeout_s=duration + warmup + 90,
                    )
                    raw[name]["py"].setdefault(str(conns), []).append(py_res)
    return {
        "bess_mode": mode,
        "excluded": excluded,
        "layout": "port-per-asset (1,000 ports, unit 1); libmodbus: one port",
        "n_assets": N_ASSETS,
        "duration_s": duration,
        "rounds": rounds,
        "summary": _summarise(raw, [n for n, _, _ in systems]),
        "raw": raw,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _summarise(raw: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for gen in ("c", "py"):
        rows = []
        for conns in CONNS:
            k = str(conns)
            row: dict[str, Any] = {"conns": conns}
            for name in names:
                runs = raw[name][gen][k]
                row[name] = {
                    "rps": _median(runs, "rps"),
                    "p50_us": _median(runs, "p50_us"),
                    "p99_us": _median(runs, "p99_us"),
                    "errors": sum(r["errors"] for r in runs),
                }
            for num, den in (
                ("bess", "pymodbus"),
                ("bess", "libmodbus"),
                ("bess+uvloop", "pymodbus"),
                ("bess+uvloop", "libmodbus"),
                ("pymodbus+uvloop", "pymodbus"),
            ):
                if num in names and den in names:
                    # median of the per-round ratios (same round = same machine phase)
                    per_round = [
                        ratio(a["rps"], b["rps"])
                        for a, b in zip(raw[num][gen][k], raw[den][gen][k], strict=True)
                    ]
                    vals = [v for v in per_round if v is not None]
                    row[f"{num}/{den}"] = float(statistics.median(vals)) if vals else None
            rows.append(row)
        out[gen] = rows
    return out


# --------------------------------------------------------------------------- paced
def run_paced(quick: bool, uvloop: bool) -> dict[str, Any]:
    load = cbuild.load_generator()
    duration, warmup = (1.0, 0.3) if quick else (20.0, 2.0)
    rates = (1.0, 10.0)
    with_uvloop = uvloop and extras.available("uvloop")
    mode = _bess_mode()
    systems = _systems("paced", with_uvloop, mode)
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, argv, use_extras in systems:
            servers[name] = stack.enter_context(
                start_server(argv, timeout_s=120, extras=use_extras)
            )
            results[name] = {}
        excluded = _sanity(load, servers, systems)
        for name in excluded:
            del results[name]
        for rate in rates:
            for name, _, _ in systems:
                srv = servers[name]
                targets = _targets(name, srv.info, N_ASSETS)
                cpu0 = srv.cpu_seconds()
                res = run_json(
                    [
                        str(load),
                        "-t",
                        str(targets),
                        "-c",
                        str(N_ASSETS),
                        "-m",
                        "paced",
                        "-r",
                        str(rate),
                        "-d",
                        str(duration),
                        "-w",
                        str(warmup),
                    ],
                    timeout_s=duration + warmup + 60,
                )
                cpu1 = srv.cpu_seconds()
                # CPU over the whole run (warm-up included) of the server process
                res["server_cpu_pct"] = 100.0 * (cpu1 - cpu0) / (duration + warmup)
                results[name][f"{rate:g}Hz"] = res
    summary = []
    for rate in rates:
        k = f"{rate:g}Hz"
        row: dict[str, Any] = {"rate": k, "devices": N_ASSETS}
        for name in results:
            r = results[name][k]
            row[name] = {
                key: r[key]
                for key in (
                    "p50_us",
                    "p99_us",
                    "p999_us",
                    "max_us",
                    "missed",
                    "errors",
                    "rps",
                    "server_cpu_pct",
                )
            }
        if "bess" in results and "pymodbus" in results:
            row["bess/pymodbus_p99"] = ratio(row["bess"]["p99_us"], row["pymodbus"]["p99_us"])
            row["bess/pymodbus_cpu"] = ratio(
                row["bess"]["server_cpu_pct"], row["pymodbus"]["server_cpu_pct"]
            )
        summary.append(row)
    return {
        "bess_mode": mode,
        "excluded": excluded,
        "layout": "1,000 connections, one per device (port per asset); libmodbus: one port",
        "duration_s": duration,
        "summary": summary,
        "raw": results,
    }
