"""Abusive clients on raw sockets (issue 9, items 7 and 8): a client that pipelines and never
reads its answers, and one burst of 20,000 requests, must neither grow server memory without
bound nor starve other clients or the event loop. Bounds are generous (a loaded 2-core CI
machine); speed itself is measured in bench/abuse.py, not asserted here."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.modbus.conftest import ASSET_1, mbap, port_of, read_frame, read_pdu


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class NonReader(threading.Thread):
    """Pipelines FC04 reads of the whole input table (51-byte answers to 12-byte requests) as fast
    as the server takes them and never reads an answer. A blocking socket in a thread: what
    the server does not take stays in the kernel, not in this process's memory."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.sent = 0
        self.batch = b"".join(mbap(i, 1, read_pdu(4, 0, 21)) for i in range(1000))

    def run(self) -> None:
        view = memoryview(self.batch)
        pos = 0
        while not self.stop.is_set():
            try:
                pos += self.sock.send(view[pos:])
            except TimeoutError:
                continue  # the server stopped reading: exactly what should happen
            except OSError:
                return
            self.sent += 1
            if pos == len(view):
                pos = 0

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()


async def latencies(port: int, n: int) -> list[float]:
    """Seconds per sequential FC03 request of a well-behaved client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    try:
        for i in range(n):
            t = time.perf_counter()
            writer.write(mbap(i, 2, read_pdu(3, 0, 8)))
            tid, _, pdu = await read_frame(reader)
            out.append(time.perf_counter() - t)
            assert tid == i and pdu[:2] == b"\x03\x10"
            await asyncio.sleep(0.005)
    finally:
        writer.close()
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def sample(rt: Runtime, name: str, labels: dict[str, str] | None = None) -> float:
    return rt.metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_non_reading_pipeliner_neither_starves_others_nor_grows_memory(
    runtime: Runtime,
) -> None:
    port = port_of(runtime, ASSET_1)
    abuser = NonReader(port)
    abuser.start()
    try:
        await asyncio.sleep(1.0)  # kernel buffers fill, back-pressure sets in
        rss0 = rss_bytes()
        lat = await latencies(port, 300)  # ≥ 1.5 s under abuse
        await asyncio.sleep(max(0.0, 4.0 - 1.0 - sum(lat)))
        buffered = sample(runtime, "bess_modbus_output_buffer_bytes")
        growth = rss_bytes() - rss0
    finally:
        abuser.close()
    assert p99(lat) < 0.050, f"p99 {p99(lat) * 1000:.1f} ms"
    # Write buffer: asyncio's high-water mark (64 KiB) plus one answer, not megabytes.
    assert buffered <= 256 * 1024, buffered
    assert sample(runtime, "bess_modbus_backpressure_pauses_total") >= 1
    assert growth < 64 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB"


async def test_burst_of_20000_requests_does_not_block_the_loop(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - t - 0.005)

    port = port_of(runtime, ASSET_1)
    probe_task = asyncio.create_task(probe())
    bystander = asyncio.create_task(latencies(port, 50))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 20_000
    writer.write(b"".join(mbap(i % 65536, 1, read_pdu(4, 0, 1)) for i in range(n)))
    answers = await asyncio.wait_for(reader.readexactly(n * 11), 120)
    writer.close()
    by_lat = await bystander
    done.set()
    await probe_task
    last_tid = struct.unpack(">H", answers[-11:-9])[0]
    assert last_tid == (n - 1) % 65536
    # Before: 1.7 s in one piece. The worker yields every ~2 ms of work.
    assert max(lags) < 0.25, f"loop lag max {max(lags) * 1000:.0f} ms"
    assert max(by_lat) < 0.25, f"bystander max {max(by_lat) * 1000:.0f} ms"


async def test_unread_answers_pause_and_resume_on_uvloop(
    make_settings: Callable[..., Settings],
) -> None:
    """The same back-pressure path on uvloop (what `bess-sim run` uses): answers pile up
    unread, writing pauses, then every answer arrives in order once the client reads."""
    import uvloop

    settings = make_settings()
    # 5.1 MB of answers: more than the kernel's socket buffers take on loopback (tcp_wmem max
    # 4 MB here), so the transport's own buffer must fill and pause.
    n = 100_000

    async def run() -> tuple[bytes, float]:
        rt = Runtime(
            settings, load_assets(settings.assets), load_register_map(settings.register_map)
        )
        async with rt:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small TCP window
            sock.connect(("127.0.0.1", port_of(rt, ASSET_1)))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"".join(mbap(i % 65536, 1, read_pdu(4, 0, 21)) for i in range(n)))
            await asyncio.sleep(4.0)  # nobody reads: the server's write buffer fills
            data = await asyncio.wait_for(reader.readexactly(n * 51), 120)
            writer.close()
            return data, sample(rt, "bess_modbus_backpressure_pauses_total")

    def in_thread() -> tuple[bytes, float]:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(run())

    data, pauses = await asyncio.to_thread(in_thread)
    tids = [struct.unpack(">H", data[i : i + 2])[0] for i in range(0, len(data), 51)]
    assert tids == [i % 65536 for i in range(n)]
    assert pauses >= 1
