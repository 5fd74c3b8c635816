"""WebSocket push of telemetry: ``/ws/telemetry`` (optionally ``?asset_id=<uuid>``).

Every message is one tick::

    {"type": "telemetry", "tick": 42, "sim_time_s": 42.0, "timestamp": "...Z",
     "snapshots": [<telemetry object>, ...]}

The first message after connecting is the current state (so a client on a paused manual clock
sees the fleet at once). An unusable ``asset_id`` gets ``{"type": "error", "detail": ...}`` and
a close with code 1008 (policy violation, RFC 6455 §7.4.1).

The tick never waits for a client: :meth:`TelemetryHub.publish` only drops the tick's snapshot
list into each client's one-slot mailbox and sets an event — O(clients), no encoding, no I/O.
Each client has its own sender task that sends whatever is in the slot; a client slower than
the tick rate silently skips to the latest tick ("drop to latest"), and one that stops reading
entirely is disconnected after :data:`SEND_TIMEOUT_S`. A tick's message is encoded once per
filter (all assets, or one ``asset_id``) and shared by every client with that filter: with
500 clients, encoding each tick 500 times cost a third of a core (issue 9 item 16).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from ..sim import Snapshot
from .ports import Supervisor
from .schemas import iso_z, telemetry_dict

log = logging.getLogger("bess_sim.api.ws")

#: A client that cannot take one message in this many wall seconds is disconnected.
SEND_TIMEOUT_S = 30.0
#: RFC 6455 §7.4.1 close codes.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_GOING_AWAY = 1001


class _Client:
    """One connection's mailbox: the latest tick not yet sent (older ones are dropped)."""

    __slots__ = ("asset_id", "dropped", "event", "pending")

    def __init__(self, asset_id: str | None) -> None:
        self.asset_id = asset_id
        self.pending: tuple[int, Sequence[Snapshot]] | None = None
        self.event = asyncio.Event()
        self.dropped = 0

    def offer(self, tick: int, snapshots: Sequence[Snapshot]) -> None:
        if self.pending is not None:
            self.dropped += 1
        self.pending = (tick, snapshots)
        self.event.set()

    def take(self) -> tuple[int, Sequence[Snapshot]] | None:
        item, self.pending = self.pending, None
        self.event.clear()
        return item


class TelemetryHub:
    """A telemetry sink fanning each tick out to WebSocket clients.

    It registers itself with the supervisor while at least one client is connected, so an app
    without clients costs the tick nothing (and an app built in a test leaves no sink behind).
    """

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        self._clients: set[_Client] = set()
        self._registered = False
        # Encoded messages of the tick most recently sent, per filter. Keyed on the identity
        # of that tick's snapshot list, which is kept alive here so the id cannot be reused.
        self._encoded_for: Sequence[Snapshot] | None = None
        self._encoded: dict[str | None, str | None] = {}
        self.encodings = 0  # messages encoded so far (tests check the sharing)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Called by the tick (synchronously): never blocks, never raises."""
        tick = self._sup.fleet.tick_count
        # What the ``rest`` surface shows (DESIGN §11 view faults; the same list without any).
        snapshots = self._sup.faults.present(snapshots, "rest")
        for client in self._clients:
            client.offer(tick, snapshots)

    def _connect(self, asset_id: str | None) -> _Client:
        client = _Client(asset_id)
        self._clients.add(client)
        if not self._registered:
            self._sup.add_sink(self)
            self._registered = True
        client.offer(
            self._sup.fleet.tick_count,
            self._sup.faults.present(self._sup.fleet.snapshots(), "rest"),
        )
        return client

    def _disconnect(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients and self._registered:
            self._sup.remove_sink(self)
            self._registered = False

    @staticmethod
    def encode(tick: int, snapshots: Sequence[Snapshot], asset_id: str | None) -> str | None:
        chosen = [s for s in snapshots if asset_id is None or s.asset_id == asset_id]
        if not chosen:
            return None
        first = chosen[0]
        rows = [telemetry_dict(s) for s in chosen]
        message: dict[str, Any] = {
            "type": "telemetry",
            "tick": tick,
            "sim_time_s": round(first.sim_time_s, 9),
            "timestamp": iso_z(first.timestamp),
            "snapshots": rows,
        }
        try:
            return json.dumps(message, separators=(",", ":"), allow_nan=False)
        except ValueError:
            # A value_override fault can publish NaN/Infinity (DESIGN §11); JSON has neither,
            # so they go out as null, as in the REST answers.
            for snap in rows:
                for k, v in snap.items():
                    if isinstance(v, float) and not math.isfinite(v):
                        snap[k] = None
            return json.dumps(message, separators=(",", ":"))

    def message(self, tick: int, snapshots: Sequence[Snapshot], asset_id: str | None) -> str | None:
        """The encoded message of ``snapshots`` for a client filtering on ``asset_id``,
        encoded at most once per tick and filter."""
        if snapshots is not self._encoded_for:
            self._encoded_for = snapshots
            self._encoded = {}
        try:
            return self._encoded[asset_id]
        except KeyError:
            text = self.encode(tick, snapshots, asset_id)
            self.encodings += 1
            self._encoded[asset_id] = text
            return text

    def _filter(self, raw: str | None) -> tuple[str | None, str | None]:
        """(asset_id, error) for the ``asset_id`` query parameter."""
        if raw is None or raw == "":
            return None, None
        try:
            asset_id = str(uuid.UUID(raw))
        except ValueError:
            return None, f"asset_id must be a UUID, got {raw[:64]!r}"
        if not self._sup.fleet.has_asset(asset_id):
            return None, f"unknown asset {asset_id}"
        return asset_id, None

    async def serve(self, websocket: WebSocket) -> None:
        """Run one WebSocket connection until the client or the server goes away."""
        await websocket.accept()
        asset_id, error = self._filter(websocket.query_params.get("asset_id"))
        if error is not None:
            with contextlib.suppress(Exception):
                await websocket.send_text(json.dumps({"type": "error", "detail": error}))
                await websocket.close(CLOSE_POLICY_VIOLATION, reason=error[:120])
            return
        gate = getattr(self._sup, "tick_gate", None)
        if gate is None:
            client = self._connect(asset_id)
        else:
            # The first message reads every asset's snapshot: not while a tick computes in
            # its worker thread (it could mix two ticks). tickgate.py.
            async with gate.shared():
                client = self._connect(asset_id)
        sender = asyncio.create_task(self._send_loop(websocket, client))
        receiver = asyncio.create_task(_drain(websocket))
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._disconnect(client)
            for task in (sender, receiver):
                task.cancel()
            for task in (sender, receiver):
                with contextlib.suppress(BaseException):
                    await task
        if sender.done() and not sender.cancelled() and sender.exception() is None:
            # The sender ended on its own: the client stopped reading.
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_GOING_AWAY, reason="client too slow")

    async def _send_loop(self, websocket: WebSocket, client: _Client) -> None:
        while True:
            await client.event.wait()
            item = client.take()
            if item is None:
                continue
            text = self.message(item[0], item[1], client.asset_id)
            if text is None:
                continue
            try:
                await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT_S)
            except TimeoutError:
                log.info("websocket client too slow (no progress in %gs); closing", SEND_TIMEOUT_S)
                return


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
