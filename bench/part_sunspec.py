"""SunSpec part: what a SunSpec master costs next to the native map, same server, same run.

bess-sim runs 1,000 assets (port per asset, unit 1, half dispatched, ticking at 1 Hz) with
the default profile ``both``. A Python asyncio master (one connection per asset) measures:

- **scan**: what pysunspec2's ``scan()`` sends — 3 registers at 40000, then per model its L
  and its body in reads of at most 125 registers — for every asset, one asset after another
  (pysunspec2 scans devices serially); time per asset.
- **poll**: a 1 Hz poll of every asset, spread evenly over the second, in rounds that
  alternate the SunSpec poll (701 + 713 + 802 bodies: 4 FC03 requests, 701 has 153 registers)
  with the native poll (one FC04 read of the 21 input registers of DESIGN §5); latency of a
  whole poll of one asset (all its requests, sequentially, as a master does).

The client is the same for both, so the ratios compare the servers' work; absolute numbers
include the Python client's overhead (bench/RESULTS.md has the C load generator figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import struct
import time
from typing import Any

from .common import (
    BUILD_DIR,
    PYTHON,
    port_block,
    ratio,
    start_server,
    summary_ms,
    write_fleet,
)

N_ASSETS = 1000
SUNS_BASE = 40000


class _Conn:
    """One Modbus TCP connection answering requests in order (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tid = reader, writer, 0

    async def request(self, pdu: bytes) -> bytes:
        self.tid = (self.tid + 1) & 0xFFFF
        self.writer.write(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, 1) + pdu)
        head = await self.reader.readexactly(7)
        tid, _, length, _ = struct.unpack(">HHHB", head)
        body = await self.reader.readexactly(length - 1)
        if tid != self.tid or body[0] & 0x80:
            raise RuntimeError(f"bad answer {body!r} (tid {tid} != {self.tid})")
        return body

    async def read_holding(self, address: int, count: int) -> list[int]:
        out: list[int] = []
        while count > 0:  # at most 125 registers a request (spec v1.1b3 §6.3)
            n = min(count, 125)
            body = await self.request(struct.pack(">BHH", 3, address, n))
            out += struct.unpack(f">{n}H", body[2:])
            address += n
            count -= n
        return out


async def _scan(conn: _Conn) -> dict[int, tuple[int, int]]:
    """The read sequence of pysunspec2's scan(): model id → (address, length)."""
    head = await conn.read_holding(SUNS_BASE, 3)
    if head[:2] != [0x5375, 0x6E53]:
        raise RuntimeError("no SunS marker")
    models: dict[int, tuple[int, int]] = {}
    mid, addr = head[2], SUNS_BASE + 2
    while mid != 0xFFFF:
        (length,) = await conn.read_holding(addr + 1, 1)
        await conn.read_holding(addr, length + 2)
        models[mid] = (addr, length)
        addr += length + 2
        (mid,) = await conn.read_holding(addr, 1)
    return models


async def _poll_sunspec(conn: _Conn, models: dict[int, tuple[int, int]]) -> None:
    for mid in (701, 713, 802):
        addr, length = models[mid]
        await conn.read_holding(addr + 2, length)


async def _poll_native(conn: _Conn, _models: dict[int, tuple[int, int]]) -> None:
    await conn.request(struct.pack(">BHH", 4, 0, 21))


async def _paced(
    conns: list[_Conn], models: dict[int, tuple[int, int]], poll: Any, seconds: float
) -> list[float]:
    """Poll every connection once a second, evenly spread; poll latencies in seconds."""
    lat: list[float] = []
    n = len(conns)
    t0 = time.perf_counter() + 0.05

    async def one(i: int, c: _Conn) -> None:
        k = 0
        while True:
            due = t0 + k + i / n
            if due > t0 + seconds:
                return
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            await poll(c, models)
            lat.append(time.perf_counter() - start)
            k += 1

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))
    return lat


async def _measure(ports: list[int], quick: bool) -> dict[str, Any]:
    conns: list[_Conn] = []
    for p in ports:
        reader, writer = await asyncio.open_connection("127.0.0.1", p)
        conns.append(_Conn(reader, writer))
    try:
        scan_s: list[float] = []
        models: dict[int, tuple[int, int]] = {}
        for c in conns:  # serially, as pysunspec2 scans one device at a time
            t = time.perf_counter()
            models = await _scan(c)
            scan_s.append(time.perf_counter() - t)
        seconds, rounds = (1.0, 1) if quick else (10.0, 3)
        lat: dict[str, list[float]] = {"sunspec": [], "native": []}
        per_round: list[float | None] = []
        for _ in range(rounds):
            s = sorted(await _paced(conns, models, _poll_sunspec, seconds))
            nat = sorted(await _paced(conns, models, _poll_native, seconds))
            lat["sunspec"] += s
            lat["native"] += nat
            per_round.append(ratio(summary_ms(s)["p99_ms"], summary_ms(nat)["p99_ms"]))
        known = [r for r in per_round if r is not None]
        return {
            "scan": {**summary_ms(scan_s), "total_s": sum(scan_s)},
            "poll": {k: summary_ms(v) for k, v in lat.items()},
            "p99_ratio_sunspec_over_native": statistics.median(known) if known else None,
            "requests_per_poll": {"sunspec": 4, "native": 1},
            "rounds": rounds,
            "seconds_per_poll_phase": seconds,
            "models": {str(k): v[1] for k, v in models.items()},
        }
    finally:
        for c in conns:
            c.writer.close()


def run_sunspec(quick: bool, uvloop: bool) -> dict[str, Any]:
    n = 20 if quick else N_ASSETS  # quick: keep the smoke test (240 s for all parts) short
    base = port_block(n)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fleet = write_fleet(BUILD_DIR / "fleet-sunspec.yaml", n, base)
    argv = [PYTHON, "-m", "bench.servers", "bess", "--assets-file", str(fleet),
            "--mode", "runtime", "--tick", "1.0"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(start_server(argv, timeout_s=180))
        ports = list(srv.info["ports"])[:n]
        res = asyncio.run(_measure(ports, quick))
    return {"n_assets": n, "client": "python asyncio", **res}


def render(p: dict[str, Any]) -> list[str]:
    """Markdown of this part for bench/RESULTS.md."""
    sc, poll = p["scan"], p["poll"]
    r = p.get("p99_ratio_sunspec_over_native")
    return [
        "## SunSpec profile: scan and 1 Hz poll next to the native map",
        "",
        f"{p['n_assets']:,} assets (profile both), {p['client']} master, one connection per "
        f"asset; {p['rounds']} round(s) of {p['seconds_per_poll_phase']} s per poll phase.",
        "",
        "| measurement | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| full SunSpec scan of one asset (pysunspec2's read sequence) | {sc['n']} | "
        f"{sc['p50_ms']:.2f} | {sc['p99_ms']:.2f} | {sc['max_ms']:.2f} |",
        *(
            f"| 1 Hz poll, {name} ({p['requests_per_poll'][name]} request(s)) | {v['n']} | "
            f"{v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['max_ms']:.2f} |"
            for name, v in poll.items()
        ),
        "",
        f"p99 poll latency SunSpec / native (median of per-round ratios): "
        f"{'–' if r is None else f'{r:.2f}×'}; scanning all assets took {sc['total_s']:.1f} s.",
        "",
    ]
