"""Helpers shared by the benchmark parts: statistics, fleets, ports, subprocesses, machine info.

Nothing here is timed itself. Every subprocess is bounded (a deadline on start-up, a kill on
exit) and every socket is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / "build"
RESULTS_DIR = BENCH_DIR / "results"
REGISTER_MAP = ROOT / "register_map.yaml"
PYTHON = sys.executable
# Extra packages measured as options (uvloop, httptools) are installed here with
# `pip install --target`, never into the project's environment (see bench/extras.py).
EXTRAS_DIR = BUILD_DIR / "extras"

_NS = uuid.UUID("0b5e4c1a-7d2f-4e8a-9c3b-6a1d2e3f4b5c")


# --------------------------------------------------------------------------- statistics
def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (NaN if empty)."""
    if not sorted_values:
        return float("nan")
    i = round(p / 100.0 * (len(sorted_values) - 1))
    return float(sorted_values[min(max(i, 0), len(sorted_values) - 1)])


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/max (and count) in milliseconds of durations given in seconds."""
    v = sorted(values_s)
    return {
        "n": len(v),
        "p50_ms": percentile(v, 50) * 1e3,
        "p99_ms": percentile(v, 99) * 1e3,
        "max_ms": (v[-1] * 1e3) if v else float("nan"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


# --------------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = None
    with contextlib.suppress(OSError):
        load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": load,
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # after "pid (comm) ": state=0, ..., utime=11, stime=12 (proc(5), fields 14 and 15)
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- fleets
def asset_uuid(i: int) -> str:
    return str(uuid.uuid5(_NS, f"asset-{i}"))


def site_uuid(i: int) -> str:
    return str(uuid.uuid5(_NS, f"site-{i}"))


def fleet_data(n_assets: int, base_port: int, layout: str = "port-per-asset") -> dict[str, Any]:
    """An assets.yaml document of ``n_assets`` varied assets, 10 per site.

    Layouts: ``port-per-asset`` (asset i at base_port + i, unit 1: each BESS its own Modbus
    TCP endpoint, as real BESS controllers each have their own IP; also the DESIGN §5 default
    5020 + index) and ``gateway`` (100 unit ids per port, like a site gateway)."""
    rng = random.Random(6)
    n_sites = max(1, (n_assets + 9) // 10)
    sites = [
        {"id": site_uuid(s), "name": f"Site {s}", "location": f"zone {s % 7}"}
        for s in range(n_sites)
    ]
    assets = []
    for i in range(n_assets):
        max_mw = rng.choice([5.0, 10.0, 20.0, 50.0, 100.0])
        if layout == "gateway":
            port, unit = base_port + i // 100, 1 + i % 100
        else:
            port, unit = base_port + i, 1
        assets.append(
            {
                "id": asset_uuid(i),
                "site_id": sites[i // 10]["id"],
                "name": f"BESS-{i:05d}",
                "location": f"bay {i % 10}",
                "capacity_mwhr": max_mw * rng.choice([1.0, 2.0, 4.0]),
                "max_mw": max_mw,
                "min_mw": -max_mw * rng.choice([0.8, 1.0]),
                "ramp_rate_mw_per_min": rng.choice([5.0, 10.0, 30.0, 60.0]),
                "efficiency": rng.choice([0.9, 0.92, 0.95, 0.97]),
                "initial_soc_pct": rng.uniform(20.0, 80.0),
                "soc_min_pct": 5.0,
                "soc_max_pct": 95.0,
                "modbus": {"port": port, "unit_id": unit},
            }
        )
    return {"sites": sites, "assets": assets}


def write_fleet(path: Path, n_assets: int, base_port: int, layout: str = "port-per-asset") -> Path:
    path.write_text(yaml.safe_dump(fleet_data(n_assets, base_port, layout), sort_keys=False))
    return path


def fleet_config(n_assets: int, base_port: int = 20000, layout: str = "gateway") -> Any:
    """The FleetConfig of :func:`fleet_data`, built directly from the frozen model objects.
    (``config.parse_assets`` checks duplicate ids with a linear scan per asset — O(n²), about
    0.2 s at 1,000 assets and minutes at 50,000 — so the scale part does not go through it;
    the start-up part does, from a YAML file.)"""
    from bess_sim.sim.model import AssetSpec, FleetConfig, ModbusAddress, Site

    data = fleet_data(n_assets, base_port, layout)
    sites = tuple(Site(s["id"], s["name"], s["location"]) for s in data["sites"])
    assets = tuple(
        AssetSpec(
            id=a["id"],
            site_id=a["site_id"],
            name=a["name"],
            location=a["location"],
            capacity_mwhr=a["capacity_mwhr"],
            max_mw=a["max_mw"],
            min_mw=a["min_mw"],
            ramp_rate_mw_per_min=a["ramp_rate_mw_per_min"],
            efficiency=a["efficiency"],
            modbus=ModbusAddress(a["modbus"]["port"], a["modbus"]["unit_id"]),
            initial_soc_pct=a["initial_soc_pct"],
            soc_min_pct=a["soc_min_pct"],
            soc_max_pct=a["soc_max_pct"],
        )
        for a in data["assets"]
    )
    return FleetConfig(sites=sites, assets=assets, source=f"<bench fleet of {n_assets}>")


def activate(fleet: Any, fraction: float = 0.5) -> int:
    """Give ``fraction`` of the assets a setpoint (half charging, half discharging) so the
    physics has ramps and energy to integrate, not only idle assets. Returns how many."""
    from bess_sim.sim import DispatchRequest, DispatchSource

    n = 0
    specs = fleet.specs
    step = max(1, round(1 / fraction)) if fraction > 0 else 0
    for i, spec in enumerate(specs):
        if step == 0 or i % step:
            continue
        mw = spec.max_mw * 0.5 if (i // step) % 2 == 0 else spec.min_mw * 0.5
        fleet.dispatch(DispatchRequest(asset_id=spec.id, mw=mw, source=DispatchSource.REST))
        n += 1
    return n


# --------------------------------------------------------------------------- ports
def port_block(n: int, lo: int = 20000, hi: int = 32000, tries: int = 50) -> int:
    """Base of ``n`` consecutive ports that are free right now (below the ephemeral range, so
    client sockets of other processes do not take them)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(lo, hi - n)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports found in {lo}..{hi}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes
@dataclass
class Server:
    """A server subprocess that printed ``READY <json>`` on stdout."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)


def bench_env(extras: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT)]
    if extras:
        paths.append(str(EXTRAS_DIR))
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    env.pop("DATABASE_URL", None)
    return env


@contextlib.contextmanager
def start_server(
    argv: Sequence[str], *, timeout_s: float = 60.0, extras: bool = False
) -> Iterator[Server]:
    """Start ``argv``, wait for its ``READY`` line (bounded), stop it on exit (SIGTERM, then
    SIGKILL). Its stderr goes to a file in bench/build/logs for post-mortems."""
    log_dir = BUILD_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    name = Path(argv[0]).name if argv[0] != PYTHON else argv[2] if len(argv) > 2 else "py"
    err_path = log_dir / f"{name.replace('/', '_')}-{os.getpid()}-{time.monotonic_ns()}.err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=bench_env(extras),
            cwd=ROOT,
        )
    try:
        info = _wait_ready(proc, timeout_s, err_path)
        yield Server(proc, info)
    finally:
        stop_process(proc)


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float, err_path: Path) -> dict[str, Any]:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"server {proc.args!r} not ready within {timeout_s:.0f} s")
            if not sel.select(min(left, 0.5)):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY"):
                rest = line[5:].strip()
                if rest.startswith("{"):
                    return dict(json.loads(rest))
                return {"port": int(rest)} if rest else {}
    finally:
        sel.close()
    tail = err_path.read_text()[-2000:] if err_path.exists() else ""
    raise RuntimeError(f"server {proc.args!r} exited (rc={proc.poll()}) before READY:\n{tail}")


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


def run_json(argv: Sequence[str], timeout_s: float, extras: bool = False) -> dict[str, Any]:
    """Run a load generator to completion (bounded) and parse the JSON on its last line."""
    res = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=bench_env(extras),
        cwd=ROOT,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (rc={res.returncode}): {res.stderr[-2000:]}")
    lines = [ln for ln in res.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[0]} printed no JSON: {res.stdout[-500:]} {res.stderr[-500:]}")
    return dict(json.loads(lines[-1]))


def write_targets(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path
