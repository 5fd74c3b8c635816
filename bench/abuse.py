"""``python -m bench.abuse [--quick] [--uvloop] [--compare-src PATH]``: abusive Modbus clients.

What a well-behaved master (the bystander, FC04 at 200 req/s on its own connection) and an
HTTP client (``GET /health``, 20 req/s: the event loop's responsiveness) see while another
client on the same port misbehaves, next to a baseline without abuse measured in the same run
(issue 9, docs/modbus.md "Connections"):

- ``non-reader``: pipelines FC04 requests and never reads the answers;
- ``burst-20k``: 20,000 pipelined requests in one send, answers read, once a second;
- ``slowloris``: 50 connections each holding half a request frame;
- ``conn-storm``: connections opened and closed as fast as possible, past the per-port cap.

Each abuser is its own process; the observers share this one.

The server is ``bench.servers bess`` (the whole Runtime, 4 assets, ticking at 1 Hz). With
``--compare-src`` the same scenarios also run against another source tree (e.g. the main
branch's ``src``) for a before/after table. Server RSS growth comes from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .common import BUILD_DIR, PYTHON, port_block, ratio, start_server, summary_ms, write_fleet


def _frame(tid: int, unit: int, fc: int, address: int, count: int) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, fc, address, count)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- abusers (threads)
class _Abuser:
    """Runs ``run`` in a forked process: an abuser in the measuring process would compete
    for its GIL and slow the observers down instead of the server."""

    def __init__(self, port: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.port = port
        self.stop = ctx.Event()
        self.socks: list[socket.socket] = []
        self._proc = ctx.Process(target=self.run, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._proc.start()

    def close(self) -> None:
        self.stop.set()
        if self._proc.pid is None:  # never started
            return
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


class NonReader(_Abuser):
    def run(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(0.1)
        self.socks.append(s)
        batch = memoryview(b"".join(_frame(i, 1, 4, 0, 21) for i in range(1000)))
        pos = 0
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                pos = (pos + s.send(batch[pos:])) % len(batch)


class Burst(_Abuser):
    def run(self) -> None:
        n = 20_000
        payload = b"".join(_frame(i % 65536, 1, 4, 0, 1) for i in range(n))
        while not self.stop.is_set():
            with socket.create_connection(("127.0.0.1", self.port)) as s:
                s.settimeout(30)
                s.sendall(payload)
                want, got = n * 11, 0
                while got < want:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            self.stop.wait(1.0)


class Slowloris(_Abuser):
    def run(self) -> None:
        for _ in range(50):
            with contextlib.suppress(OSError):
                s = socket.create_connection(("127.0.0.1", self.port))
                s.sendall(_frame(1, 1, 4, 0, 1)[:5])
                self.socks.append(s)
        self.stop.wait()


class ConnStorm(_Abuser):
    def run(self) -> None:
        held: list[socket.socket] = []
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                held.append(s)
                if len(held) > 150:  # past the default cap of 100
                    held.pop(0).close()
        for s in held:
            s.close()


SCENARIOS: dict[str, Callable[[int], _Abuser] | None] = {
    "baseline": None,
    "non-reader": NonReader,
    "burst-20k": Burst,
    "slowloris": Slowloris,
    "conn-storm": ConnStorm,
}


# --------------------------------------------------------------------------- observers
async def _bystander(
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], seconds: float
) -> list[float]:
    reader, writer = streams
    out: list[float] = []
    end = time.perf_counter() + seconds
    tid = 0
    try:
        while time.perf_counter() < end:
            tid = (tid + 1) % 65536
            t = time.perf_counter()
            writer.write(_frame(tid, 1, 4, 0, 10))
            await asyncio.wait_for(reader.readexactly(9 + 20), 30)
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.005)
    finally:
        writer.close()
    return out


async def _http(port: int, seconds: float) -> list[float]:
    import httpx

    out: list[float] = []
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        while time.perf_counter() < end:
            t = time.perf_counter()
            await c.get("/health")
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
    return out


def _scenario(name: str, info: dict[str, Any], pid: int, seconds: float) -> dict[str, Any]:
    port = info["ports"][0]
    factory = SCENARIOS[name]
    abuser = factory(port) if factory is not None else None
    rss0 = _rss_mb(pid)

    async def observe() -> tuple[list[float], list[float]]:
        # The bystander is an established master: connected before the abuse starts (a
        # connection storm would otherwise take every slot of the port's cap first).
        streams = await asyncio.open_connection("127.0.0.1", port)
        if abuser is not None:
            abuser.start()
            await asyncio.sleep(0.5)
        return await asyncio.gather(_bystander(streams, seconds), _http(info["http_port"], seconds))

    try:
        modbus, http = asyncio.run(observe())
    finally:
        rss1 = _rss_mb(pid)
        if abuser is not None:
            abuser.close()
    return {
        "modbus": summary_ms(modbus),
        "http": summary_ms(http),
        "rss_growth_mb": rss1 - rss0,
    }


@contextlib.contextmanager
def _pythonpath(src: str | None) -> Iterator[None]:
    old = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join([src] + ([old] if old else []))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def run(seconds: float, uvloop: bool, compare_src: str | None) -> dict[str, dict[str, Any]]:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fleet = write_fleet(BUILD_DIR / "fleet-abuse.yaml", 4, port_block(4))
    argv = [PYTHON, "-m", "bench.servers", "bess", "--assets-file", str(fleet), "--mode",
            "runtime", "--tick", "1.0", *(["--uvloop"] if uvloop else [])]  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    systems = [("this", None)] + ([("compare", compare_src)] if compare_src else [])
    for system, src in systems:
        for name in SCENARIOS:
            # A fresh server per scenario: memory and connections left over must not carry.
            with _pythonpath(src), start_server(argv, extras=uvloop) as server:
                print(f"[abuse] {system} {name} ...", flush=True)
                results[f"{system}/{name}"] = _scenario(name, server.info, server.pid, seconds)
    return results


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| system / scenario | Modbus p50 / p99 / max ms | p99 vs baseline | /health p99 / max ms "
        "| server RSS growth MB |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        base = results.get(key.split("/")[0] + "/baseline", r)
        m, h = r["modbus"], r["http"]
        rel = ratio(m["p99_ms"], base["modbus"]["p99_ms"])
        lines.append(
            f"| {key} | {m['p50_ms']:.2f} / {m['p99_ms']:.2f} / {m['max_ms']:.1f} "
            f"| {rel:.2f}× | {h['p99_ms']:.1f} / {h['max_ms']:.1f} "
            f"| {r['rss_growth_mb']:+.1f} |"
            if rel is not None
            else f"| {key} | – | – | – | – |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 s per scenario instead of 15 s")
    ap.add_argument("--uvloop", action="store_true", help="server on uvloop (bess-sim run's)")
    ap.add_argument("--compare-src", help="also run against this source tree (its src/ dir)")
    args = ap.parse_args(argv)
    src = str(Path(args.compare_src).resolve()) if args.compare_src else None
    results = run(3.0 if args.quick else 15.0, args.uvloop, src)
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
