"""HTTP requests are served between ticks (issue 15, ``bess_sim/tickgate.py``).

With the real-time clock the tick computes in a worker thread; a handler must not read or
change the fleet meanwhile (``GET /dispatches`` iterating the dispatch log while the tick ends
a dispatch would raise). Each request's handler therefore runs inside the runtime's
``TickGate.shared()``. The request body is read before entering the gate and the response is
sent after leaving it, so a client that sends or reads slowly cannot hold the tick back.
WebSockets are not gated: their handler only reads snapshots the tick has published.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TickGateMiddleware:
    def __init__(self, app: ASGIApp, gate: Callable[[], AbstractAsyncContextManager[None]]) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: list[Message] = []
        while True:
            message = await receive()
            body.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return body.pop(0) if body else await receive()

        out: list[Message] = []

        async def keep(message: Message) -> None:
            out.append(message)

        try:
            async with self.gate():
                await self.app(scope, replay, keep)
        finally:
            for message in out:
                await send(message)
