"""The embedded HTTP server (uvicorn) of the supervisor: bound, started and stopped as one
component of the runtime's exit stack (uvicorn's ``Server(config)`` embedded, not run)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack

import uvicorn
from fastapi import FastAPI

from ..net import bind_tcp
from .protocol import header_timeout_protocol

log = logging.getLogger("bess_sim")


class HttpStartError(Exception):
    """The HTTP port cannot be bound or the server did not start (operator-facing text)."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handling: signals belong to ``runtime.serve()``,
    which stops every component in order (uvicorn would otherwise replace our handlers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_http(host: str, port: int) -> socket.socket:
    """The listening socket (port 0 = a free one: read it from ``getsockname``)."""
    try:
        sock = bind_tcp(host, port)
    except OSError as exc:
        raise HttpStartError(
            f"HTTP port {host}:{port} cannot be bound: {exc.strerror or exc}"
        ) from None
    return sock


async def start_http(
    stack: AsyncExitStack, app: FastAPI, sock: socket.socket, host: str, header_timeout_s: float
) -> None:
    """Serve ``app`` on ``sock`` until ``stack`` closes; returns once the server is up."""
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=header_timeout_protocol(header_timeout_s),
        ws="websockets-sansio",
        timeout_graceful_shutdown=2,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="bess-http")

    async def stop() -> None:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            task.cancel()
        sock.close()

    stack.push_async_callback(stop)
    while not server.started:
        if task.done():
            task.result()
            raise HttpStartError(f"HTTP server on {host}:{port} did not start")
        await asyncio.sleep(0.01)
    log.info("http: listening on http://%s:%d (dashboard /, API docs /docs)", host, port)
