"""uvicorn's HTTP protocol (httptools when installed, else h11 — as ``http="auto"`` picks) with
a request-header deadline.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but cancels that timer as
soon as any byte arrives, and sets no timer at all on a fresh connection: a client that sends
half a request line, or headers one byte a minute ("slowloris"), holds its connection — and
its file descriptor — forever. Here every connection has ``header_timeout_s`` to complete the
request line and headers, from the moment it opens and again after each response (waiting for
the next request on a keep-alive connection). A body upload in progress or a request being
answered is never cut by it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("bess_sim.api")


def header_timeout_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol closing connections whose headers do not complete within
    ``header_timeout_s`` seconds (pass it as ``uvicorn.Config(http=...)``). httptools when it
    is installed (faster, bench/RESULTS.md §5), else h11 — the choice of ``http="auto"``."""
    if importlib.util.find_spec("httptools") is not None:
        return _httptools_protocol(header_timeout_s)
    return _h11_protocol(header_timeout_s)


def _close_late(protocol: Any, header_timeout_s: float) -> None:
    if not protocol.transport.is_closing():
        client = protocol.client
        log.debug(
            "http: closing %s: request headers incomplete after %gs",
            f"{client[0]}:{client[1]}" if client else "client",
            header_timeout_s,
        )
        protocol.transport.close()


class _HeaderTimer:
    """One connection's request-header deadline: ``fire`` runs unless disarmed in time."""

    def __init__(self, timeout_s: float, fire: Callable[[], None]) -> None:
        self._timeout_s = timeout_s
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self.disarm()
        self._handle = loop.call_later(self._timeout_s, self._expired)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expired(self) -> None:
        self._handle = None
        self._fire()


def _httptools_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Disarmed by on_headers_complete when they completed in time.
            self._header_timer = _HeaderTimer(
                header_timeout_s, lambda: _close_late(self, header_timeout_s)
            )

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer.arm(self.loop)

        def on_headers_complete(self) -> None:
            self._header_timer.disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # A pipelined request already parsed has its headers: no deadline for it.
            waiting = not self.pipeline
            super().on_response_complete()
            if waiting and not self.transport.is_closing():
                self._header_timer.arm(self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.disarm()
            super().connection_lost(exc)

    return HeaderTimeoutHttpToolsProtocol


def _h11_protocol(header_timeout_s: float) -> type[H11Protocol]:

    class HeaderTimeoutH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer = _HeaderTimer(header_timeout_s, self._header_timeout)

        def _header_timeout(self) -> None:
            # IDLE: no complete request line + headers since the connection opened or the last
            # response ended (h11 moves the client to SEND_BODY/DONE once they are complete).
            if self.conn.their_state is h11.IDLE:
                _close_late(self, header_timeout_s)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer.arm(self.loop)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._header_timer.disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._header_timer.arm(self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.disarm()
            super().connection_lost(exc)

    return HeaderTimeoutH11Protocol
