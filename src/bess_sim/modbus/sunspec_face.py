"""The SunSpec face of one asset's Modbus device (DESIGN §13): answers holding-register
requests (FC03, FC06, FC16, FC23) at 40000 onwards from ``sunspec.SunSpecDevice`` and carries
out writes through the fleet's one dispatch path. Pure bytes in, bytes out: ``server.py``
hands it the request PDU before pymodbus's datastore sees it, because a pymodbus SimDevice
table reaching register 40000+ would allocate 40,000 slots per asset.

Request checks follow the Modbus application protocol spec v1.1b3: quantity out of range →
0x03 (§6.3, §6.12, §6.17), addresses outside the block → 0x02.
"""

from __future__ import annotations

import logging
import struct
from typing import Protocol

from ..sim import AssetSpec, DispatchRequest, DispatchSource, DispatchStatus, Fleet, Snapshot
from ..sim.model import ModbusProfile
from ..sunspec import BASE_ADDRESS, SunSpecDevice
from ..sunspec.control import ControlState, echo, plan
from ..sunspec.live import ControlEcho
from ..sunspec.writes import SunSpecWrite, SunSpecWriteError, decode_write
from .registers import (
    FC_READ_HOLDING,
    FC_READ_INPUT,
    FC_READ_WRITE_MULTIPLE,
    FC_WRITE_MULTIPLE,
    FC_WRITE_SINGLE,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    MAX_READ_REGISTERS,
    MAX_RW_WRITE_REGISTERS,
    MAX_WRITE_REGISTERS,
)

log = logging.getLogger("bess_sim.modbus")


class SnapshotHolder(Protocol):
    """Whatever holds the asset's latest published snapshot (the native device does)."""

    @property
    def snapshot(self) -> Snapshot: ...


def _exc(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


class SunSpecFace:
    """SunSpec registers and SunSpec command state of one asset."""

    def __init__(
        self,
        fleet: Fleet,
        spec: AssetSpec,
        holder: SnapshotHolder,
        device: SunSpecDevice | None = None,
    ) -> None:
        self.fleet = fleet
        self.spec = spec
        self.holder = holder
        self.device = device or SunSpecDevice(spec)
        self.serves_native = spec.modbus.profile is not ModbusProfile.SUNSPEC
        self.end = BASE_ADDRESS + self.device.layout.size
        # 704 enables, modes and setpoints staged while disabled (sunspec/control.py).
        self.state = ControlState()
        # The block as bytes for the fast read path, packed once per register list (the
        # device caches that list per snapshot and command state).
        self._wire = b""
        self._wire_of: list[int] | None = None

    # ------------------------------------------------------------------ reads
    def echo(self) -> ControlEcho:
        ctl = self.fleet.control(self.spec.id)
        return echo(
            self.state, ctl.setpoint_mw, ctl.setpoint_mvar, ctl.watchdog_timeout_s, ctl.heartbeat
        )

    def read(self, address: int, count: int) -> list[int]:
        regs = self.device.registers(self.holder.snapshot, self.echo())
        off = address - BASE_ADDRESS
        return regs[off : off + count]

    def wire(self) -> bytes:
        """The whole block, BASE_ADDRESS onwards, as wire bytes (modbus/fastpath.py)."""
        regs = self.device.registers(self.holder.snapshot, self.echo())
        if regs is not self._wire_of:
            self._wire = struct.pack(f">{len(regs)}H", *regs)
            self._wire_of = regs
        return self._wire

    # ------------------------------------------------------------------ requests
    def handle(self, pdu: bytes, peer: str | None) -> bytes | None:
        """The response PDU, or None when the request is for the native map (served by the
        caller). Never raises for a malformed PDU: answers 0x03."""
        fc = pdu[0]
        try:
            if fc == FC_READ_HOLDING:
                address, count = struct.unpack_from(">HH", pdu, 1)
                if address < BASE_ADDRESS:
                    return None if self.serves_native else _exc(fc, ILLEGAL_DATA_ADDRESS)
                if not 1 <= count <= MAX_READ_REGISTERS:
                    return _exc(fc, ILLEGAL_DATA_VALUE)
                if address + count > self.end:
                    return _exc(fc, ILLEGAL_DATA_ADDRESS)
                regs = self.read(address, count)
                return struct.pack(f">BB{count}H", fc, 2 * count, *regs)
            if fc == FC_WRITE_SINGLE:
                address, value = struct.unpack_from(">HH", pdu, 1)
                if address < BASE_ADDRESS:
                    return None if self.serves_native else _exc(fc, ILLEGAL_DATA_ADDRESS)
                code = self.write(address, [value], peer)
                return pdu[:5] if code is None else _exc(fc, code)
            if fc == FC_WRITE_MULTIPLE:
                address, count, nbytes = struct.unpack_from(">HHB", pdu, 1)
                if address < BASE_ADDRESS:
                    return None if self.serves_native else _exc(fc, ILLEGAL_DATA_ADDRESS)
                if not 1 <= count <= MAX_WRITE_REGISTERS or nbytes != 2 * count:
                    return _exc(fc, ILLEGAL_DATA_VALUE)
                values = list(struct.unpack_from(f">{count}H", pdu, 6))
                code = self.write(address, values, peer)
                return pdu[:5] if code is None else _exc(fc, code)
            if fc == FC_READ_WRITE_MULTIPLE:
                r_addr, r_count, w_addr, w_count, nbytes = struct.unpack_from(">HHHHB", pdu, 1)
                if r_addr < BASE_ADDRESS and w_addr < BASE_ADDRESS:
                    return None if self.serves_native else _exc(fc, ILLEGAL_DATA_ADDRESS)
                if (
                    not 1 <= r_count <= MAX_READ_REGISTERS
                    or not 1 <= w_count <= MAX_RW_WRITE_REGISTERS
                    or nbytes != 2 * w_count
                ):
                    return _exc(fc, ILLEGAL_DATA_VALUE)
                # Both halves must lie in the SunSpec block: checked before the write, which
                # goes first (spec §6.17), so a refused read never follows an applied write.
                if r_addr < BASE_ADDRESS or r_addr + r_count > self.end:
                    return _exc(fc, ILLEGAL_DATA_ADDRESS)
                values = list(struct.unpack_from(f">{w_count}H", pdu, 10))
                code = self.write(w_addr, values, peer)
                if code is not None:
                    return _exc(fc, code)
                regs = self.read(r_addr, r_count)
                return struct.pack(f">BB{r_count}H", fc, 2 * r_count, *regs)
            if fc == FC_READ_INPUT and not self.serves_native:
                return _exc(fc, ILLEGAL_DATA_ADDRESS)  # SunSpec-only: no input table
        except struct.error:
            return _exc(fc, ILLEGAL_DATA_VALUE)
        return None

    # ------------------------------------------------------------------ writes
    def write(self, address: int, values: list[int], peer: str | None) -> int | None:
        """Apply a write; the exception code to answer, or None."""
        decoded = decode_write(self.device, address, values)
        if isinstance(decoded, SunSpecWriteError):
            self._refused(decoded.code, peer, decoded.reason)
            return decoded.code
        return self._apply(decoded, peer)

    def _refused(self, code: int, peer: str | None, reason: str) -> None:
        log.info(
            "modbus sunspec write refused (0x%02X): %s unit %d from %s: %s",
            code,
            self.spec.name,
            self.spec.modbus.unit_id,
            peer,
            reason,
        )

    def _apply(self, w: SunSpecWrite, peer: str | None) -> int | None:
        """Dispatch first: if it is rejected nothing of the write is applied (DESIGN §5)."""
        fleet, asset_id = self.fleet, self.spec.id
        ctl = fleet.control(asset_id)
        step = plan(self.state, w, self.spec, ctl.setpoint_mw, ctl.setpoint_mvar)
        if isinstance(step, SunSpecWriteError):
            self._refused(step.code, peer, step.reason)
            return step.code
        if step.dispatches:
            mw, duration_s = step.mw, None
            if mw is None:
                mw, duration_s = self._active_power_in_effect(ctl.setpoint_mw)
            record = fleet.dispatch(
                DispatchRequest(
                    asset_id=asset_id,
                    mw=mw,
                    mvar=step.mvar,  # None keeps the reactive setpoint in effect
                    duration_s=duration_s,
                    source=DispatchSource.MODBUS,
                    client=peer,
                )
            )
            if record.status is DispatchStatus.REJECTED:
                self._refused(ILLEGAL_DATA_VALUE, peer, f"dispatch rejected: {record.reason}")
                return ILLEGAL_DATA_VALUE
        self.state = step.state
        if w.rvrt_tms_s is not None:
            fleet.set_watchdog_timeout(asset_id, w.rvrt_tms_s)
        if w.ctrl_hb is not None:
            fleet.heartbeat(asset_id, w.ctrl_hb)
        if w.alm_rst == 1:
            fleet.reset_fault(asset_id)
        return None

    def _active_power_in_effect(self, setpoint_mw: float) -> tuple[float, float | None]:
        """(mw, duration_s) that keep the active-power setpoint as it is when a write changes
        only the reactive one: the MW in effect and what is left of its dispatch's duration
        (None = holds), so a VarSet does not turn a timed dispatch into an endless one."""
        active = self.fleet.active_dispatch(self.spec.id)
        if active is None or active.duration_s is None:
            return setpoint_mw, None
        elapsed_s = (self.fleet.now - active.submitted_at).total_seconds()
        left_s = active.duration_s - elapsed_s
        # Elapsed but not yet ended by a tick: the setpoint is 0 from that tick on anyway.
        return (setpoint_mw, left_s) if left_s > 0.0 else (0.0, None)


def sunspec_face(fleet: Fleet, spec: AssetSpec, holder: SnapshotHolder) -> SunSpecFace | None:
    """The SunSpec face of an asset, or None when its profile is ``native``."""
    if spec.modbus.profile is ModbusProfile.NATIVE:
        return None
    return SunSpecFace(fleet, spec, holder)
