"""``bess-sim agent --shard K/N``: the tick loop and Modbus servers of the assets at index
mod N == K of assets.yaml, and the authority on their state (DESIGN §15). No HTTP.

Publishes every tick's snapshots (JetStream, one message id per shard and tick), every
dispatch record it makes or changes (JetStream, REST and Modbus alike, so Modbus writes reach
the headend), every fault change, and a heartbeat; answers dispatch, trip/reset, fault,
grid, registration and step commands over request–reply with the same record or error a
single process gives (its own fleet, fault book and registry do the work). What a restart
needs beyond the last telemetry message is kept in the KV bucket (dispatch in effect, open
faults, grid, registrations) and read back by ``resume.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..faults import Fault, FaultError, FaultNotFoundError, FaultRequest, FaultState
from ..modbus.points import RegisterMap
from ..registry import RegistrationError
from ..runtime import ClockModeError, Runtime, TickFailedError
from ..settings import Settings
from ..sim import DispatchRecord, DispatchStatus, FleetConfig, Snapshot, UnknownAssetError
from . import wire
from .bus import Bus
from .resume import load_registered, resume
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
        # Bus operations in the order the tick made them (telemetry, records, KV), one at a time.
        self._outbox: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self.dropped_batches = 0
        # Wall time of each tick since the last heartbeat (ms): agents serve no /metrics, so
        # the heartbeat carries them (bench/cluster.py reports their p99).
        self._tick_ms: list[float] = []
        self._step_faults: list[Fault] | None = None  # faults changed by the step under way
        # Modbus comm events go to the headend: its listeners (the scenario scorecard runs
        # there, cluster/scenario_target.py) and, for a fault's effects, its
        # bess_fault_comm_effects counter. A plain exception answer comes from the Modbus
        # service's listeners (this list); a fault's effect from the fault book
        # (``_comm_event`` below), so the two are told apart on the wire.
        self._comm_listeners.append(self._forward_plain_comm)
        self._comm_tasks: set[asyncio.Task[None]] = set()

    async def _start_http(self) -> None:
        """Agents serve no HTTP: the headend does."""

    def _forward_plain_comm(self, asset_id: str | None, port: int, kind: str) -> None:
        self._forward_comm(asset_id, port, kind, fault=False)

    def _comm_event(self, asset_id: str | None, port: int, kind: str) -> None:
        # The fault book's listener (Runtime.__init__): forwarded as a fault's effect only,
        # not also through this process's listeners (they hold ``_forward_plain_comm``).
        self._forward_comm(asset_id, port, kind, fault=True)

    def _forward_comm(self, asset_id: str | None, port: int, kind: str, *, fault: bool) -> None:
        # Core NATS, best effort: an event while the bus is down is lost (docs/scale-out.md).
        payload = wire.dumps({"asset_id": asset_id, "port": port, "kind": kind, "fault": fault})
        subject = self.bus.subjects.comm(self.shard.index)

        async def send() -> None:
            try:
                await self.bus.publish(subject, payload)
            except Exception as exc:
                log.debug("agent: comm event not sent: %s", exc)

        try:
            task = asyncio.get_running_loop().create_task(send())
        except RuntimeError:  # no loop (not started, or shut down): nothing to send with
            return
        self._comm_tasks.add(task)
        task.add_done_callback(self._comm_tasks.discard)

    async def _start_clock(self) -> None:
        bus = await self._stack.enter_async_context(self.bus)
        await bus.ensure_streams()
        subjects = bus.subjects
        await load_registered(bus, self.shard, self.registry)
        await resume(bus, self.shard, self.fleet, self.faults, self.fault_wiring)
        await bus.serve(subjects.command(self.shard.index, "dispatch"), self._on_dispatch)
        await bus.serve(subjects.command(self.shard.index, "step"), self._on_step)
        await bus.serve(subjects.command(self.shard.index, "asset"), self._on_asset_command)
        await bus.serve(subjects.command(self.shard.index, "grid"), self._on_grid)
        await bus.serve(subjects.command(self.shard.index, "fault"), self._on_fault_command)
        await bus.serve(subjects.command(self.shard.index, "registry"), self._on_registry)
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
        self.faults.add_listener(self._on_fault)
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
        bus = self.bus

        async def send() -> None:
            await bus.publish_stream(subject, payload, msg_id)

        self._enqueue_op(subject, send)

    def _enqueue_op(self, what: str, op: Callable[[], Awaitable[None]]) -> None:
        if self._outbox.qsize() >= MAX_PENDING_BATCHES:
            self._outbox.get_nowait()
            self._outbox.task_done()
            self.dropped_batches += 1
            log.warning("agent: bus backlog full; dropped %d messages", self.dropped_batches)
        self._outbox.put_nowait((what, op))

    def _enqueue_snapshots(self, snaps: Sequence[Snapshot]) -> None:
        """The tick's snapshots in parts of at most ``wire.PART_ROWS`` (NATS max_payload),
        each with the watchdog timers and REST views of its own assets."""
        fleet = self.fleet
        watchdog = fleet.watchdog_states()
        rest = self._rest_views(snaps)
        slices = wire.parts_of(len(snaps))
        for part, cut in enumerate(slices):
            chunk = snaps[cut]
            if len(slices) > 1:
                ids = {s.asset_id for s in chunk}
                chunk_watchdog = {a: v for a, v in watchdog.items() if a in ids}
                chunk_rest = [s for s in rest if s.asset_id in ids]
            else:
                chunk_watchdog, chunk_rest = watchdog, rest
            payload = wire.encode_snapshots(
                self.shard,
                fleet.tick_count,
                fleet.sim_time_s,
                chunk,
                watchdog=chunk_watchdog,
                rest=chunk_rest,
                part=part,
                parts=len(slices),
            )
            self._enqueue(
                self.bus.subjects.telemetry(self.shard.index, part),
                payload,
                wire.telemetry_msg_id(self.shard, chunk, part),
            )

    def _rest_views(self, snaps: Sequence[Snapshot]) -> list[Snapshot]:
        """The snapshots the REST surface shows differently (§11 view faults): the headend
        serves REST, so it is told what to show."""
        shown = self.faults.present(snaps, "rest")
        if shown is snaps:
            return []
        return [p for p, s in zip(shown, snaps, strict=True) if p is not s]

    def _on_fault(self, fault: Fault) -> None:
        if self._step_faults is not None:
            self._step_faults.append(fault)
        subject = self.bus.subjects.fault_records(self.shard.index, fault.id)
        payload = wire.dumps(wire.encode_fault(fault))
        self._enqueue(subject, payload, wire.fault_msg_id(self.shard.index, fault))
        # The open faults per agent, for a restarted agent (cluster/resume.py).
        key = wire.fault_key(self.shard.index, fault.id)
        self._keep(key, None if fault.state is FaultState.ENDED else payload)

    def _keep(self, key: str, value: bytes | None) -> None:
        """Put (or, for None, delete) a KV key in order with the messages, retried like
        them until NATS takes it."""
        bus = self.bus

        async def op() -> None:
            if value is None:
                await bus.kv_delete(key)
            else:
                await bus.kv_put(key, value)

        self._enqueue_op(f"kv {'delete' if value is None else 'put'} {key}", op)

    def _on_record(self, rec: DispatchRecord) -> None:
        self._enqueue(
            self.bus.subjects.dispatch_records(self.shard.index),
            wire.dumps(wire.encode_record(rec)),
            wire.record_msg_id(rec),
        )
        # The dispatch in effect per asset, for a restarted agent (cluster/resume.py).
        bus, aid = self.bus, rec.asset_id
        if rec.status is DispatchStatus.ACCEPTED:
            value = wire.dumps(wire.encode_record(rec))

            async def put() -> None:
                await bus.kv_put(aid, value)

            self._enqueue_op(f"kv put {aid}", put)
        elif self.fleet.has_asset(aid) and self.fleet.active_dispatch(aid) is None:

            async def delete() -> None:
                await bus.kv_delete(aid)

            self._enqueue_op(f"kv delete {aid}", delete)

    async def _drain_outbox(self) -> None:
        while True:
            what, op = await self._outbox.get()
            while True:
                try:
                    await op()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # NATS down or restarting: retry the same message (same id, so a publish
                    # that was stored but not acknowledged is not stored twice).
                    log.warning("agent: %s failed (%s); retrying", what, exc)
                    await asyncio.sleep(0.5)
            self._outbox.task_done()

    async def tick_off_loop(self, dt_s: float, pool: ThreadPoolExecutor) -> None:
        started = time.perf_counter()
        await super().tick_off_loop(dt_s, pool)
        self._tick_ms.append((time.perf_counter() - started) * 1e3)

    def tick(self, dt_s: float) -> list[Snapshot]:
        started = time.perf_counter()
        snaps = super().tick(dt_s)
        self._tick_ms.append((time.perf_counter() - started) * 1e3)
        return snaps

    async def _heartbeat(self) -> None:
        subject = self.bus.subjects.heartbeat(self.shard.index)
        while True:
            tick_ms, self._tick_ms = self._tick_ms[-1000:], []
            body = {
                "shard": self.shard.index,
                "of": self.shard.count,
                "tick": self.fleet.tick_count,
                "assets": len(self.fleet.specs),
                "tick_ms": [round(t, 3) for t in tick_ms],
            }
            with contextlib.suppress(Exception):
                await self.bus.publish(subject, wire.dumps(body))
            await asyncio.sleep(wire.HEARTBEAT_S)

    # ------------------------------------------------------------ commands
    async def _on_step(self, data: bytes) -> bytes:
        """Manual clock (DESIGN §15): step as told, answer once published."""
        return await _on_step_impl(self, data)

    async def _on_asset_command(self, data: bytes) -> bytes:
        body = wire.loads(data)
        aid, command = str(body.get("asset_id")), body.get("command")
        if command not in ("trip", "reset"):
            return wire.dumps({"error": "bad_request", "detail": f"unknown command {command!r}"})
        try:
            async with self.tick_gate.shared():  # between ticks (the tick may run in a thread)
                snap = await self.asset_command(aid, "trip" if command == "trip" else "reset")
        except UnknownAssetError:
            return wire.dumps({"error": "unknown_asset", "detail": f"unknown asset {aid}"})
        # The changed snapshot goes to the headend in the answer and, like a tick, to the
        # telemetry stream only at the next tick (a tick's message id names its timestamp).
        return wire.encode_snapshots(
            self.shard, self.fleet.tick_count, self.fleet.sim_time_s, [snap]
        )

    async def _on_fault_command(self, data: bytes) -> bytes:
        """``POST /faults`` / ``DELETE /faults/{id}`` on the headend, applied by this agent's
        own fault book (the code ``bess-sim run`` uses): the fault, or the book's error."""
        try:
            body = wire.loads(data)
            op, fault_id = body["op"], str(body["fault_id"])
            request = FaultRequest.model_validate(body["request"]) if op == "add" else None
        except (ValueError, KeyError, TypeError) as exc:
            return wire.dumps({"error": "bad_request", "detail": str(exc)})
        try:
            async with self.tick_gate.shared():
                if request is not None:
                    fault = await self.add_fault(request, fault_id=fault_id)
                else:
                    fault = await self.end_fault(fault_id)
        except FaultError as exc:
            return wire.dumps({"error": "fault", "field": exc.field, "message": exc.message})
        except FaultNotFoundError:
            return wire.dumps({"error": "not_found", "detail": f"unknown fault {fault_id}"})
        # The asset as it is now (a trip acts at once) and as REST shows it.
        snaps = [] if fault.asset_id is None else [self.fleet.snapshot(fault.asset_id)]
        fleet = self.fleet
        telemetry = wire.snapshots_msg(
            self.shard, fleet.tick_count, fleet.sim_time_s, snaps, rest=self._rest_views(snaps)
        )
        return wire.dumps({"fault": wire.encode_fault(fault), "telemetry": telemetry})

    async def _on_registry(self, data: bytes) -> bytes:
        """Registration (DESIGN §14) the headend has validated for the whole fleet, applied
        by this agent's own registry (binds a new port: its failure is the 409 answered)
        and kept in the KV bucket for a restart."""
        try:
            msg = wire.loads(data)
            op = str(msg["op"])
            body = dict(msg["body"]) if "body" in msg else {}
            item_id = str(msg["id"]) if "id" in msg else str(body["id"])
        except (ValueError, KeyError, TypeError) as exc:
            return wire.dumps({"error": "bad_request", "status": 503, "detail": str(exc)})
        reg = self.registry
        snaps: list[Snapshot] = []
        try:
            async with self.tick_gate.shared():
                if op == "add_site":
                    await reg.add_site(body)
                    self._keep(f"site.{item_id}", wire.dumps(body))
                elif op == "remove_site":
                    await reg.remove_site(item_id)
                    self._keep(f"site.{item_id}", None)
                elif op in ("add_asset", "replace_asset"):
                    if op == "add_asset":
                        await reg.add_asset(body)
                    else:
                        await reg.replace_asset(item_id, body)
                    self._keep(f"asset.{self.shard.index}.{item_id}", wire.dumps(body))
                    snaps = [self.fleet.snapshot(item_id)]
                elif op == "remove_asset":
                    await reg.remove_asset(item_id)
                    self._keep(f"asset.{self.shard.index}.{item_id}", None)
                else:
                    raise RegistrationError(503, f"unknown registry op {op!r}")
        except RegistrationError as exc:
            return wire.dumps(
                {"error": "registration", "status": exc.status, "detail": exc.detail,
                 "field": exc.field}
            )  # fmt: skip
        fleet = self.fleet
        telemetry = wire.snapshots_msg(self.shard, fleet.tick_count, fleet.sim_time_s, snaps)
        return wire.dumps({"ok": True, "telemetry": telemetry})

    async def _on_grid(self, data: bytes) -> bytes:
        """``POST /grid`` on the headend: applied here, kept in the KV bucket for a restart
        (of this or any agent), answered with the grid now in effect."""
        try:
            body = wire.loads(data)
            freq, ambient = body["frequency_hz"], body["ambient_c"]
            freq = None if freq is None else float(freq)
            ambient = None if ambient is None else float(ambient)
        except (ValueError, KeyError, TypeError) as exc:
            return wire.dumps({"error": "bad_request", "detail": str(exc)})
        async with self.tick_gate.shared():
            await self.set_grid(freq, ambient)
        value = wire.encode_grid(self.fleet.grid)
        self._keep(wire.GRID_KEY, value)
        return value

    async def _on_dispatch(self, data: bytes) -> bytes:
        try:
            req = wire.decode_request(data)
        except (ValueError, KeyError, TypeError) as exc:
            return wire.dumps({"error": "bad_request", "detail": str(exc)})
        try:
            async with self.tick_gate.shared():  # between ticks (the tick may run in a thread)
                rec = await self.dispatch(req)
        except UnknownAssetError:
            return wire.dumps({"error": "unknown_asset", "detail": f"unknown asset {req.asset_id}"})
        return wire.dumps({"record": wire.encode_record(rec)})


async def _on_step_impl(agent: Agent, data: bytes) -> bytes:
    try:
        seconds = float(wire.loads(data)["seconds"])
    except (ValueError, KeyError, TypeError) as exc:
        return wire.dumps({"error": f"bad step request: {exc}"})
    agent._step_faults = []
    try:
        ticks = await agent.step(seconds)
    except (ClockModeError, TickFailedError) as exc:
        return wire.dumps({"error": f"agent {agent.shard.index}: {exc}"})
    finally:
        changed, agent._step_faults = agent._step_faults, None
    # Acknowledged once this step's telemetry and records are in JetStream: the headend then
    # waits to have mirrored them, so a read after /sim/step sees the stepped fleet. Faults
    # that started or ended in the step come in the answer (their stream is read apart).
    await agent._outbox.join()
    return wire.dumps(
        {
            "ticks": ticks,
            "tick": agent.fleet.tick_count,
            "faults": [wire.encode_fault(f) for f in changed or ()],
        }
    )


class _TelemetryPublisher:
    """Tick sink: queues the snapshots for JetStream (never blocks the tick)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        self._agent._enqueue_snapshots(snapshots)
