"""Fast read path (issue 15): FC03/FC04 reads answered from packed register images.

A well-formed read of the native input or holding table, or of the SunSpec block, of a unit
served on the port is answered here by slicing the register image of the asset's current
snapshot (bytes, wire order) behind a hand-packed MBAP header: no pymodbus PDU objects, no
task, no await. Everything else returns None and goes through ``_Port.process`` (pymodbus)
exactly as before, which is what keeps exception answers (0x01/0x02/0x03/0x0B), writes and
malformed frames byte-identical: the fast path only ever answers requests whose slow-path
answer is a normal read response, and builds the same bytes (tests/modbus/test_fastpath.py
compares both paths on the raw wire).

Consistency (DESIGN §5): the input image is packed from one immutable snapshot and swapped
by one assignment, so a read sees one snapshot or the next, never a mix (no torn 32-bit
values). Holding and SunSpec images echo the command state, read whole even while a tick runs
in its worker thread (sim/control.py), so those reads do not wait for the tick either. Nothing
here awaits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Protocol

from ..sunspec import BASE_ADDRESS
from .registers import FC_READ_HOLDING, FC_READ_INPUT, MAX_READ_REGISTERS

# A read request is MBAP (7 bytes) + fc + address + count = 12 bytes, MBAP length 6.
READ_FRAME_BYTES = 12
_HEADER = struct.Struct(">HHHBBB").pack


class FastDevice(Protocol):
    """The register images of one asset (server._AssetDevice)."""

    def input_wire(self) -> bytes: ...

    def holding_wire(self) -> bytes: ...


class FastFace(Protocol):
    """The SunSpec face of one asset (sunspec_face.SunSpecFace)."""

    serves_native: bool
    end: int

    def wire(self) -> bytes: ...


class FastReader:
    """Answers the reads of one port that it can; None for everything else."""

    __slots__ = ("counted", "devices", "faces", "holding_size", "input_size")

    def __init__(
        self,
        devices: Mapping[int, FastDevice],
        faces: Mapping[int, FastFace],
        input_size: int,
        holding_size: int,
        counted: Callable[[int], None],
    ) -> None:
        self.devices = devices
        self.faces = faces
        self.input_size = input_size
        self.holding_size = holding_size
        # counted(fc) after every answer (bess_modbus_requests + the path counter).
        self.counted = counted

    def answer(self, frame: bytes) -> bytes | None:
        if len(frame) != READ_FRAME_BYTES:
            return None
        fc = frame[7]
        if fc != FC_READ_INPUT and fc != FC_READ_HOLDING:
            return None
        unit = frame[6]
        dev = self.devices.get(unit)
        if dev is None:
            return None  # 0x0B from the slow path
        count = (frame[10] << 8) | frame[11]
        if not 1 <= count <= MAX_READ_REGISTERS:
            return None  # 0x03
        address = (frame[8] << 8) | frame[9]
        face = self.faces.get(unit)
        if fc == FC_READ_INPUT:
            if face is not None and not face.serves_native:
                return None  # SunSpec-only asset: no input table (0x02)
            if address + count > self.input_size:
                return None  # 0x02
            wire = dev.input_wire()
        elif face is not None and address >= BASE_ADDRESS:
            if address + count > face.end:
                return None
            wire = face.wire()
            address -= BASE_ADDRESS
        else:
            if face is not None and not face.serves_native:
                return None
            if address + count > self.holding_size:
                return None
            wire = dev.holding_wire()
        n = 2 * count
        start = 2 * address
        self.counted(fc)
        return _HEADER((frame[0] << 8) | frame[1], 0, n + 3, unit, fc, n) + wire[start : start + n]
