"""Wires the components of one simulator and runs them: start-up → tick loop → shutdown.

``Runtime`` is embeddable (tests run two in one process): everything it uses comes from the
``Settings`` and config objects passed in. ``run()`` adds signal handling for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol

from fastapi import FastAPI

from .api.app import create_app
from .api.http_server import HttpStartError, bind_http, start_http
from .clock import ManualClock, RealTimeClock
from .fault_wiring import FaultWiring, ModbusFace
from .faults import Fault, FaultBook, FaultRequest
from .metrics import Metrics
from .modbus.connection import ConnectionLimits
from .modbus.points import RegisterMap
from .modbus.server import ModbusBindError, ModbusService
from .registry import Registry
from .scenario.host import ScenarioHost
from .scenario.target import CommListener, RuntimeTarget
from .settings import Settings
from .sim import DispatchRecord, DispatchRequest, Fleet, FleetConfig, HistoryBuffer, Snapshot
from .sim.history import HistoryQuery, bucket_snapshots
from .sim.model import TelemetrySink
from .tickgate import TickGate, tick_thread

if TYPE_CHECKING:
    from .storage import Storage
    from .storage.faults import FaultStore

log = logging.getLogger("bess_sim")

#: Largest number of ticks one ``POST /sim/step`` may run (a day of 0.1 s ticks is 864k).
MAX_STEP_TICKS = 1_000_000
# Yield to the event loop every this many ticks of a long step, so Modbus and HTTP keep
# answering while a day of simulated time is computed.
_STEP_YIELD_EVERY = 50
# Snapshots per slice of a sliced sink (runtime.tick_off_loop): ~1 ms of tuple building.
_SINK_SLICE = 1000


class StartupError(Exception):
    """The simulator cannot start (port in use, ...). The CLI prints it and exits 2."""


class ClockModeError(Exception):
    """``step`` on the real-time clock."""


class TickFailedError(Exception):
    """The tick loop has failed (see ``Runtime.failure``): time no longer advances."""


class HistorySource(Protocol):
    async def history(self, query: HistoryQuery) -> list[Snapshot]: ...


class Runtime:
    """One simulator: fleet + clock + Modbus + HTTP (+ database when configured)."""

    def __init__(
        self,
        settings: Settings,
        fleet_config: FleetConfig,
        register_map: RegisterMap,
        *,
        start_time: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.register_map = register_map
        start = start_time or settings.start_time or datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.fleet = self._new_fleet(fleet_config, start)
        self.metrics = Metrics()
        self.fleet.add_dispatch_listener(self._count_dispatch)
        self.history_buffer = HistoryBuffer(
            (a.id for a in fleet_config.assets), settings.history_size
        )
        self.clock: RealTimeClock | ManualClock = (
            ManualClock(settings.tick_interval_s)
            if settings.clock == "manual"
            else RealTimeClock(settings.tick_interval_s, settings.speed)
        )
        self._sinks: list[TelemetrySink] = [self.history_buffer]
        # Sinks that only swap references (safe to call from the tick thread); the others
        # (database queue, WebSocket, scenario) are called on the loop. tickgate.py.
        self._thread_sinks: list[TelemetrySink] = [self.history_buffer]
        # Loop sinks that take any part of a tick's snapshots (rows, not ticks): fed in
        # slices of _SINK_SLICE with the loop free in between (the database buffer builds a
        # tuple per snapshot: ~10 ms at 10,000 assets in one go).
        self._sliced_sinks: list[TelemetrySink] = []
        #: Serialises the tick thread with the loop's users of the fleet (HTTP, Modbus writes).
        self.tick_gate = TickGate()
        self._history_source: HistorySource | None = None
        self.storage: Storage | None = None  # set when DATABASE_URL is configured
        self.fault_store: FaultStore | None = None  # fault records, with a database
        self._db_status: Literal["ok", "down", "disabled"] = "disabled"
        self._step_lock = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._tick_task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self.http_port: int | None = None
        self.modbus_ports: dict[int, int] = {}  # configured port → bound port
        self.modbus: ModbusService | None = None
        #: Fault injection (DESIGN §11): the book is pure; the wiring applies its effects.
        self.faults = self._new_fault_book(settings.seed)
        self.fault_wiring = FaultWiring(self.faults, self.fleet, self.metrics, lambda: self.modbus)
        self.registry = Registry(
            self.fleet,
            self.history_buffer,
            modbus=lambda: self.modbus,
            storage=lambda: self.storage,
            on_change=self._fleet_changed,
        )
        # Modbus answers the EMS got wrong (exceptions, ...), for the scenario scorecard.
        self._comm_listeners: list[CommListener] = []
        # Fault effects on the wire (drops, delays, refusals, 0x0B) reach the same listeners.
        self.faults.add_comm_listener(self._comm_event)
        self.scenarios = ScenarioHost(RuntimeTarget(self))

    def _new_fleet(self, config: FleetConfig, start: datetime) -> Fleet:
        # The scale-out headend (cluster/headend.py) hands in a mirror of its agents' fleets.
        return Fleet(config, start)

    def _new_fault_book(self, seed: int) -> FaultBook:
        # The scale-out headend hands in a mirror of its agents' faults.
        return FaultBook(self.fleet, seed=seed)

    async def dispatch(self, req: DispatchRequest) -> DispatchRecord:
        """Validate and apply one dispatch (DESIGN §4); async because the scale-out headend
        forwards it to the agent that owns the asset."""
        return self.fleet.dispatch(req)

    async def asset_command(self, asset_id: str, command: Literal["trip", "reset"]) -> Snapshot:
        """Trip or reset one asset (DESIGN §11); the telemetry right after."""
        if command == "trip":
            self.fleet.trip(asset_id)
        else:
            self.fleet.reset_fault(asset_id)
        return self.fleet.snapshot(asset_id)

    async def add_fault(self, request: FaultRequest, *, fault_id: str | None = None) -> Fault:
        """Schedule a fault (DESIGN §11); async because the scale-out headend forwards it to
        the agent(s) owning its target. :class:`FaultError` names a bad field."""
        return self.faults.add(request, fault_id=fault_id)

    async def end_fault(self, fault_id: str) -> Fault:
        """End (or cancel) a fault now; :class:`FaultNotFoundError` for an unknown id."""
        return self.faults.end(fault_id)

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None:
        """Fleet-wide grid conditions (DESIGN §10; None = unchanged); async because the
        scale-out headend sends them to every agent."""
        self.fleet.set_grid(frequency_hz=frequency_hz, ambient_c=ambient_c)

    def _comm_event(self, asset_id: str | None, port: int, kind: str) -> None:
        for cb in list(self._comm_listeners):
            cb(asset_id, port, kind)

    # ------------------------------------------------------------ ticking
    def add_sink(self, sink: TelemetrySink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: TelemetrySink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    async def tick_off_loop(self, dt_s: float, pool: ThreadPoolExecutor) -> None:
        """The real-time clock's tick (tickgate.py): the same steps as :meth:`tick`, the
        physics and the reference-swapping sinks in ``pool``'s thread, no user of the fleet
        on the loop in between."""
        loop = asyncio.get_running_loop()
        m = self.metrics
        async with self.tick_gate.exclusive():
            started = time.perf_counter()
            # Dispatch records ended by the tick reach their listeners (database queue,
            # scorecard, NATS outbox: asyncio objects) here on the loop, not in the thread.
            self.fleet.hold_notifications()
            try:
                snapshots = await loop.run_in_executor(pool, self.fleet.advance, dt_s)
            finally:
                self.fleet.release_notifications()
            t0 = time.perf_counter()
            if self.faults.advance():
                snapshots = self.fleet.snapshots()
            on_loop = time.perf_counter() - t0
            threaded = [s for s in self._sinks if s in self._thread_sinks]
            await loop.run_in_executor(pool, _publish, threaded, snapshots)
            t0 = time.perf_counter()
            rest = [s for s in self._sinks if s not in threaded]
            _publish([s for s in rest if s not in self._sliced_sinks], snapshots)
            held = max(on_loop, time.perf_counter() - t0)
            for sink in [s for s in rest if s in self._sliced_sinks]:
                for i in range(0, len(snapshots), _SINK_SLICE):
                    t0 = time.perf_counter()
                    sink.publish(snapshots[i : i + _SINK_SLICE])
                    held = max(held, time.perf_counter() - t0)
                    await asyncio.sleep(0)
            m.tick_duration.observe(time.perf_counter() - started)
            m.tick_loop_held.observe(held)
            m.ticks.inc()
            m.telemetry_rows.inc(len(snapshots))
            m.sim_time.set(self.fleet.sim_time_s)

    def tick(self, dt_s: float) -> list[Snapshot]:
        """Advance the fleet by ``dt_s`` simulated seconds and publish the snapshots."""
        started = time.perf_counter()
        snapshots = self.fleet.advance(dt_s)
        if self.faults.advance():
            # A fault started or ended at this tick boundary (a trip changes the snapshot).
            snapshots = self.fleet.snapshots()
        for sink in self._sinks:
            sink.publish(snapshots)
        self.metrics.tick_duration.observe(time.perf_counter() - started)
        self.metrics.ticks.inc()
        self.metrics.telemetry_rows.inc(len(snapshots))
        self.metrics.sim_time.set(self.fleet.sim_time_s)
        return snapshots

    async def step(self, seconds: float) -> int:
        """Manual clock: advance ``seconds`` in ticks of ``tick_interval_s`` (the last one
        shorter); returns the number of ticks run."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise ClockModeError("the clock is real-time; start with --clock manual to step")
        chunks = clock.chunks(seconds)
        async with self._step_lock:
            for i, dt_s in enumerate(chunks, 1):
                if self._failure is not None:
                    raise TickFailedError(self._failure)
                try:
                    self.tick(dt_s)
                except Exception as exc:
                    self._fail(exc)
                    raise TickFailedError(self._failure) from None
                if i % _STEP_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        return len(chunks)

    @property
    def failure(self) -> str | None:
        """Why the tick loop stopped (None while it runs): /health answers 503 ``failed``."""
        return self._failure

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = f"tick {self.fleet.tick_count + 1} failed: {type(exc).__name__}: {exc}"
            log.error(
                "tick loop stopped (simulated time %s): %s",
                self.fleet.now.isoformat(),
                self._failure,
                exc_info=exc,
            )

    def _on_tick_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._fail(exc)

    def _count_dispatch(self, record: DispatchRecord) -> None:
        self.metrics.dispatches.labels(record.source.value, record.status.value).inc()

    def _on_overrun(self) -> None:
        self.metrics.tick_overruns.inc()

    def comm_listeners(self) -> list[CommListener]:
        """The live list of comm-event listeners (``cb(asset_id, port, kind)``)."""
        return self._comm_listeners

    # ------------------------------------------------------------ history / health
    def set_history_source(self, source: HistorySource) -> None:
        self._history_source = source

    def _fleet_changed(self) -> None:
        if self.modbus is not None:
            self.modbus_ports = self.modbus.ports
        self.faults.refresh()

    async def history(self, query: HistoryQuery) -> list[Snapshot]:
        # An asset deleted during this run (DESIGN §14) is read from the ring until restart.
        if self._history_source is not None and self.fleet.has_asset(query.asset_id):
            return await self._history_source.history(query)
        return self.memory_history(query)

    def memory_history(self, query: HistoryQuery) -> list[Snapshot]:
        """History from the in-memory ring buffer (also the storage fallback while the
        database is down); ``bucket_s`` averages with the same rules as the database."""
        if query.bucket_s is None:
            return self.history_buffer.query(query)
        raw = self.history_buffer.query(
            dataclasses.replace(query, limit=self.history_buffer.size, bucket_s=None)
        )
        return bucket_snapshots(raw, query.bucket_s, query.limit)

    @property
    def db_status(self) -> Literal["ok", "down", "disabled"]:
        return self._db_status

    def set_db_status(self, status: Literal["ok", "down", "disabled"]) -> None:
        self._db_status = status

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        s = self.settings
        cfg = self.fleet.config
        log.info(
            "assets: %d assets in %d sites from %s",
            len(cfg.assets),
            len(cfg.sites),
            cfg.source,
        )
        log.info(
            "register map: %d points from %s",
            len(self.register_map.points),
            self.register_map.source,
        )
        if s.database_url is None:
            log.info(
                "database: disabled (in memory; history ring buffer of %d per asset)",
                s.history_size,
            )
            log.info("registration: assets registered over the API are kept in memory until exit")
        # --- storage wiring (persistence issue) goes here: restore before anything ticks.
        if s.database_url is not None:
            await self._start_storage(s.database_url)
        if s.modbus_enabled:
            await self._start_modbus()
        await self._start_http()
        self._stack.push_async_callback(self.scenarios.aclose)
        await self._start_clock()

    async def _start_clock(self) -> None:
        s = self.settings
        if isinstance(self.clock, RealTimeClock):
            log.info(
                "clock: real time, tick %.3g s, speed %gx, start %s",
                s.tick_interval_s,
                s.speed,
                self.fleet.start_time.isoformat(),
            )
            tick: Callable[[float], object] = self.tick
            if s.tick_thread:
                pool = tick_thread(self._stack)
                tick = functools.partial(self.tick_off_loop, pool=pool)
            self._tick_task = asyncio.create_task(
                self.clock.run(tick, self._on_overrun), name="bess-tick"
            )
            self._tick_task.add_done_callback(self._on_tick_task_done)
            self._stack.push_async_callback(self._stop_ticking)
        else:
            log.info(
                "clock: manual (POST /sim/step), tick %.3g s, start %s",
                s.tick_interval_s,
                self.fleet.start_time.isoformat(),
            )

    async def _start_storage(self, url: str) -> None:
        # Imported here so a run without DATABASE_URL never loads asyncpg.
        from .storage import Storage, StorageConfig, describe_url

        log.info("database: connecting to %s", describe_url(url))
        storage = Storage(
            StorageConfig(
                url, reset=self.settings.reset_db, buffer_rows=self.settings.db_buffer_rows
            ),
            self.fleet,
            self.metrics,
            on_status=self.set_db_status,
            fallback_history=self.memory_history,
            on_registered=self.registry.load_registered,
        )
        await self._stack.enter_async_context(storage)
        self._stack.callback(self.remove_sink, storage)
        self.add_sink(storage)
        self._sliced_sinks.append(storage)
        self.set_history_source(storage)
        self.storage = storage
        from .storage.faults import FaultStore

        # Exited before the storage (LIFO): pending fault records are written first.
        self.fault_store = await self._stack.enter_async_context(
            FaultStore(storage, self.fleet.now)
        )
        self.faults.add_listener(self.fault_store.put)

    async def _stop_ticking(self) -> None:
        task = self._tick_task
        if task is not None:
            task.cancel()
            # A tick loop that failed earlier was logged then (``_fail``); shutdown stays clean.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _start_modbus(self) -> None:
        s = self.settings
        limits = ConnectionLimits(
            max_connections=s.modbus_max_connections,
            idle_timeout_s=s.modbus_idle_timeout_s,
            frame_timeout_s=s.modbus_frame_timeout_s,
            backlog=s.modbus_backlog,
        )
        service = ModbusService(
            self.fleet,
            self.register_map,
            s.modbus_host,
            self.metrics,
            limits,
            gate=self.tick_gate.shared,
        )
        try:
            await self._stack.enter_async_context(service)
        except ModbusBindError as exc:
            raise StartupError(str(exc)) from None
        face = ModbusFace(service, self.faults)
        self._stack.callback(self.remove_sink, face)
        self.add_sink(face)
        self._thread_sinks.append(face)
        service.comm_listeners = self._comm_listeners
        self.modbus = service
        self.modbus_ports = service.ports
        self.fault_wiring.attach(service)
        log.info("faults: comm faults seeded with %d (--seed)", s.seed)

    def _create_app(self) -> FastAPI:
        return create_app(self)

    async def _start_http(self) -> None:
        s = self.settings
        try:
            sock = bind_http(s.http_host, s.http_port)
            # Bound before the app is built: the app may read the port (links, logs).
            self.http_port = sock.getsockname()[1]
            await start_http(
                self._stack, self._create_app(), sock, s.http_host, s.http_header_timeout_s
            )
        except HttpStartError as exc:
            raise StartupError(str(exc)) from None


def _publish(sinks: list[TelemetrySink], snapshots: list[Snapshot]) -> None:
    for sink in sinks:
        sink.publish(snapshots)


async def serve(
    settings: Settings,
    fleet_config: FleetConfig,
    register_map: RegisterMap,
    *,
    scenario: tuple[str, str] | None = None,
    factory: Callable[[Settings, FleetConfig, RegisterMap], Runtime] = Runtime,
) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly; ``scenario`` (text, source), already
    validated by the CLI, starts once everything is up."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    starting: asyncio.Task[Runtime] | None = None

    def on_signal() -> None:
        stop.set()
        # A start-up still under way is cancelled, not waited for: it may wait on something
        # outside indefinitely (a scale-out agent or headend retries an unreachable NATS
        # forever, and ignored SIGTERM meanwhile). The runtime closes what it had started.
        if starting is not None and not starting.done():
            starting.cancel()

    # The handlers in force before (the CLI's early ones, bess_sim.__main__) come back
    # afterwards: asyncio's remove_signal_handler would leave SIGTERM at SIG_DFL (killed, -15).
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, on_signal)
    try:
        rt = factory(settings, fleet_config, register_map)
        starting = asyncio.create_task(rt.__aenter__(), name="bess-start-up")
        try:
            await starting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not stop.is_set() or (task is not None and task.cancelling()):
                raise  # serve itself was cancelled
            log.info("stopped during start-up")
            return
        try:
            log.info("ready")
            if scenario is not None:
                rt.scenarios.start(*scenario)
            await stop.wait()
            log.info("shutting down")
        finally:
            await rt.__aexit__(None, None, None)
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)
    log.info("stopped")
