"""Part 3: fleet scale in memory, and start-up time.

Per fleet size (1,000 / 10,000 / 50,000 assets, half of them dispatched), for every tick:
``Fleet.advance`` (physics + snapshots), the history ring buffer, ``ModbusService.publish``
(the input-register refresh), and ``Runtime.tick`` as a whole (all of them + metrics).
Same-run baselines:
- *allocation floor*: building one frozen slots dataclass of the Snapshot's 14 fields per
  asset — the least any per-asset Python tick can cost;
- *naive register encoder*: pymodbus's ``convert_to_registers`` per point (what DESIGN §9 says
  the struct-based image encoder beats);
- the tick budget (1 s at 1 Hz).
Start-up: a subprocess loads a 1,000-asset assets.yaml and enters ``Runtime`` (Modbus ports
bound, HTTP up); compared with bare pymodbus bringing up the same 1,000 ports.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .common import (
    BUILD_DIR,
    PYTHON,
    REGISTER_MAP,
    activate,
    fleet_config,
    port_block,
    ratio,
    start_server,
    summary_ms,
    write_fleet,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Floor:
    a: str
    b: str
    c: datetime
    d: float
    e: float
    f: float
    g: float
    h: float
    i: float
    j: float
    k: float
    m: int
    n: int
    o: int


def _floor_us(n: int, ts: datetime) -> float:
    t = time.perf_counter()
    out = [
        _Floor("x", "y", ts, i * 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1, 0, 0) for i in range(n)
    ]
    dt = time.perf_counter() - t
    del out
    return dt / n * 1e6


def _naive_encode_us(snapshots: list[Any], register_map: Any) -> float:
    from pymodbus.client.mixin import ModbusClientMixin

    from bess_sim.modbus.points import PointType, Table

    dt_map = {
        PointType.UINT16: ModbusClientMixin.DATATYPE.UINT16,
        PointType.INT16: ModbusClientMixin.DATATYPE.INT16,
        PointType.UINT32: ModbusClientMixin.DATATYPE.UINT32,
        PointType.INT32: ModbusClientMixin.DATATYPE.INT32,
        PointType.FLOAT32: ModbusClientMixin.DATATYPE.FLOAT32,
    }
    points = [(p.source, dt_map[p.type], p.scale, p.type) for p in register_map.table(Table.INPUT)]
    size = register_map.size(Table.INPUT)
    conv = ModbusClientMixin.convert_to_registers
    t = time.perf_counter()
    for snap in snapshots:
        regs = [0] * size
        addr = 0
        for source, dtype, scale, ptype in points:
            v = getattr(snap, source)
            if v is None:  # temperature_c without a thermal model (DESIGN §10): NaN
                v = math.nan
            if isinstance(v, datetime):
                v = int(v.timestamp())
            v = v / scale
            if ptype is not PointType.FLOAT32 and v != v:
                v = 0
            if ptype is not PointType.FLOAT32:
                v = round(v)
            words = conv(v, dtype)
            regs[addr : addr + len(words)] = words
            addr += len(words)
    return (time.perf_counter() - t) / len(snapshots) * 1e6


def _one_size(n: int, ticks: int) -> dict[str, Any]:
    from bess_sim.metrics import Metrics
    from bess_sim.modbus.points import load_register_map
    from bess_sim.modbus.server import ModbusService
    from bess_sim.runtime import Runtime
    from bess_sim.settings import Settings

    t0 = time.perf_counter()
    cfg = fleet_config(n, layout="gateway")
    rmap = load_register_map(REGISTER_MAP)
    settings = Settings(
        register_map=REGISTER_MAP,
        clock="manual",
        start_time=START,
        database_url=None,
        api_token=None,
        history_size=60,
    )
    rt = Runtime(settings, cfg, rmap, start_time=START)
    activate(rt.fleet, 0.5)
    svc = ModbusService(rt.fleet, rmap, "127.0.0.1", Metrics())  # not started: publish only
    setup_s = time.perf_counter() - t0
    fleet, history = rt.fleet, rt.history_buffer
    adv, hist, mb, whole = [], [], [], []
    gc.collect()
    for _ in range(ticks):
        t = time.perf_counter()
        snaps = fleet.advance(1.0)
        t1 = time.perf_counter()
        history.publish(snaps)
        t2 = time.perf_counter()
        svc.publish(snaps)
        t3 = time.perf_counter()
        adv.append(t1 - t)
        hist.append(t2 - t1)
        mb.append(t3 - t2)
    rt.add_sink(svc)
    for _ in range(ticks):
        t = time.perf_counter()
        rt.tick(1.0)
        whole.append(time.perf_counter() - t)
    snaps = fleet.snapshots()
    sample = snaps[: min(len(snaps), 5000)]
    enc = svc.input_encoder
    t = time.perf_counter()
    for s in sample:
        enc.pack(s)
    image_us = (time.perf_counter() - t) / len(sample) * 1e6
    naive_us = _naive_encode_us(sample, rmap)
    floor_us = _floor_us(n, fleet.now)
    advance = summary_ms(adv)
    tick = summary_ms(whole)
    return {
        "assets": n,
        "ticks": ticks,
        "setup_s": setup_s,
        "advance": advance,
        "history_publish": summary_ms(hist),
        "modbus_publish": summary_ms(mb),
        "tick": tick,
        "advance_us_per_asset": advance["p50_ms"] * 1e3 / n,
        "modbus_publish_us_per_asset": summary_ms(mb)["p50_ms"] * 1e3 / n,
        "floor_us_per_asset": floor_us,
        "advance/floor": ratio(advance["p50_ms"] * 1e3 / n, floor_us),
        "encode_image_us": image_us,
        "encode_naive_us": naive_us,
        "naive/image": ratio(naive_us, image_us),
        "tick_p99_budget_fraction_1hz": tick["p99_ms"] / 1000.0,
    }


def run_scale(quick: bool) -> dict[str, Any]:
    sizes = [(1000, 3), (10000, 2)] if quick else [(1000, 60), (10000, 20), (50000, 8)]
    return {"sizes": [_one_size(n, ticks) for n, ticks in sizes]}


def run_startup(quick: bool) -> dict[str, Any]:
    n = 1000
    rounds = 1 if quick else 3
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        base = port_block(n)
        fleet_file = write_fleet(BUILD_DIR / "fleet-startup.yaml", n, base)
        t = time.perf_counter()
        with start_server(
            [PYTHON, "-m", "bench.servers", "startup", "--assets-file", str(fleet_file)],
            timeout_s=120,
        ) as srv:
            process_s = time.perf_counter() - t
            info = dict(srv.info)
        base = port_block(n)
        t = time.perf_counter()
        with start_server(
            [
                PYTHON,
                "-m",
                "bench.servers",
                "pymodbus",
                "--base-port",
                str(base),
                "--devices",
                str(n),
            ],
            timeout_s=120,
        ):
            bare_s = time.perf_counter() - t
        info["process_to_ready_s"] = process_s
        info["bare_pymodbus_process_to_ready_s"] = bare_s
        runs.append(info)
    import statistics

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    return {
        "assets": n,
        "rounds": rounds,
        "config_to_ready_s": med("config_to_ready_s"),
        "config_s": med("config_s"),
        "runtime_start_s": med("runtime_start_s"),
        "import_s": med("import_s"),
        "process_to_ready_s": med("process_to_ready_s"),
        "bare_pymodbus_process_to_ready_s": med("bare_pymodbus_process_to_ready_s"),
        "process/bare": ratio(med("process_to_ready_s"), med("bare_pymodbus_process_to_ready_s")),
        "modbus_ports_bound": runs[-1].get("modbus_ports"),
        "raw": runs,
    }
