"""Connection hygiene on raw sockets (issue 9, item 9): idle and half-frame timeouts, the
per-port connection cap, the listen backlog, running out of file descriptors, rate-limited log
lines naming the peer, /metrics counters, and the per-request hook seam."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from bess_sim.config import load_assets
from bess_sim.modbus.connection import HookAction
from bess_sim.modbus.points import load_register_map
from bess_sim.modbus.ratelog import RateLimitedLog
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.modbus.conftest import (
    ASSET_1,
    ASSET_3,
    TIMEOUT_S,
    closed_by_server,
    mbap,
    port_of,
    read_frame,
    read_pdu,
)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def make_runtime(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., object]]:
    """``await make_runtime(**settings)`` → a started Runtime, stopped after the test."""
    started: list[Runtime] = []

    async def make(**overrides: object) -> Runtime:
        s = make_settings(**overrides)
        rt = Runtime(s, load_assets(s.assets), load_register_map(s.register_map))
        await rt.__aenter__()
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.__aexit__(None, None, None)


async def connect(rt: Runtime, asset_id: str = ASSET_1) -> Streams:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port_of(rt, asset_id)), 10)


async def served(streams: Streams, tid: int = 1) -> bool:
    reader, writer = streams
    writer.write(mbap(tid, 1, read_pdu(4, 0, 1)))
    try:
        return (await read_frame(reader))[0] == tid
    except (asyncio.IncompleteReadError, ConnectionError):
        return False


def sample(rt: Runtime, name: str, labels: dict[str, str] | None = None) -> float:
    return rt.metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not check():  # noqa: ASYNC110 - polling metrics, nothing to wait on
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- timeouts
async def test_idle_connection_is_closed_and_counted(make_runtime: Callable[..., object]) -> None:
    rt: Runtime = await make_runtime(modbus_idle_timeout_s=0.3)  # type: ignore[assignment]
    idle = await connect(rt)
    busy = await connect(rt)
    assert await served(idle)
    for i in range(8):  # 0.8 s of polling every 0.1 s: activity keeps it open
        assert await served(busy, 10 + i)
        await asyncio.sleep(0.1)
    assert await closed_by_server(idle[0])
    assert await served(busy, 99)
    assert sample(rt, "bess_modbus_connections_closed_total", {"reason": "idle_timeout"}) == 1
    busy[1].close()
    idle[1].close()


async def test_half_frame_is_closed_by_the_frame_timeout_and_logged_with_the_peer(
    make_runtime: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bess_sim.modbus")
    rt: Runtime = await make_runtime(  # type: ignore[assignment]
        modbus_frame_timeout_s=0.3, modbus_idle_timeout_s=0
    )
    reader, writer = await connect(rt)
    peer = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
    frame = mbap(1, 1, read_pdu(4, 0, 1))
    # A byte every 0.1 s (slowloris): traffic does not extend the frame's deadline.
    closed = False
    for b in frame:
        writer.write(bytes([b]))
        await asyncio.sleep(0.1)
        if reader.at_eof() or writer.is_closing():
            break
        assert not reader._buffer  # no answer to a half frame
    closed = await closed_by_server(reader)
    assert closed
    assert sample(rt, "bess_modbus_connections_closed_total", {"reason": "frame_timeout"}) == 1
    assert sample(rt, "bess_modbus_bad_frames_total") == 1
    lines = [r.getMessage() for r in caplog.records if "incomplete" in r.getMessage()]
    assert len(lines) == 1 and peer in lines[0], lines
    writer.close()


async def test_complete_frames_never_hit_the_frame_timeout(
    make_runtime: Callable[..., object],
) -> None:
    rt: Runtime = await make_runtime(modbus_frame_timeout_s=0.2)  # type: ignore[assignment]
    streams = await connect(rt)
    for i in range(6):
        assert await served(streams, i)
        await asyncio.sleep(0.1)
    assert sample(rt, "bess_modbus_connections_closed_total", {"reason": "frame_timeout"}) == 0
    streams[1].close()


# --------------------------------------------------------------------------- cap
async def test_connections_over_the_cap_are_closed_counted_and_logged_rate_limited(
    make_runtime: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bess_sim.modbus")
    rt: Runtime = await make_runtime(modbus_max_connections=2)  # type: ignore[assignment]
    first, second = await connect(rt), await connect(rt)
    assert await served(first) and await served(second)
    other_port = await connect(rt, ASSET_3)  # the cap is per port
    assert await served(other_port)
    extra = [await connect(rt) for _ in range(25)]
    for reader, _ in extra:
        assert await closed_by_server(reader)
    assert sample(rt, "bess_modbus_connections_refused_total", {"reason": "limit"}) == 25
    refusals = [r.getMessage() for r in caplog.records if "refusing connection" in r.getMessage()]
    assert 1 <= len(refusals) <= 10, len(refusals)  # rate-limited: 10 lines a minute
    assert "127.0.0.1:" in refusals[0] and "modbus_max_connections" in refusals[0]
    # A slot frees up when a client leaves.
    first[1].close()
    await until(lambda: sample(rt, "bess_modbus_connections") == 2)
    assert await served(await connect(rt))
    for _, w in (second, other_port, *extra):
        w.close()


async def test_connection_metrics(make_runtime: Callable[..., object]) -> None:
    rt: Runtime = await make_runtime()  # type: ignore[assignment]
    a, b = await connect(rt), await connect(rt, ASSET_3)
    assert await served(a) and await served(b)
    assert sample(rt, "bess_modbus_connections") == 2
    assert sample(rt, "bess_modbus_connections_accepted_total") == 2
    a[1].close()
    await until(lambda: sample(rt, "bess_modbus_connections") == 1)
    assert sample(rt, "bess_modbus_connections_closed_total", {"reason": "client"}) == 1
    text = rt.metrics.render().decode()
    for name in (
        "bess_modbus_connections_refused_total",
        "bess_modbus_output_buffer_bytes",
        "bess_modbus_backpressure_pauses_total",
        "bess_modbus_bad_frames_total",
    ):
        assert name in text
    b[1].close()


# --------------------------------------------------------------------------- backlog
def somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


def listen_backlog(port: int) -> int:
    """Send-Q of a listening socket in ``ss -ltn`` is its accept-queue limit (the backlog)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
@pytest.mark.parametrize("backlog", [300, None])
async def test_listen_backlog_is_the_configured_one(
    make_runtime: Callable[..., object], backlog: int | None
) -> None:
    overrides = {} if backlog is None else {"modbus_backlog": backlog}
    rt: Runtime = await make_runtime(**overrides)  # type: ignore[assignment]
    want = min(backlog or 1024, somaxconn())  # the kernel caps it
    # pymodbus's listener re-listened at 100 whatever we asked.
    assert listen_backlog(port_of(rt, ASSET_1)) == want
    assert listen_backlog(port_of(rt, ASSET_3)) == want


# --------------------------------------------------------------------------- out of fds
_HOLDER = """
import socket, sys, time
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); socks.append(s)
print("connected", flush=True)
sys.stdin.read()
"""


async def test_running_out_of_file_descriptors_is_logged_and_recovers(
    make_runtime: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bess_sim.modbus")
    rt: Runtime = await make_runtime()  # type: ignore[assignment]
    port = port_of(rt, ASSET_1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The clients live in another process: only the server's accepted sockets use our fds.
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(port), "20",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        in_use = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 5, hard))
        try:
            assert await asyncio.wait_for(holder.stdout.readline(), TIMEOUT_S)
            await until(lambda: sample(rt, "bess_modbus_connections_refused_total",
                                       {"reason": "fd_exhausted"}) >= 1)  # fmt: skip
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # The listener backs off for 1 s, then takes the connections left in the backlog.
        await until(lambda: sample(rt, "bess_modbus_connections") == 20)
    finally:
        holder.kill()
        await holder.wait()
    lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert (
        lines
        and "ulimit -n" in lines[0]
        and f"port {rt.fleet.spec(ASSET_1).modbus.port}" in (lines[0])
    )
    assert await served(await connect(rt))


# --------------------------------------------------------------------------- peers, EOF
async def test_bad_frame_log_names_the_peer_even_after_a_reset(
    make_runtime: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "bess_sim.modbus")
    rt: Runtime = await make_runtime()  # type: ignore[assignment]
    peers = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port_of(rt, ASSET_1)))
        peers.append(f"127.0.0.1:{s.getsockname()[1]}")
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST right behind the garbage, before the server has read it
    await until(lambda: sample(rt, "bess_modbus_connections_accepted_total") == 3)
    await until(lambda: sample(rt, "bess_modbus_connections") == 0)
    lines = [r.getMessage() for r in caplog.records if "bad MBAP header" in r.getMessage()]
    assert len(lines) == 3
    for peer, line in zip(peers, lines, strict=True):
        assert peer in line
    assert not [r for r in caplog.records if "unknown" in r.getMessage()]


async def test_half_closed_client_still_gets_its_answers(
    make_runtime: Callable[..., object],
) -> None:
    rt: Runtime = await make_runtime()  # type: ignore[assignment]
    reader, writer = await connect(rt)
    writer.write(b"".join(mbap(i, 1, read_pdu(4, 0, 1)) for i in range(50)))
    writer.write_eof()
    assert [(await read_frame(reader))[0] for _ in range(50)] == list(range(50))
    assert await closed_by_server(reader)
    writer.close()


# --------------------------------------------------------------------------- request hook
async def test_request_hook_can_delay_drop_answer_an_exception_or_close(
    make_runtime: Callable[..., object],
) -> None:
    rt: Runtime = await make_runtime()  # type: ignore[assignment]
    assert rt.modbus is not None
    seen: list[tuple[int, int]] = []

    def hook(unit: int, fc: int) -> HookAction | None:
        seen.append((unit, fc))
        if unit == 2 and fc == 4:
            return HookAction(exception_code=0x06)  # server device busy
        if unit == 2 and fc == 3:
            return HookAction(drop=True)
        if unit == 1 and fc == 6:
            return HookAction(close=True)
        if unit == 1 and fc == 3:
            return HookAction(delay_s=0.05)
        return None

    rt.modbus.request_hook = hook
    reader, writer = await connect(rt)
    writer.write(
        mbap(1, 2, read_pdu(4, 0, 1))
        + mbap(2, 2, read_pdu(3, 0, 1))  # dropped: no answer
        + mbap(3, 1, read_pdu(3, 0, 1))  # delayed, then served
        + mbap(4, 1, read_pdu(4, 0, 1))
    )
    assert await read_frame(reader) == (1, 2, b"\x84\x06")
    assert (await read_frame(reader))[:2] == (3, 1)
    assert (await read_frame(reader))[:2] == (4, 1)
    writer.write(mbap(5, 1, struct.pack(">BHH", 6, 4, 7)))
    assert await closed_by_server(reader)
    assert rt.fleet.control(ASSET_1).heartbeat != 7  # closed without serving the write
    assert seen == [(2, 4), (2, 3), (1, 3), (1, 4), (1, 6)]
    rt.modbus.request_hook = None
    assert await served(await connect(rt))
    writer.close()


# --------------------------------------------------------------------------- rate limit
def test_rate_limited_log_counts_what_it_suppresses(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "t")
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t"), burst=3, interval_s=10, clock=lambda: now[0])
    written = [rl.log(logging.INFO, "k", "line %d", i) for i in range(7)]
    assert written == [True, True, True, False, False, False, False]
    assert rl.log(logging.INFO, "other", "other kinds have their own budget")
    now[0] = 10.0
    assert rl.log(logging.INFO, "k", "line %d", 7)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[-1] == "line 7 (4 similar lines suppressed in the previous 10 s)"
