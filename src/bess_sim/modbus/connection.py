"""One Modbus TCP client connection: MBAP framing, in-order answers, back-pressure, timeouts.

Owned by us rather than pymodbus (which decodes and answers PDUs in server.py) because
pymodbus's connection layer answers only the first request of a segment, ignores the
transport's write buffer and cannot time out a client (issue 9, docs/modbus.md):

- **Framing / pipelining.** The byte stream is split into complete MBAP frames and answered
  one by one, in order, each with its own transaction id (Modbus Messaging on TCP/IP
  Implementation Guide v1.0b §3.1.3: the transaction id pairs answers with requests a client
  sends without waiting).
- **Back-pressure.** The worker stops answering while the transport is over its write
  high-water mark (``pause_writing``) and reading stops while answers are not being read or
  unparsed input passes ``RX_HIGH_BYTES``: a client that pipelines requests and never reads
  the answers is left with full TCP windows, not a growing server buffer (measured before:
  +3.3 MB/s without bound).
- **Fairness.** The worker yields to the event loop after ``YIELD_AFTER_S`` of work, so one
  burst of 20,000 requests in one segment cannot hold the loop (measured before: 1.7 s).
- **Timeouts.** A connection with no traffic for ``idle_timeout_s`` and a request frame begun
  but not completed within ``frame_timeout_s`` are closed (0 = off).
- **Fast path (issue 15).** While no request hook is installed on the port, each frame is first
  offered to the owner's ``fast`` answerer (plain reads of the packed register images, no
  pymodbus objects); what it declines goes to ``answer`` (pymodbus) as before. Frames that
  arrive while no worker runs are answered straight from ``data_received``, so a poll costs no
  task; the first frame the fast path declines starts the worker, which keeps the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

# MBAP header (Modbus Messaging on TCP/IP v1.0b §3.1.3): transaction id, protocol id (0),
# length (= unit id + PDU), unit id. A PDU is at most 253 bytes (application protocol v1.1b3
# §4.1), so the length field is 2..254.
MBAP_HEADER_BYTES = 7
MIN_MBAP_LENGTH = 2
MAX_MBAP_LENGTH = 254
# Yield to the loop after this much back-to-back work: ~20 FC04 answers (≈100 µs each on the
# 2-core dev machine), short enough that other clients and the tick see ≤ a few ms of delay.
YIELD_AFTER_S = 0.002
# Unparsed input held per connection: stop reading above HIGH, resume below LOW. 64 KiB is
# ~5,000 pipelined 12-byte requests, far more than any master keeps in flight.
RX_HIGH_BYTES = 64 * 1024
RX_LOW_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connection hygiene of every Modbus port (settings ``modbus_*``; docs/modbus.md)."""

    max_connections: int = 100  # per port; further connections are accepted and closed
    idle_timeout_s: float = 300.0  # no request and no answer sent for this long → close
    frame_timeout_s: float = 10.0  # a request frame begun but not complete → close
    backlog: int = 1024  # listen(2) backlog (the kernel caps it at net.core.somaxconn)


@dataclass(frozen=True, slots=True)
class HookAction:
    """What a :data:`RequestHook` wants done with one request.

    Applied in this order: wait ``delay_s`` (the requests behind it on that connection wait
    too, as behind a slow device); then ``close`` the connection without answering, or
    ``drop`` the request (no answer: the master times out), or answer ``exception_code``
    instead of serving it (nothing is read or written). All defaults = serve normally.
    """

    delay_s: float = 0.0
    drop: bool = False
    exception_code: int | None = None
    close: bool = False


#: Per-request seam (for fault injection): called with ``(unit_id, function_code)`` of every
#: well-framed request before it is served, in arrival order, on the event loop. Return None
#: to serve normally, or a :class:`HookAction`. Must not block; set it with
#: ``ModbusService.request_hook``.
RequestHook = Callable[[int, int], HookAction | None]


class ConnectionOwner(Protocol):
    """What a connection needs from its listener (modbus/listener.py)."""

    port: int
    limits: ConnectionLimits

    def hook(self) -> RequestHook | None: ...

    def answer(self, frame: bytes, peer: str) -> Awaitable[bytes]: ...

    def fast(self, frame: bytes) -> bytes | None: ...

    def bad_frame(self, peer: str, detail: str) -> None: ...

    def write_paused(self) -> None: ...

    def connection_closed(self, conn: ModbusConnection, reason: str) -> None: ...


def exception_frame(tid: int, unit: int, function_code: int, code: int) -> bytes:
    """A complete exception answer (application protocol v1.1b3 §7: fc | 0x80, code)."""
    return struct.pack(">HHHBBB", tid, 0, 3, unit, (function_code | 0x80) & 0xFF, code)


class ModbusConnection(asyncio.Protocol):
    """asyncio protocol of one client (see the module doc)."""

    def __init__(self, owner: ConnectionOwner, peer: str) -> None:
        self.owner = owner
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._rx = bytearray()
        self._worker: asyncio.Task[None] | None = None
        self._write_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._reading = True
        self._close_after_answers = False
        self._close_reason = "client"
        now = self._loop.time()
        self._last_activity = now
        self._frame_started: float | None = None  # first byte of the incomplete front frame
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    # ------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)
        self._arm(self._next_deadline())

    def data_received(self, data: bytes) -> None:
        if self._close_after_answers or self.transport is None:
            return
        now = self._loop.time()
        self._last_activity = now
        rx = self._rx
        if not rx:
            self._frame_started = now
            ft = self.owner.limits.frame_timeout_s
            if ft > 0 and now + ft < self._timer_at:
                self._arm(now + ft)
        rx += data
        if self._worker is None:
            self._serve_inline()
        self._update_reading()

    def eof_received(self) -> bool | None:
        # A client that half-closes after its last request still gets its answers (True keeps
        # our side open); the worker closes once they are written.
        self._close_after_answers = True
        self._close_reason = "client"
        if self._worker is None:
            self.close("client")
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._can_write.clear()
        self.owner.write_paused()
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._can_write.set()
        self._last_activity = self._loop.time()
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        self._rx.clear()
        self._can_write.set()  # a worker waiting for the buffer wakes up and ends
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
        self.owner.connection_closed(self, self._close_reason)

    # ------------------------------------------------------------ closing
    def close(self, reason: str) -> None:
        """Close now (answers already written are flushed by the transport)."""
        transport = self.transport
        if transport is None:
            return
        self._close_reason = reason
        self._rx.clear()
        transport.close()

    def abort(self, reason: str) -> None:
        """Close now, discarding unsent answers (shutdown)."""
        transport = self.transport
        if transport is not None:
            self._close_reason = reason
            transport.abort()

    @property
    def buffered_bytes(self) -> int:
        """Answers waiting in the transport's write buffer."""
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    # ------------------------------------------------------------ reading control
    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None:
            return
        n = len(self._rx)
        if self._reading:
            if self._write_paused or n >= RX_HIGH_BYTES:
                self._reading = False
                with contextlib.suppress(RuntimeError, AttributeError):
                    transport.pause_reading()
        elif not self._write_paused and n < RX_LOW_BYTES:
            self._reading = True
            with contextlib.suppress(RuntimeError, AttributeError):
                transport.resume_reading()

    # ------------------------------------------------------------ timeouts
    def _next_deadline(self) -> float:
        limits = self.owner.limits
        deadline = float("inf")
        if limits.idle_timeout_s > 0:
            deadline = self._last_activity + limits.idle_timeout_s
        if limits.frame_timeout_s > 0 and self._frame_started is not None:
            deadline = min(deadline, self._frame_started + limits.frame_timeout_s)
        return deadline

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at != float("inf") and self.transport is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self.transport is None:
            return
        now = self._loop.time()
        limits = self.owner.limits
        started = self._frame_started
        if (
            limits.frame_timeout_s > 0
            and started is not None
            and now >= started + limits.frame_timeout_s
            and not self._front_frame_complete()
        ):
            self.owner.bad_frame(
                self.peer,
                f"request frame incomplete after {limits.frame_timeout_s:g} s "
                f"({len(self._rx)} bytes received)",
            )
            self.close("frame_timeout")
            return
        if limits.idle_timeout_s > 0 and now >= self._last_activity + limits.idle_timeout_s:
            self.close("idle_timeout")
            return
        self._arm(self._next_deadline())

    def _front_frame_complete(self) -> bool:
        rx = self._rx
        return len(rx) >= MBAP_HEADER_BYTES and len(rx) >= 6 + ((rx[4] << 8) | rx[5])

    # ------------------------------------------------------------ the fast path
    def _serve_inline(self) -> None:
        """Answer what the fast path can, right here; the rest goes to a worker task (which
        then owns the order of everything behind it). Called only while no worker runs."""
        owner = self.owner
        clock = time.perf_counter
        start = clock()
        while self.transport is not None and not self._write_paused:
            if owner.hook() is not None:
                break  # a comm fault acts on this port: every request takes the slow path
            frame = self._next_frame()
            if frame is None:
                if self._close_after_answers:
                    self.close(self._close_reason)
                return
            reply = owner.fast(frame)
            if reply is None:
                self._start_worker(frame)
                return
            self.transport.write(reply)
            self._last_activity = self._loop.time()
            if clock() - start >= YIELD_AFTER_S:
                break  # fairness: the worker goes on after other callbacks have run
        if self.transport is not None and (self._rx or self._close_after_answers):
            self._start_worker(None)

    def _start_worker(self, first: bytes | None) -> None:
        self._worker = self._loop.create_task(self._work(first), name="bess-modbus-conn")

    # ------------------------------------------------------------ the worker
    def _next_frame(self) -> bytes | None:
        """The next complete frame, or None (incomplete, or a header that cannot be Modbus
        TCP: then the connection closes once the answers before it are written)."""
        rx = self._rx
        if len(rx) < MBAP_HEADER_BYTES:
            return None
        protocol_id = (rx[2] << 8) | rx[3]
        length = (rx[4] << 8) | rx[5]
        if protocol_id != 0 or not MIN_MBAP_LENGTH <= length <= MAX_MBAP_LENGTH:
            # Not Modbus TCP, or a length no request can have: the stream cannot be
            # resynchronised, so answer what came before and close.
            self.owner.bad_frame(
                self.peer, f"bad MBAP header (protocol id {protocol_id}, length {length})"
            )
            rx.clear()
            self._frame_started = None
            self._close_after_answers = True
            self._close_reason = "bad_frame"
            return None
        total = 6 + length
        if len(rx) < total:
            return None
        frame = bytes(rx[:total])
        del rx[:total]
        self._frame_started = self._loop.time() if rx else None
        return frame

    async def _work(self, first: bytes | None) -> None:
        """Answer frames in order until the input runs dry. ``first``: a frame taken from the
        input already (declined by the fast path), answered before the rest."""
        owner = self.owner
        clock = time.perf_counter
        slice_start = clock()
        try:
            while self.transport is not None:
                if self._write_paused:
                    await self._can_write.wait()
                    slice_start = clock()
                    continue
                if first is not None:
                    frame: bytes | None = first
                    first = None
                else:
                    frame = self._next_frame()
                if frame is None:
                    break
                self._update_reading()
                reply: bytes | None
                hook = owner.hook()
                action = hook(frame[6], frame[7]) if hook is not None else None
                if hook is None:
                    reply = owner.fast(frame)
                    if reply is None:
                        reply = await owner.answer(frame, self.peer)
                elif action is None:
                    reply = await owner.answer(frame, self.peer)
                else:
                    reply = await self._apply(action, frame)
                transport = self.transport
                if transport is None:
                    return
                if reply is None:
                    if action is not None and action.close:
                        self.close("hook")
                        return
                    continue
                transport.write(reply)
                self._last_activity = self._loop.time()
                if clock() - slice_start >= YIELD_AFTER_S:
                    await asyncio.sleep(0)
                    slice_start = clock()
        finally:
            self._worker = None
        if self._close_after_answers:
            self.close(self._close_reason)

    async def _apply(self, action: HookAction, frame: bytes) -> bytes | None:
        if action.delay_s > 0:
            await asyncio.sleep(action.delay_s)
        if action.close or action.drop or self.transport is None:
            return None
        if action.exception_code is not None:
            tid = (frame[0] << 8) | frame[1]
            return exception_frame(tid, frame[6], frame[7], action.exception_code)
        return await self.owner.answer(frame, self.peer)
