"""Part "hotpath" (issue 15): the fast read path and the tick off the event loop.

Systems, each its own process, all measured in one run (same-run ratios):

- ``bess``: the whole simulator (``Runtime``), 1,000 assets ticking at 1 Hz, port per asset;
- ``bess-slow``: the same with the fast read path off (every request through pymodbus);
- ``libmodbus``: libmodbus's C server on one port (the ceiling);
- ``bess-10k``: 10,000 assets ticking at 1 Hz, gateway layout (100 ports × 100 unit ids), the
  tick in its worker thread; ``bess-10k-onloop``: the same with the tick on the loop (before).

Measurements (C load generator, FC04 × 10 registers at address 0):

1. throughput, closed loop, 1 and 10 connections: bess / libmodbus (target ≥ 0.5×), and the
   fast path's gain over bess-slow;
2. paced, 1,000 devices × 10 Hz: p99 (target < 2 ms) and missed polls (target 0);
3. paced, 1,000 devices × 1 Hz against the 10,000-asset fleets: p99.9 (target < 2 ms); the
   same load against bess (1,000 assets) and libmodbus is the same-run floor of the machine.
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

from . import cbuild
from .common import BUILD_DIR, PYTHON, port_block, ratio, run_json, start_server, write_fleet
from .common import write_targets as _write_targets

N_ASSETS = 1000
N_SCALE = 10_000
CONNS = (1, 10)


def _bess(tag: str, n: int, layout: str, base: int, *flags: str) -> list[str]:
    fleet = write_fleet(BUILD_DIR / f"fleet-hotpath-{tag}.yaml", n, base, layout)
    return [PYTHON, "-m", "bench.servers", "bess", "--assets-file", str(fleet), "--tick", "1.0",
            *flags]  # fmt: skip


def _targets(name: str, info: dict[str, Any], n: int, units: int = 1) -> str:
    """``n`` devices: connection i polls port i (mod the ports) and, with ``units`` > 1,
    unit 1 + i // ports (gateway layout)."""
    ports = info.get("ports") or [info["port"]]
    lines = [f"{ports[i % len(ports)]} {1 + (i // len(ports)) % units}" for i in range(n)]
    return str(_write_targets(BUILD_DIR / f"targets-hotpath-{name}-{n}.txt", lines))


def _paced(load: str, targets: str, n: int, rate: float, duration: float) -> dict[str, Any]:
    warmup = min(2.0, duration / 3)
    res = run_json(
        [load, "-t", targets, "-c", str(n), "-m", "paced", "-r", str(rate), "-d", str(duration),
         "-w", str(warmup)],
        timeout_s=duration + 90,
    )  # fmt: skip
    return {k: res[k] for k in ("p50_us", "p99_us", "p999_us", "max_us", "missed", "errors", "rps")}


def run_hotpath(quick: bool) -> dict[str, Any]:
    load = str(cbuild.load_generator())
    server = cbuild.libmodbus_server()
    duration, rounds = (0.3, 1) if quick else (3.0, 3)
    paced_s = 1.0 if quick else 20.0
    n_scale = 2_000 if quick else N_SCALE  # --quick is a smoke run: the shape, not the numbers
    out: dict[str, Any] = {
        "duration_s": duration,
        "rounds": rounds,
        "paced_s": paced_s,
        "n_scale": n_scale,
    }
    # One block of free ports for every fleet (two random blocks picked before either server
    # binds could overlap): 1,000 + 1,000 port-per-asset, then 2 × n_scale / 100 gateways.
    gw = n_scale // 100
    base = port_block(2 * N_ASSETS + 2 * gw)
    systems = [
        ("bess", _bess("fast", N_ASSETS, "port-per-asset", base)),
        ("bess-slow", _bess("slow", N_ASSETS, "port-per-asset", base + N_ASSETS, "--no-fast-path")),
        ("libmodbus", [str(server), "0", "1800"]),
    ]
    with contextlib.ExitStack() as stack:
        srv = {
            name: stack.enter_context(start_server(argv, timeout_s=180)) for name, argv in systems
        }
        raw: dict[str, dict[str, list[float]]] = {n: {} for n, _ in systems}
        for _ in range(rounds):
            for conns in CONNS:
                for name, _ in systems:
                    res = run_json(
                        [load, "-t", _targets(name, srv[name].info, conns), "-c", str(conns),
                         "-d", str(duration), "-w", "0.5", "-f", "4", "-a", "0", "-n", "10"],
                        timeout_s=duration + 60,
                    )  # fmt: skip
                    raw[name].setdefault(str(conns), []).append(res["rps"])
        rows = []
        for conns in CONNS:
            k = str(conns)
            row: dict[str, Any] = {"conns": conns}
            for name, _ in systems:
                row[name] = statistics.median(raw[name][k])
            for num, den in (("bess", "libmodbus"), ("bess", "bess-slow")):
                per_round = [ratio(a, b) for a, b in zip(raw[num][k], raw[den][k], strict=True)]
                vals = [v for v in per_round if v is not None]
                row[f"{num}/{den}"] = statistics.median(vals) if vals else None
            rows.append(row)
        out["throughput"] = rows
        for rate in (10.0, 1.0):
            out[f"paced_{rate:g}hz"] = {
                name: _paced(
                    load, _targets(name, srv[name].info, N_ASSETS), N_ASSETS, rate, paced_s
                )
                for name in ("bess", "libmodbus")
            }
    scale = [
        ("bess-10k", _bess("10k", n_scale, "gateway", base + 2 * N_ASSETS)),
        (
            "bess-10k-onloop",
            _bess("10k-onloop", n_scale, "gateway", base + 2 * N_ASSETS + gw, "--tick-on-loop"),
        ),
    ]
    out["scale_1hz"] = {}
    for name, argv in scale:  # one at a time: two 10k fleets would share the 2 CPUs
        with start_server(argv, timeout_s=300) as s:
            targets = _targets(name, s.info, N_ASSETS, units=100)
            out["scale_1hz"][name] = _paced(load, targets, N_ASSETS, 1.0, paced_s)
    return out


# --------------------------------------------------------------------------- report
def _us(v: Any) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _x(v: Any) -> str:
    return "–" if v is None else f"{v:.2f}×"


def hotpath_targets(p: dict[str, Any]) -> list[tuple[str, Any, bool | None, str]]:
    """(target, measured, holds, detail) rows of issue 15 for the targets table."""
    rows = p["throughput"]
    vs_lib = [r.get("bess/libmodbus") for r in rows]
    worst = min((v for v in vs_lib if v is not None), default=None)
    p10 = p["paced_10hz"]["bess"]
    s10k = p["scale_1hz"]["bess-10k"]
    return [
        (
            "issue 15: FC04 × 10, C load generator ≥ 0.5× libmodbus at 1 and 10 connections",
            worst,
            None if worst is None else worst >= 0.5,
            "ratios at 1/10 conns: " + ", ".join(_x(v) for v in vs_lib),
        ),
        (
            "issue 15: 1,000 devices × 10 Hz: p99 < 2 ms and 0 missed polls",
            p10["p99_us"],
            p10["p99_us"] < 2000 and p10["missed"] == 0,
            f"p99 {_us(p10['p99_us'])} µs, missed polls {p10['missed']}",
        ),
        (
            "issue 15: 10,000 assets at 1 Hz, 1,000 devices × 1 Hz: p99.9 < 2 ms",
            s10k["p999_us"],
            s10k["p999_us"] < 2000,
            f"p99.9 {_us(s10k['p999_us'])} µs (tick on the loop: "
            f"{_us(p['scale_1hz']['bess-10k-onloop']['p999_us'])} µs; libmodbus same load: "
            f"{_us(p.get('paced_1hz', {}).get('libmodbus', {}).get('p999_us'))} µs)",
        ),
    ]


def render_hotpath(p: dict[str, Any]) -> list[str]:
    lines = [
        "## Hot path (issue 15): fast read path, tick off the event loop",
        "",
        "C load generator, FC04 × 10 registers. bess: `Runtime`, 1,000 assets ticking at 1 Hz, "
        "port per asset; bess-slow: the same with the fast read path off; libmodbus: one port. "
        f"{p['rounds']} round(s) of {p['duration_s']:g} s per cell; paced runs "
        f"{p['paced_s']:g} s.",
        "",
        "| conns | bess req/s | bess-slow req/s | libmodbus req/s | bess/libmodbus | "
        "bess/bess-slow |",
        "|---|---|---|---|---|---|",
    ]
    for r in p["throughput"]:
        lines.append(
            f"| {r['conns']} | {_us(r['bess'])} | {_us(r['bess-slow'])} | {_us(r['libmodbus'])} "
            f"| {_x(r.get('bess/libmodbus'))} | {_x(r.get('bess/bess-slow'))} |"
        )
    lines += [
        "",
        "| load | system | p50 µs | p99 µs | p99.9 µs | max µs | missed polls |",
        "|---|---|---|---|---|---|---|",
    ]
    paced = [("1,000 × 10 Hz", n, r) for n, r in p["paced_10hz"].items()]
    paced += [("1,000 × 1 Hz", n, r) for n, r in p.get("paced_1hz", {}).items()]
    big = f"{p.get('n_scale', N_SCALE):,} assets; 1,000 × 1 Hz"
    paced += [(big, n, r) for n, r in p["scale_1hz"].items()]
    for load, name, r in paced:
        lines.append(
            f"| {load} | {name} | {_us(r['p50_us'])} | {_us(r['p99_us'])} | "
            f"{_us(r['p999_us'])} | {_us(r['max_us'])} | {r['missed']} |"
        )
    return [*lines, ""]
