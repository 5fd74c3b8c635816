"""``bess-sim agent --shard K/N``: the tick loop and Modbus servers of the assets at index
mod N == K of assets.yaml, and the authority on their state (DESIGN §15). No HTTP.

Publishes every tick's snapshots (JetStream, one message id per shard and tick), every
dispatch record it makes or changes (JetStream, REST and Modbus alike, so Modbus writes reach
the headend) and a heartbeat; answers dispatch commands over request–reply with the same
record or error a single process gives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence

from ..modbus.points import RegisterMap
from ..runtime import Runtime
from ..settings import Settings
from ..sim import DispatchRecord, FleetConfig, Snapshot, UnknownAssetError
from . import wire
from .bus import Bus
from .wire import Shard, Subjects

log = logging.getLogger("bess_sim.cluster")

#: Batches waiting for JetStream at most; past it the oldest is dropped and counted (the
#: tick never waits for the bus, like the database writer of DESIGN §7).
MAX_PENDING_BATCHES = 600


def shard_config(config: FleetConfig, shard: Shard) -> FleetConfig:
    """The assets this shard owns (index in the file mod N == K); every site is kept (an
    asset names its site)."""
    mine = tuple(a for i, a in enumerate(config.assets) if shard.owns(i))
    return dataclasses.replace(
        config, assets=mine, source=f"{config.source} (shard {shard.index}/{shard.count})"
    )


class Agent(Runtime):
    def __init__(
        self,
        settings: Settings,
        fleet_config: FleetConfig,
        register_map: RegisterMap,
        *,
        nats_url: str,
        shard: Shard,
        prefix: str = "bess",
    ) -> None:
        super().__init__(settings, shard_config(fleet_config, shard), register_map)
        self.shard = shard
        self.bus = Bus(nats_url, Subjects(prefix), f"bess-sim agent {shard.index}/{shard.count}")
        self._outbox: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()
        self.dropped_batches = 0

    async def _start_http(self) -> None:
        """Agents serve no HTTP: the headend does."""

    async def _start_clock(self) -> None:
        bus = await self._stack.enter_async_context(self.bus)
        await bus.ensure_streams()
        subjects = bus.subjects
        await bus.serve(subjects.command(self.shard.index, "dispatch"), self._on_dispatch)
        tasks = [
            asyncio.create_task(self._drain_outbox(), name="bess-agent-outbox"),
            asyncio.create_task(self._heartbeat(), name="bess-agent-heartbeat"),
        ]

        async def stop() -> None:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

        self._stack.push_async_callback(stop)
        self.add_sink(_TelemetryPublisher(self))
        self.fleet.add_dispatch_listener(self._on_record)
        # Publish the state at start-up, so the headend shows these assets before tick 1.
        self._enqueue_snapshots(self.fleet.snapshots())
        log.info(
            "agent %d/%d: %d assets, nats %s, prefix %s",
            self.shard.index,
            self.shard.count,
            len(self.fleet.specs),
            bus.url,
            subjects.prefix,
        )
        await super()._start_clock()

    # ------------------------------------------------------------ outgoing
    def _enqueue(self, subject: str, payload: bytes, msg_id: str) -> None:
        if self._outbox.qsize() >= MAX_PENDING_BATCHES:
            self._outbox.get_nowait()
            self.dropped_batches += 1
            log.warning("agent: bus backlog full; dropped %d batches", self.dropped_batches)
        self._outbox.put_nowait((subject, payload, msg_id))

    def _enqueue_snapshots(self, snaps: Sequence[Snapshot]) -> None:
        payload = wire.encode_snapshots(
            self.shard, self.fleet.tick_count, self.fleet.sim_time_s, snaps
        )
        self._enqueue(
            self.bus.subjects.telemetry(self.shard.index),
            payload,
            wire.telemetry_msg_id(self.shard, snaps),
        )

    def _on_record(self, rec: DispatchRecord) -> None:
        self._enqueue(
            self.bus.subjects.dispatch_records(self.shard.index),
            wire.dumps(wire.encode_record(rec)),
            wire.record_msg_id(rec),
        )

    async def _drain_outbox(self) -> None:
        while True:
            subject, payload, msg_id = await self._outbox.get()
            while True:
                try:
                    await self.bus.publish_stream(subject, payload, msg_id)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # NATS down or restarting: retry the same message (same id, so a publish
                    # that was stored but not acknowledged is not stored twice).
                    log.warning("agent: publish to %s failed (%s); retrying", subject, exc)
                    await asyncio.sleep(0.5)

    async def _heartbeat(self) -> None:
        subject = self.bus.subjects.heartbeat(self.shard.index)
        while True:
            body = {
                "shard": self.shard.index,
                "of": self.shard.count,
                "tick": self.fleet.tick_count,
                "assets": len(self.fleet.specs),
            }
            with contextlib.suppress(Exception):
                await self.bus.publish(subject, wire.dumps(body))
            await asyncio.sleep(wire.HEARTBEAT_S)

    # ------------------------------------------------------------ commands
    async def _on_dispatch(self, data: bytes) -> bytes:
        try:
            req = wire.decode_request(data)
        except (ValueError, KeyError, TypeError) as exc:
            return wire.dumps({"error": "bad_request", "detail": str(exc)})
        try:
            rec = await self.dispatch(req)
        except UnknownAssetError:
            return wire.dumps({"error": "unknown_asset", "detail": f"unknown asset {req.asset_id}"})
        return wire.dumps({"record": wire.encode_record(rec)})


class _TelemetryPublisher:
    """Tick sink: queues the snapshots for JetStream (never blocks the tick)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        self._agent._enqueue_snapshots(snapshots)
