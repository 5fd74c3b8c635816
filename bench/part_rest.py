"""Part 5: REST ``GET /telemetry/{id}`` at 50 concurrent keep-alive clients.

Load: the C generator in HTTP/1.1 mode (bench/c/mbload.c ``-P``), 50 connections, each
request → whole answer → next, rotating through the ids of all 1,000 assets. Systems:
- ``bess``: the whole simulator (``Runtime``, 1,000 assets ticking at 1 Hz), its own process;
- ``bare-fastapi``: a bare FastAPI app with one route returning a fixed body of the same shape,
  served by uvicorn with the same settings (the baseline: what the framework costs);
- ``bess+extras`` when httptools/uvloop are available (bench/extras.py): uvicorn's ``http=auto``
  picks httptools when importable; the runtime's own loop is unchanged (no ``--uvloop``: the
  CLI has no such switch yet), so this measures httptools alone.
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

from . import cbuild, extras
from .common import (
    BUILD_DIR,
    PYTHON,
    asset_uuid,
    port_block,
    ratio,
    run_json,
    start_server,
    write_fleet,
    write_targets,
)

N_ASSETS = 1000
CONNS = 50


def run_rest(quick: bool, use_extras: bool) -> dict[str, Any]:
    load = cbuild.load_generator()
    duration, warmup, rounds = (0.5, 0.2, 1) if quick else (5.0, 1.0, 3)
    base = port_block(2 * N_ASSETS)

    def bess(base: int, suffix: str) -> list[str]:
        fleet = write_fleet(BUILD_DIR / f"fleet-rest{suffix}.yaml", N_ASSETS, base)
        return [
            PYTHON,
            "-m",
            "bench.servers",
            "bess",
            "--assets-file",
            str(fleet),
            "--mode",
            "runtime",
            "--tick",
            "1.0",
        ]

    systems: list[tuple[str, list[str], bool]] = [
        ("bess", bess(base, ""), False),
        ("bare-fastapi", [PYTHON, "-m", "bench.servers", "rest-bare"], False),
    ]
    if use_extras and extras.available("httptools"):
        systems.insert(1, ("bess+httptools", bess(base + N_ASSETS, "-httptools"), True))
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(start_server(argv, timeout_s=120, extras=ext))
            for name, argv, ext in systems
        }
        for _ in range(rounds):
            for name, _, _ in systems:
                port = servers[name].info["http_port"]
                lines = [f"{port} /telemetry/{asset_uuid(i)}" for i in range(N_ASSETS)]
                targets = write_targets(BUILD_DIR / f"targets-rest-{name}.txt", lines)
                raw[name].append(
                    run_json(
                        [
                            str(load),
                            "-P",
                            "-t",
                            str(targets),
                            "-c",
                            str(CONNS),
                            "-d",
                            str(duration),
                            "-w",
                            str(warmup),
                        ],
                        timeout_s=duration + warmup + 60,
                    )
                )
    summary: dict[str, Any] = {"conns": CONNS}
    for name in raw:
        runs = raw[name]
        summary[name] = {
            k: float(statistics.median(r[k] for r in runs)) for k in ("rps", "p50_us", "p99_us")
        }
        summary[name]["errors"] = sum(r["errors"] for r in runs)
    for num in ("bess", "bess+httptools"):
        if num in raw:
            per = [
                ratio(a["rps"], b["rps"])
                for a, b in zip(raw[num], raw["bare-fastapi"], strict=True)
            ]
            vals = [v for v in per if v is not None]
            summary[f"{num}/bare-fastapi"] = float(statistics.median(vals)) if vals else None
    return {"summary": summary, "raw": raw, "duration_s": duration, "rounds": rounds}
