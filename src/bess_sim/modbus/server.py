"""Modbus TCP servers of the fleet (DESIGN §5, §9). The only module that imports pymodbus.

One listening port per distinct port, one pymodbus ``SimDevice`` per asset (its unit id).
pymodbus 3.16.1 does the PDU decoding, the datastore bounds checks and the response encoding;
the TCP side (accepting, MBAP framing, pipelining, back-pressure, timeouts, connection cap) is
ours, in listener.py and connection.py, because pymodbus's answers only the first request of a
TCP segment, mixes up transaction ids of pipelined requests, ignores the transport's write
buffer and re-listens with a backlog of 100. This module adds what pymodbus gets wrong or
leaves out at the PDU level:

- **Validation pymodbus maps to the wrong code**: a quantity outside 1..125 makes pymodbus's
  decoder fail (→ 0x01); the application protocol spec v1.1b3 §6.3/§6.12 requires 0x03.
  Unknown unit ids answer 0x0B (gateway target failed to respond) without a traceback.
- **Semantics**: input registers come from each tick's snapshot; holding reads echo the
  command state in effect; holding writes go through ``Fleet.dispatch`` like REST.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import struct
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from ..metrics import Metrics
from ..net import bind_tcp
from ..sim import AssetSpec, DispatchRequest, DispatchSource, DispatchStatus, Fleet, Snapshot
from .connection import ConnectionLimits, RequestHook
from .fastpath import FastReader
from .listener import ListenerEvents, PortListener
from .points import RegisterMap, Table
from .ratelog import RateLimitedLog
from .registers import (
    FC_READ_HOLDING,
    FC_READ_INPUT,
    FC_READ_WRITE_MULTIPLE,
    FC_WRITE_SINGLE,
    SUPPORTED_FUNCTION_CODES,
    HoldingDecoder,
    HoldingState,
    HoldingWrite,
    ImageEncoder,
    WriteError,
    check_request,
    holding_encoder,
    input_encoder,
)
from .sunspec_face import SunSpecFace, sunspec_face

log = logging.getLogger("bess_sim.modbus")


def _no_gate() -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


class ModbusBindError(Exception):
    """A Modbus port cannot be bound; the message names the port and its assets."""


class _AssetDevice:
    """Registers and command state of one asset; its ``action`` is the pymodbus hook."""

    __slots__ = (
        "image",
        "image_of",
        "service",
        "snapshot",
        "spec",
        "staged_duration_s",
        "wire",
        "wire_of",
    )

    def __init__(self, service: ModbusService, spec: AssetSpec, snapshot: Snapshot) -> None:
        self.service = service
        self.spec = spec
        # The latest snapshot, swapped in by each tick; its input-table image is packed on the
        # first read after it (bench/: packing every asset on every tick cost ~2.7 µs an asset,
        # 27 ms of a 10,000-asset tick, mostly for assets nobody polls that second).
        self.snapshot = snapshot
        self.image = b""
        self.image_of: Snapshot | None = None
        self.wire = b""  # the same image in wire order (word swaps applied), fast path
        self.wire_of: Snapshot | None = None
        self.staged_duration_s = 0.0  # holding duration_s: used by the next setpoint writes

    def _input_image(self) -> bytes:
        snap = self.snapshot
        if self.image_of is not snap:
            self.image = self.service.input_encoder.pack(snap)
            self.image_of = snap
        return self.image

    def input_wire(self) -> bytes:
        """Input table of the latest snapshot as wire bytes (modbus/fastpath.py)."""
        snap = self.snapshot
        if self.wire_of is not snap:
            self.wire = self.service.input_encoder.wire(self._input_image())
            self.wire_of = snap
        return self.wire

    def holding_wire(self) -> bytes:
        enc = self.service.holding_encoder
        return enc.wire(enc.pack(self.holding_state()))

    def holding_state(self) -> HoldingState:
        ctl = self.service.fleet.control(self.spec.id)
        return HoldingState(
            setpoint_mw=ctl.setpoint_mw,
            duration_s=self.staged_duration_s,
            heartbeat=ctl.heartbeat,
            watchdog_timeout_s=ctl.watchdog_timeout_s,
            fault_reset=0,
            setpoint_mvar=ctl.setpoint_mvar,
        )

    async def action(
        self,
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus SimDevice action: called before every read (``set_values is None``) and
        write of this device. Nothing here awaits, so a read copies one snapshot's image as a
        whole (no torn 32-bit values)."""
        svc = self.service
        off = address - start_address
        if set_values is None:
            if func_code == FC_READ_INPUT:
                regs = svc.input_encoder.registers(self._input_image())
            elif func_code == FC_WRITE_SINGLE:
                return None  # read-back of FC06: the response echoes the request (spec §6.6)
            else:
                regs = svc.holding_encoder.encode(self.holding_state())
            registers[off : off + count] = regs[address : address + count]
            return None
        values = [int(v) for v in set_values]
        decoded = svc.holding_decoder.decode(address, values)
        if isinstance(decoded, WriteError):
            log.info(
                "modbus write refused (0x%02X): %s unit %d from %s: %s",
                decoded.code,
                self.spec.name,
                self.spec.modbus.unit_id,
                svc.peer.get(),
                decoded.reason,
            )
            return ExcCodes(decoded.code)
        return self._apply(decoded)

    def _apply(self, w: HoldingWrite) -> ExcCodes | None:
        """Carry out a decoded write. The dispatch goes first: if it is rejected, nothing else
        of the write is applied (DESIGN §5: a rejected write changes nothing)."""
        fleet = self.service.fleet
        asset_id = self.spec.id
        if w.setpoint_mw is not None or w.setpoint_mvar is not None:
            duration = self.staged_duration_s if w.duration_s is None else w.duration_s
            # A reactive-only write (holding 8) is a dispatch of the active setpoint in effect
            # with the new mvar (DESIGN §10; docs/model.md).
            mw = w.setpoint_mw if w.setpoint_mw is not None else fleet.control(asset_id).setpoint_mw
            record = fleet.dispatch(
                DispatchRequest(
                    asset_id=asset_id,
                    mw=mw,
                    mvar=w.setpoint_mvar,
                    duration_s=duration if duration > 0 else None,
                    source=DispatchSource.MODBUS,
                    client=self.service.peer.get(),
                )
            )
            if record.status is DispatchStatus.REJECTED:
                log.info(
                    "modbus setpoint rejected (0x03): %s from %s: %s",
                    self.spec.name,
                    record.client,
                    record.reason,
                )
                return ExcCodes.ILLEGAL_VALUE
        if w.duration_s is not None:
            self.staged_duration_s = w.duration_s
        if w.heartbeat is not None:
            fleet.heartbeat(asset_id, w.heartbeat)
        if w.watchdog_timeout_s is not None:
            fleet.set_watchdog_timeout(asset_id, w.watchdog_timeout_s)
        if w.fault_reset:
            fleet.reset_fault(asset_id)
        return None


async def _no_such_device(
    func_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _table_data(size: int) -> list[SimData]:
    if size == 0:
        return [SimData(0, count=1, datatype=DataType.INVALID)]
    # One block 0..size-1: gaps between points read as 0 (a range read returns the whole
    # range, DESIGN §5); writes to gaps are refused by the holding decoder (0x02).
    return [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)]


def _bits() -> list[SimData]:
    # Coils / discrete inputs are not served (0x01 before pymodbus sees the request), but a
    # SimDevice with separate tables needs at least one SimData per table (DESIGN §9).
    return [SimData(0, count=1, values=False, datatype=DataType.BITS)]


class _Port:
    """Everything served on one TCP port: its devices and the request pipeline."""

    def __init__(self, service: ModbusService, port: int, devices: list[_AssetDevice]) -> None:
        self.service = service
        self.port = port
        self.devices = {d.spec.modbus.unit_id: d for d in devices}
        # SunSpec profile (DESIGN §13): requests for holding 40000+ bypass the datastore.
        self.sunspec: dict[int, SunSpecFace] = {
            unit: face
            for unit, d in self.devices.items()
            if (face := sunspec_face(service.fleet, d.spec, d)) is not None
        }
        self.bound_port = 0
        self.decoder = DecodePDU(True)
        self.framer = FramerSocket(self.decoder)
        # pymodbus's datastore of this port's devices (what ModbusTcpServer would build).
        self.context = SimCore(self.sim_devices())
        self.listener: PortListener | None = None
        rm = service.register_map
        self.reader = FastReader(
            self.devices,
            self.sunspec,
            rm.size(Table.INPUT),
            rm.size(Table.HOLDING),
            service.count_fast,
        )

    def fast(self, frame: bytes) -> bytes | None:
        """The fast path's answer to ``frame``, or None (→ :meth:`process`)."""
        if not self.service.fast_path:
            return None
        try:
            return self.reader.answer(frame)
        except Exception:
            # A bug here must not cost the connection: the slow path answers (and handles
            # whatever went wrong the way it always has).
            log.exception(
                "modbus: fast read path failed on port %d; answered by pymodbus", self.port
            )
            return None

    def sim_devices(self) -> list[SimDevice]:
        rm = self.service.register_map
        h_size, i_size = rm.size(Table.HOLDING), rm.size(Table.INPUT)
        sims = [
            SimDevice(
                unit,
                simdata=(_bits(), _bits(), _table_data(h_size), _table_data(i_size)),
                action=dev.action,
            )
            for unit, dev in self.devices.items()
        ]
        # Catch-all device 0 (DESIGN §9): pymodbus routes unknown unit ids to it. _Port.process
        # already answers those with 0x0B; this keeps pymodbus from a traceback if it is reached.
        sims.append(
            SimDevice(0, simdata=(_bits(), _bits(), _table_data(1), _table_data(1)),
                      action=_no_such_device)
        )  # fmt: skip
        return sims

    async def process(self, frame: bytes, peer: str) -> bytes:
        """Answer one complete MBAP frame (header already checked by the connection), with
        no tick computing in its thread meanwhile (runtime.TickGate): writes are commands
        applied between ticks."""
        svc = self.service
        svc.count_slow()
        async with svc.gate():
            return await self._process(frame, peer)

    async def _process(self, frame: bytes, peer: str) -> bytes:
        tid = int.from_bytes(frame[0:2], "big")
        unit = frame[6]
        pdu = frame[7:]
        fc = pdu[0]
        face = self.sunspec.get(unit)
        if face is not None and (reply := face.handle(pdu, peer)) is not None:
            code = reply[1] if reply[0] & 0x80 else 0
            self.service.metrics.modbus_requests.labels(str(fc), str(code)).inc()
            if code:
                self._exception_answered(unit)
            return struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply
        exc: int | None = None
        request: ModbusPDU | None = None
        if unit not in self.devices:
            exc = ExcCodes.GATEWAY_NO_RESPONSE
        elif fc not in SUPPORTED_FUNCTION_CODES:
            exc = ExcCodes.ILLEGAL_FUNCTION
        else:
            exc = check_request(fc, pdu)
            if exc is None and fc == FC_READ_WRITE_MULTIPLE:
                # FC23 writes before it reads (spec §6.17): refuse a bad read range up front,
                # or the write would be applied and then answered with an exception.
                r_end = int.from_bytes(pdu[1:3], "big") + int.from_bytes(pdu[3:5], "big")
                if r_end > self.service.register_map.size(Table.HOLDING):
                    exc = ExcCodes.ILLEGAL_ADDRESS
            if exc is None:
                request = self.decoder.decode(pdu)
                if request is None:
                    exc = ExcCodes.ILLEGAL_VALUE
        response: ModbusPDU | None = None
        if request is not None:
            token = self.service.peer.set(peer)
            try:
                response = await request.datastore_update(cast(Any, self.context), unit)
            except Exception:
                log.exception(
                    "modbus: request fc %d unit %d on port %d failed", fc, unit, self.port
                )
                exc = ExcCodes.DEVICE_FAILURE
            finally:
                self.service.peer.reset(token)
        if response is None:
            response = ExceptionResponse(fc & 0x7F, exc or ExcCodes.DEVICE_FAILURE)
        response.dev_id = unit
        response.transaction_id = tid
        code = response.exception_code if isinstance(response, ExceptionResponse) else 0
        self.service.metrics.modbus_requests.labels(str(fc), str(code)).inc()
        if code:
            self._exception_answered(unit)
        return self.framer.buildFrame(response)

    def _exception_answered(self, unit: int) -> None:
        listeners = self.service.comm_listeners
        if listeners:
            dev = self.devices.get(unit)
            asset_id = None if dev is None else dev.spec.id
            for cb in listeners:
                cb(asset_id, self.port, "exception")


class ModbusService:
    """The Modbus face of one simulator: an async context manager (start binds every port,
    exit closes them) and a telemetry sink (``publish`` refreshes the input registers)."""

    def __init__(
        self,
        fleet: Fleet,
        register_map: RegisterMap,
        host: str,
        metrics: Metrics,
        limits: ConnectionLimits | None = None,
        request_hook: RequestHook | None = None,
        *,
        fast_path: bool = True,
        gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.fleet = fleet
        #: Answer plain reads from the packed images (modbus/fastpath.py); False sends every
        #: request through pymodbus (the byte-identity test and bench compare both).
        self.fast_path = fast_path
        #: Entered around every slow-path request (runtime.TickGate.shared).
        self.gate: Callable[[], AbstractAsyncContextManager[None]] = gate or _no_gate
        path = metrics.modbus_request_path
        self.count_slow = path.labels("slow").inc
        count_fast = path.labels("fast").inc
        # Pre-bound children: labels() costs a dict lookup and a lock per call.
        ok = {
            fc: metrics.modbus_requests.labels(str(fc), "0").inc
            for fc in (FC_READ_HOLDING, FC_READ_INPUT)
        }

        def counted(fc: int) -> None:
            count_fast()
            ok[fc]()

        self.count_fast: Callable[[int], None] = counted
        self.register_map = register_map
        self.host = host
        self.metrics = metrics
        self.limits = limits or ConnectionLimits()
        #: The per-request seam (connection.RequestHook): ``(unit_id, function_code)`` →
        #: None (serve) or a HookAction (delay / drop / exception / close). Read for every
        #: request, so it may be set or cleared while serving.
        self.request_hook: RequestHook | None = request_hook
        #: Per-port seam (fault injection, DESIGN §11): ``port_hook(configured_port)`` → the
        #: hook for that port's requests, else ``request_hook``. Read for every request.
        self.port_hook: Callable[[int], RequestHook | None] | None = None
        #: ``cb(asset_id | None, port, kind)`` for every exception answer (kind
        #: "exception"): the scenario scorecard counts what the EMS experienced.
        self.comm_listeners: list[Callable[[str | None, int, str], None]] = []
        self.input_encoder: ImageEncoder[Snapshot] = input_encoder(register_map)
        self.holding_encoder: ImageEncoder[HoldingState] = holding_encoder(register_map)
        self.holding_decoder = HoldingDecoder(register_map)
        # Peer of the request being handled, for the dispatch record's ``client``. A context
        # variable (not an attribute) so that concurrent connections cannot see each other's.
        self.peer: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "bess_modbus_peer", default=None
        )
        self._devices: dict[str, _AssetDevice] = {}
        by_port: dict[int, list[_AssetDevice]] = {}
        for spec in fleet.specs:
            dev = _AssetDevice(self, spec, fleet.snapshot(spec.id))
            self._devices[spec.id] = dev
            by_port.setdefault(spec.modbus.port, []).append(dev)
        self._ports = [_Port(self, port, devs) for port, devs in by_port.items()]
        m = metrics
        self._events = ListenerEvents(
            RateLimitedLog(log),
            accepted=m.modbus_connections_accepted.inc,
            refused=lambda reason: m.modbus_connections_refused.labels(reason).inc(),
            closed=lambda reason: m.modbus_connections_closed.labels(reason).inc(),
            bad_frame=m.modbus_bad_frames.inc,
            open_delta=m.modbus_connections_open.inc,
            backpressure=m.modbus_backpressure.inc,
        )
        m.modbus_output_buffer.set_function(self.output_buffer_bytes)

    def output_buffer_bytes(self) -> float:
        """Answers queued in our write buffers, all connections (bounded by back-pressure)."""
        return float(sum(c.buffered_bytes for lst in self._listeners() for c in lst.connections))

    def _listeners(self) -> list[PortListener]:
        return [p.listener for p in self._ports if p.listener is not None]

    def _hook(self, port: int) -> RequestHook | None:
        port_hook = self.port_hook
        if port_hook is not None:
            hook = port_hook(port)
            if hook is not None:
                return hook
        return self.request_hook

    def refuse_connections(self, port: int, on_refused: Callable[[], None] | None) -> int:
        """Fault injection (DESIGN §11 ``modbus_disconnect``): with ``on_refused``, close every
        connection of the configured ``port`` now and refuse new ones (``on_refused()`` per
        connection closed or refused); with None, accept again. Returns the number closed."""
        for p in self._ports:
            if p.port == port and p.listener is not None:
                return p.listener.refuse(on_refused)
        return 0

    @property
    def ports(self) -> dict[int, int]:
        """Configured port → bound port (differs when the configured port is 0)."""
        return {p.port: p.bound_port for p in self._ports if p.bound_port}

    def bound_port(self, port: int) -> int:
        for p in self._ports:
            if p.port == port and p.bound_port:
                return p.bound_port
        raise KeyError(f"port {port} is not served")

    # ------------------------------------------------------------ telemetry sink
    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Refresh the input registers from one tick's snapshots. Synchronous: every asset's
        snapshot reference is replaced by one assignment and a read packs one immutable snapshot
        without awaiting, so no read sees a half-updated snapshot (no torn 32-bit values)."""
        devices = self._devices
        for snap in snapshots:
            dev = devices.get(snap.asset_id)
            if dev is not None:
                dev.snapshot = snap

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        try:
            for port in self._ports:
                await self._start_port(port)
        except BaseException:
            await self.stop()
            raise

    async def _start_port(self, port: _Port) -> None:
        assets = ", ".join(
            f"{d.spec.name} (unit {unit})" for unit, d in sorted(port.devices.items())
        )
        try:
            sock = bind_tcp(self.host, port.port, self.limits.backlog)
        except OSError as exc:
            raise ModbusBindError(
                f"Modbus port {self.host}:{port.port} cannot be bound "
                f"({exc.strerror or exc}); it serves {assets}"
            ) from None
        listener = PortListener(
            sock,
            port.port,
            self.limits,
            port.process,
            functools.partial(self._hook, port.port),
            self._events,
            port.fast,
        )
        listener.start()
        port.listener = listener
        port.bound_port = listener.bound_port
        log.info("modbus: listening on %s:%d: %s", self.host, port.bound_port, assets)

    async def stop(self) -> None:
        for port in self._ports:
            listener, port.listener = port.listener, None
            port.bound_port = 0
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def __aenter__(self) -> ModbusService:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
