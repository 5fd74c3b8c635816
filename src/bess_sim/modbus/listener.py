"""One listening Modbus TCP port: our own accept loop, connection cap, fd exhaustion.

Why not ``loop.create_server``: it calls ``listen(100)`` again on a socket we bound with a
larger backlog (asyncio's default; pymodbus's listener went through it), uvloop's accept path
silently drops connections when the process is out of file descriptors (libuv's EMFILE trick),
and neither lets us refuse a connection over the cap with a log line naming the peer. Accepting
ourselves (``add_reader`` + ``accept``) and handing each socket to
``loop.connect_accepted_socket`` works the same on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from .connection import ConnectionLimits, ModbusConnection, RequestHook
from .ratelog import RateLimitedLog

log = logging.getLogger("bess_sim.modbus")

# Errors of accept(2) that mean "out of a resource", not "that client went away".
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Back off this long after running out of fds before accepting again (asyncio's own
# ACCEPT_RETRY_DELAY is 1 s); the pending connections wait in the backlog meanwhile.
_ACCEPT_RETRY_S = 1.0
# Accepts per readiness event, so a connection storm cannot hold the loop either.
_ACCEPTS_PER_WAKEUP = 64


def _decline(frame: bytes) -> None:
    return None


def peer_text(peer: object) -> str:
    """``ip:port`` of a socket address (``[v6]:port`` for IPv6)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = str(peer[0]), peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "unknown"


class ListenerEvents:
    """Counters and rate-limited log lines of the listeners of one service (metrics.py names)."""

    def __init__(
        self,
        ratelog: RateLimitedLog,
        *,
        accepted: Callable[[], None],
        refused: Callable[[str], None],
        closed: Callable[[str], None],
        bad_frame: Callable[[], None],
        open_delta: Callable[[int], None],
        backpressure: Callable[[], None],
    ) -> None:
        self.ratelog = ratelog
        self.accepted = accepted
        self.refused = refused
        self.closed = closed
        self.count_bad_frame = bad_frame
        self.open_delta = open_delta
        self.backpressure = backpressure


class PortListener:
    """Accepts connections on one bound socket and owns them (a ``ConnectionOwner``)."""

    def __init__(
        self,
        sock: socket.socket,
        port: int,
        limits: ConnectionLimits,
        answer: Callable[[bytes, str], Awaitable[bytes]],
        hook: Callable[[], RequestHook | None],
        events: ListenerEvents,
        fast: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.sock = sock
        self.port = port  # configured port, for log lines
        self.limits = limits
        self.answer = answer
        self.hook = hook
        self.events = events
        # Fast read path (issue 15): a complete frame → its answer, or None (→ ``answer``).
        self.fast: Callable[[bytes], bytes | None] = fast or _decline
        self.connections: set[ModbusConnection] = set()
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._open = False
        # Fault injection (DESIGN §11 modbus_disconnect): while set, connections are refused
        # and this is called once per refused connection.
        self._refusing: Callable[[], None] | None = None

    @property
    def bound_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        # The socket is listening already (net.bind_tcp, with our backlog); nobody re-listens.
        self._open = True
        self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._out_of_resources(exc)
                    return
                # ECONNABORTED, EPROTO, ...: that client is gone; keep accepting.
                continue
            self._accepted(conn, peer_text(addr))

    def _out_of_resources(self, exc: OSError) -> None:
        ev = self.events
        ev.refused("fd_exhausted")
        ev.ratelog.log(
            logging.WARNING,
            "fd_exhausted",
            "modbus: port %d cannot accept connections: %s (open connections on this port: "
            "%d); raise the file-descriptor limit (ulimit -n) or lower modbus_max_connections; "
            "retrying in %.0f s",
            self.port,
            exc.strerror or exc,
            len(self.connections),
            _ACCEPT_RETRY_S,
        )
        self._loop.remove_reader(self.sock.fileno())
        self._retry = self._loop.call_later(_ACCEPT_RETRY_S, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._retry = None
        if self._open:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)

    def refuse(self, on_refused: Callable[[], None] | None) -> int:
        """With ``on_refused``: close every connection now and refuse new ones; None: accept
        again. Returns the number of connections closed."""
        self._refusing = on_refused
        if on_refused is None:
            return 0
        closed = list(self.connections)
        for conn in closed:
            conn.close("fault")  # FIN after answers already written, as a dropped link
            self.connection_closed(conn, "fault")
            on_refused()
        return len(closed)

    def _accepted(self, conn: socket.socket, peer: str) -> None:
        ev = self.events
        refusing = self._refusing
        if refusing is not None:
            # The kernel has completed the handshake (the socket listens on); the nearest to
            # "connection refused" we can give is a reset at once (SO_LINGER 0 → RST).
            ev.refused("fault")
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            refusing()
            return
        if len(self.connections) >= self.limits.max_connections:
            ev.refused("limit")
            ev.ratelog.log(
                logging.WARNING,
                "limit",
                "modbus: refusing connection from %s on port %d: %d connections open "
                "(modbus_max_connections)",
                peer,
                self.port,
                len(self.connections),
            )
            conn.close()
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            # Answers are one small segment each; Nagle would hold them for the peer's ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        proto = ModbusConnection(self, peer)
        self.connections.add(proto)  # counted now, so the cap holds during the handover
        ev.accepted()
        ev.open_delta(1)
        task = self._loop.create_task(self._hand_over(conn, proto))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hand_over(self, conn: socket.socket, proto: ModbusConnection) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: proto, sock=conn)
        except OSError:
            # Reset before the transport existed: still counted and named.
            conn.close()
            self.connection_closed(proto, "client")
        except asyncio.CancelledError:
            conn.close()  # shutdown during the hand-over: don't leak the fd
            raise

    # ------------------------------------------------------------ ConnectionOwner
    def bad_frame(self, peer: str, detail: str) -> None:
        self.events.count_bad_frame()
        self.events.ratelog.log(
            logging.INFO,
            "bad_frame",
            "modbus: closing connection from %s on port %d: %s",
            peer,
            self.port,
            detail,
        )

    def write_paused(self) -> None:
        self.events.backpressure()

    def connection_closed(self, conn: ModbusConnection, reason: str) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.events.open_delta(-1)
            self.events.closed(reason)

    # ------------------------------------------------------------ shutdown
    async def close(self) -> None:
        """Stop accepting and close every connection."""
        self._open = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections):
            # Answers already queued are flushed (FIN), unless the client is not reading them:
            # then reset, or the socket would wait for a reader forever.
            if conn.buffered_bytes:
                conn.abort("shutdown")
            else:
                conn.close("shutdown")
            self.connection_closed(conn, "shutdown")
        # Let the transports run connection_lost (workers are cancelled there).
        await asyncio.sleep(0)
