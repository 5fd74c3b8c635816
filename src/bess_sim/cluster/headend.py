"""``bess-sim headend``: REST, WebSocket, dashboard and database for a fleet whose assets are
ticked by shard agents (DESIGN §15).

The API reads a ``Fleet`` (api/ports.py); here that is a ``MirrorFleet`` (mirror.py): the
full fleet of assets.yaml whose snapshots and dispatch records are those the agents
published, never computed locally. Commands go to the owning agent over request–reply and
its answer (record or error) is what the API answers, so §4/§6 reasons and codes are the
agent's own: dispatch, trip/reset, faults (``fault_mirror.py`` holds what the agents
report), grid and manual steps (every agent), registration (``registration.py``); scenarios
run here with those commands (``scenario_target.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from ..api.ports import AssetUnavailableError
from ..clock import ManualClock
from ..faults import Fault, FaultBook, FaultError, FaultNotFoundError, FaultRequest, FaultState
from ..modbus.points import RegisterMap
from ..runtime import ClockModeError, Runtime
from ..scenario.host import ScenarioHost
from ..settings import Settings
from ..sim import (
    DispatchRecord,
    DispatchRequest,
    Fleet,
    FleetConfig,
    Snapshot,
    UnknownAssetError,
)
from . import wire
from .bus import Bus, BusUnavailableError
from .fault_mirror import MirrorFaultBook
from .mirror import MirrorFleet
from .registration import ClusterRegistry
from .scenario_target import HeadendTarget, start_when_ready
from .wire import Subjects

if TYPE_CHECKING:
    from .ingest import DurableIngest

log = logging.getLogger("bess_sim.cluster")

#: Ticks per agent in bess_agent_tick_p99_seconds (two minutes at 1 Hz).
AGENT_TICK_WINDOW = 120
#: How long a command waits for its agent's answer before it is answered 503.
COMMAND_TIMEOUT_S = 2.0


class Headend(Runtime):
    def __init__(
        self,
        settings: Settings,
        fleet_config: FleetConfig,
        register_map: RegisterMap,
        *,
        nats_url: str,
        prefix: str = "bess",
        scenario: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(
            settings.model_copy(update={"modbus_enabled": False}), fleet_config, register_map
        )
        self._startup_scenario = scenario  # (text, source): started once the agents are up
        self.bus = Bus(nats_url, Subjects(prefix), "bess-sim headend")
        self._last_seen: dict[int, float] = {}  # shard → monotonic time of last message
        self._offline: set[int] = set()
        self._shard_count: int | None = None  # N, from the agents' heartbeats
        self._agent_gauges = self.metrics.add_agent_gauges()
        #: Each agent's last tick wall times (ms), from its heartbeats, for the p99 gauge.
        self._agent_tick_ms: dict[int, deque[float]] = {}
        self._shard_tick: dict[int, int] = {}  # shard → newest tick mirrored
        #: Newest tick every shard has delivered in full (bess_ticks); None before the first.
        self._fleet_tick: int | None = None
        #: With a database: its rows come from a durable consumer of their own (ingest.py).
        self._ingest: DurableIngest | None = None
        self._decode: Callable[[bytes], wire.TelemetryBatch] = wire.decode_snapshots
        registry = ClusterRegistry(
            self.fleet,
            self.history_buffer,
            modbus=lambda: None,
            storage=lambda: self.storage,
            on_change=self._fleet_changed,
        )
        registry.bind_headend(self)
        self.registry = registry
        self.scenarios = ScenarioHost(HeadendTarget(self))

    def _new_fleet(self, config: FleetConfig, start: datetime) -> Fleet:
        return MirrorFleet(config, start)

    def _new_fault_book(self, seed: int) -> FaultBook:
        return MirrorFaultBook(self.fleet, seed=seed)

    @property
    def fault_mirror(self) -> MirrorFaultBook:
        book = self.faults
        assert isinstance(book, MirrorFaultBook)
        return book

    @property
    def mirror(self) -> MirrorFleet:
        fleet = self.fleet
        assert isinstance(fleet, MirrorFleet)
        return fleet

    async def _start_clock(self) -> None:
        bus = await self._stack.enter_async_context(self.bus)
        await bus.ensure_streams()
        s = bus.subjects
        grid = await bus.kv_get(wire.GRID_KEY)
        if grid is not None:  # set over this API before a restart of the headend
            self.fleet.grid = wire.decode_grid(grid)
        registry = self.registry
        assert isinstance(registry, ClusterRegistry)
        added = registry.load_kv(await bus.kv_items())
        if added:
            log.info("headend: %d registrations from the agents' bucket", added)
        if self.storage is not None:
            from .ingest import start_durable  # loads asyncpg: only with a database

            self._ingest, self._decode = await start_durable(
                bus, self.storage, self.fleet, self.mirror.record, self._stack
            )
        # The last batch of every shard first: agents that started before the headend (or
        # kept running while it restarted) are shown at once, not at their next tick.
        await bus.subscribe_stream(s.telemetry("*"), self._on_telemetry, last_per_subject=True)
        if self._ingest is None:  # with a database, from the durable consumer above
            await bus.subscribe_stream(s.dispatch_records("*"), self._on_record)
        # Every fault's latest state (one subject per fault), then each change.
        await bus.subscribe_stream(
            s.fault_records("*", "*"), self._on_fault_record, last_per_subject=True
        )
        await bus.subscribe(s.heartbeat("*"), self._on_heartbeat)
        task = asyncio.create_task(self._watch(), name="bess-headend-watch")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        self._stack.push_async_callback(stop)
        log.info("headend: nats %s, prefix %s; waiting for agents", bus.url, s.prefix)

    # ------------------------------------------------------------ incoming
    def _seen(self, shard: int) -> None:
        if shard not in self._last_seen or shard in self._offline:
            self._agent_gauges.online.labels(str(shard)).set(1)
        self._last_seen[shard] = time.monotonic()
        if shard in self._offline:
            self._offline.discard(shard)
            log.info("headend: agent %d is back", shard)

    async def _on_heartbeat(self, data: bytes) -> None:
        hb = wire.loads(data)
        shard = int(hb["shard"])
        self._shard_count = int(hb["of"])
        self._seen(shard)
        gauges, label = self._agent_gauges, str(shard)
        gauges.assets.labels(label).set(int(hb["assets"]))
        gauges.tick.labels(label).set(int(hb["tick"]))
        window = self._agent_tick_ms.setdefault(shard, deque(maxlen=AGENT_TICK_WINDOW))
        window.extend(float(t) for t in hb.get("tick_ms", ()))
        if window:
            ordered = sorted(window)
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            gauges.tick_p99.labels(label).set(p99 / 1e3)

    async def _on_telemetry(self, data: bytes) -> None:
        batch = self._decode(data)
        if batch.of:  # N, as in the heartbeats (which may trail the first telemetry)
            self._shard_count = batch.of
        self._seen(batch.shard)
        if batch.last_part:  # a step waits for every part of its tick (wire.PART_ROWS)
            self._shard_tick[batch.shard] = max(self._shard_tick.get(batch.shard, 0), batch.tick)
            self._count_ticks()
        snaps = self.mirror.apply(batch)
        self.fault_mirror.apply_views(batch)
        if batch.tick > 0:
            # An agent's start-up state (tick 0) is shown, not recorded: a single process's
            # history and database begin with its first tick too.
            self._publish(snaps)

    async def _on_fault_record(self, data: bytes) -> None:
        self.fault_mirror.record(wire.decode_fault(wire.loads(data)))

    async def _on_record(self, data: bytes) -> None:
        rec = wire.decode_record(wire.loads(data))
        if self.fleet.has_asset(rec.asset_id):
            self.mirror.record(rec)

    def _publish(self, snaps: list[Snapshot]) -> None:
        if not snaps:
            return
        for sink in self._sinks:
            # The durable ingest feeds the database; this live feed starts at each shard's
            # last message and may skip ticks (headend restart), so it must not.
            if self._ingest is None or sink is not self.storage:
                sink.publish(snaps)
        self.metrics.telemetry_rows.inc(len(snaps))
        self.metrics.sim_time.set(self.fleet.sim_time_s)

    def _count_ticks(self) -> None:
        # bess_ticks counts what `run` counts, whole-fleet ticks (one message per shard and
        # part used to count as one), from the first one this headend saw complete.
        n = self._shard_count
        if n is None or len(self._shard_tick) < n:
            return
        done = min(self._shard_tick.values())
        if self._fleet_tick is None:
            self._fleet_tick = done  # the agents' start-up state (tick 0), or a later join
        elif done > self._fleet_tick:
            self.metrics.ticks.inc(done - self._fleet_tick)
            self._fleet_tick = done

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for shard, seen in self._last_seen.items():
                if shard not in self._offline and now - seen > wire.OFFLINE_AFTER_S:
                    self._offline.add(shard)
                    self._agent_gauges.online.labels(str(shard)).set(0)
                    log.warning(
                        "headend: agent %d silent for %.1f s: its assets are offline",
                        shard,
                        now - seen,
                    )
                    # Not passed to the sinks: the database and history hold what the agent
                    # published (an offline row would repeat its last (asset_id, ts)).
                    gone = self.mirror.mark_offline(shard)
                    self.fault_mirror.drop_views(s.asset_id for s in gone)

    async def _start(self) -> None:
        await super()._start()
        # The agents' Modbus comm events, for the comm listeners here (a scenario scorecard).
        await self.bus.subscribe(self.bus.subjects.comm("*"), self._on_comm)
        if self._startup_scenario is not None:
            task = asyncio.create_task(
                start_when_ready(self, *self._startup_scenario), name="bess-scenario-start"
            )

            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

            self._stack.push_async_callback(stop)

    async def _on_comm(self, data: bytes) -> None:
        event = wire.loads(data)
        raw_id = event.get("asset_id")
        asset_id = None if raw_id is None else str(raw_id)
        port, kind = int(event["port"]), str(event["kind"])
        if event.get("fault"):
            # A fault's effect: through the fault book, as in one process (its listeners
            # count bess_fault_comm_effects and call the comm listeners).
            self.faults.notify_comm(asset_id, port, kind)
        else:
            self._comm_event(asset_id, port, kind)

    @property
    def offline_agents(self) -> list[int]:
        """Agents silent for longer than ``wire.OFFLINE_AFTER_S``."""
        return sorted(self._offline)

    # ------------------------------------------------------------ commands
    async def step(self, seconds: float) -> int:
        """Manual clock: every agent steps ``seconds`` and acknowledges; answered once the
        stepped telemetry of every shard is mirrored here."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise ClockModeError("the clock is real-time; start with --clock manual to step")
        n = self._all_agents("step")
        timeout_s = 10.0 + 0.05 * len(clock.chunks(seconds))
        async with self._step_lock:
            answers = await asyncio.gather(
                *(
                    self.bus.request(
                        self.bus.subjects.command(k, "step"),
                        wire.dumps({"seconds": seconds}),
                        timeout_s,
                    )
                    for k in range(n)
                ),
                return_exceptions=True,
            )
            ticks = 0
            for k, answer in enumerate(answers):
                if isinstance(answer, BaseException):
                    raise AssetUnavailableError(f"agent {k}: step not acknowledged: {answer}")
                body = wire.loads(answer)
                if "error" in body:
                    raise AssetUnavailableError(str(body["error"]))
                ticks = int(body["ticks"])
                for fault in body.get("faults", ()):
                    self.fault_mirror.record(wire.decode_fault(fault))
                deadline = time.monotonic() + timeout_s
                while self._shard_tick.get(k, -1) < int(body["tick"]):
                    if time.monotonic() > deadline:
                        raise AssetUnavailableError(f"agent {k}: stepped telemetry not received")
                    await asyncio.sleep(0.01)
                # History is read from the database: its rows must be handed to it too (not
                # while it is down: history then comes from memory, and the ingest waits).
                ingest = self._ingest if self.db_status == "ok" else None
                if ingest is not None and not await ingest.caught_up(
                    k, int(body["tick"]), max(0.0, deadline - time.monotonic())
                ):
                    raise AssetUnavailableError(f"agent {k}: stepped telemetry not ingested")
        return ticks

    def _all_agents(self, what: str) -> int:
        """N, when every agent is online (a fleet-wide change goes to all or none)."""
        n = self._shard_count
        if n is None:
            raise AssetUnavailableError(f"no agent has reported yet: cannot {what}")
        missing = [k for k in range(n) if k not in self._last_seen or k in self._offline]
        if missing:
            raise AssetUnavailableError(
                f"agent(s) {missing} of {n} offline: the fleet cannot {what}"
            )
        return n

    async def _broadcast(self, command: str, payload: bytes, what: str) -> list[bytes]:
        """``payload`` to every agent; their answers, or 503 if one does not answer."""
        n = self._all_agents(what)
        answers = await asyncio.gather(
            *(
                self.bus.request(self.bus.subjects.command(k, command), payload, COMMAND_TIMEOUT_S)
                for k in range(n)
            ),
            return_exceptions=True,
        )
        out = []
        for k, answer in enumerate(answers):
            if isinstance(answer, BaseException):
                raise AssetUnavailableError(f"agent {k}: {what} not acknowledged: {answer}")
            if answer.startswith(b'{"error"'):
                body = wire.loads(answer)
                raise AssetUnavailableError(f"agent {k}: {body.get('detail', body)}")
            out.append(answer)
        return out

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None:
        """Every agent applies it (and keeps it in the KV bucket) before the mirror does."""
        payload = wire.dumps({"frequency_hz": frequency_hz, "ambient_c": ambient_c})
        answers = await self._broadcast("grid", payload, "set the grid")
        self.fleet.grid = wire.decode_grid(answers[0])

    # ------------------------------------------------------------ faults (§11)
    def _fault_shards(self, asset_id: str | None, port: int | None) -> list[int]:
        """The agents holding a fault's target: the asset's, or every agent serving a unit
        on the port (sharding by position may split one port's units over agents)."""
        owner = self.mirror.owner
        if asset_id is not None:
            ids = [asset_id]
        else:
            ids = [s.id for s in self.fleet.specs if s.modbus.port == port]
        shards = set()
        for aid in ids:
            shard = owner.get(aid)
            if shard is None:
                raise AssetUnavailableError(f"asset {aid}: no agent has reported it yet")
            shards.add(shard)
        return sorted(shards)

    async def _fault_command(self, shards: list[int], body: Mapping[str, object]) -> Fault:
        offline = [k for k in shards if k in self._offline]
        if offline:
            raise AssetUnavailableError(f"agent(s) {offline} holding the fault's target offline")
        payload = wire.dumps(body)
        answers = await asyncio.gather(
            *(
                self.bus.request(self.bus.subjects.command(k, "fault"), payload, COMMAND_TIMEOUT_S)
                for k in shards
            ),
            return_exceptions=True,
        )
        faults: list[Fault] = []
        for k, answer in zip(shards, answers, strict=True):
            if isinstance(answer, BaseException):
                raise AssetUnavailableError(f"agent {k}: fault not acknowledged: {answer}")
            msg = wire.loads(answer)
            error = msg.get("error")
            if error == "fault":
                raise FaultError(str(msg["field"]), str(msg["message"]))
            if error == "not_found":
                raise FaultNotFoundError(str(body["fault_id"]))
            if error is not None:
                raise AssetUnavailableError(f"agent {k}: {msg.get('detail', msg)}")
            batch = wire.batch_of(msg["telemetry"])
            self.mirror.apply(batch)
            self.fault_mirror.apply_views(batch)
            fault = wire.decode_fault(msg["fault"])
            self.fault_mirror.record(fault)
            faults.append(fault)
        return faults[0]

    async def add_fault(self, request: FaultRequest, *, fault_id: str | None = None) -> Fault:
        """Checked here as a single process does (same 422s), then scheduled by the owning
        agent(s) under one id; answered with the agent's fault."""
        self.fault_mirror.check_target(request)
        asset_id = None if request.asset_id is None else str(request.asset_id)
        shards = self._fault_shards(asset_id, request.port)
        body = {
            "op": "add",
            "fault_id": fault_id or str(uuid.uuid4()),
            "request": request.model_dump(mode="json"),
        }
        return await self._fault_command(shards, body)

    async def end_fault(self, fault_id: str) -> Fault:
        book = self.fault_mirror
        fault = book.get(fault_id)
        if fault is None:
            raise FaultNotFoundError(fault_id)
        if fault.state is FaultState.ENDED:
            return fault
        shards = self._fault_shards(fault.asset_id, fault.port)
        try:
            return await self._fault_command(shards, {"op": "end", "fault_id": fault_id})
        except FaultNotFoundError:
            # Its agent no longer has it (restarted before the fault reached the KV bucket):
            # it acts nowhere, so it is ended here.
            return book.end_lost(fault_id)

    async def bus_request(self, shard: int, command: str, payload: bytes) -> bytes:
        """One command to agent ``shard``; 503 (AssetUnavailableError) without an answer."""
        try:
            return await self.bus.request(
                self.bus.subjects.command(shard, command), payload, COMMAND_TIMEOUT_S
            )
        except BusUnavailableError as exc:
            raise AssetUnavailableError(f"agent {shard}: {exc}") from None

    async def _ask_owner(self, asset_id: str, command: str, payload: bytes) -> tuple[int, bytes]:
        if not self.fleet.has_asset(asset_id):
            raise UnknownAssetError(asset_id)
        shard = self.mirror.owner.get(asset_id)
        if shard is None:
            raise AssetUnavailableError(f"asset {asset_id}: no agent has reported it yet")
        if shard in self._offline:
            raise AssetUnavailableError(f"asset {asset_id}: agent {shard} is offline")
        try:
            data = await self.bus.request(
                self.bus.subjects.command(shard, command), payload, COMMAND_TIMEOUT_S
            )
        except BusUnavailableError as exc:
            raise AssetUnavailableError(f"asset {asset_id}: agent {shard}: {exc}") from None
        return shard, data

    async def asset_command(self, asset_id: str, command: Literal["trip", "reset"]) -> Snapshot:
        shard, data = await self._ask_owner(
            asset_id, "asset", wire.dumps({"asset_id": asset_id, "command": command})
        )
        if data.startswith(b'{"error"'):
            answer = wire.loads(data)
            if answer["error"] == "unknown_asset":
                raise UnknownAssetError(asset_id)
            raise AssetUnavailableError(f"agent {shard}: {answer.get('detail', answer)}")
        batch = wire.decode_snapshots(data)
        self.mirror.apply(batch)
        return self.fleet.snapshot(asset_id)

    async def dispatch(self, req: DispatchRequest) -> DispatchRecord:
        shard, data = await self._ask_owner(req.asset_id, "dispatch", wire.encode_request(req))
        answer = wire.loads(data)
        if "record" in answer:
            rec = wire.decode_record(answer["record"])
            self.mirror.record(rec)
            return rec
        if answer.get("error") == "unknown_asset":
            raise UnknownAssetError(req.asset_id)
        raise AssetUnavailableError(f"agent {shard}: {answer.get('detail', answer)}")
