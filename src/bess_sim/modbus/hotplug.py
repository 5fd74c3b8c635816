"""Modbus devices added and removed while the servers run (run-time registration, DESIGN §14).

Part of the pymodbus area next to ``server.py``: a device is an ``_AssetDevice`` in its port's
unit table (which ``_Port.process`` routes by) plus a ``SimRuntime`` in the pymodbus server's
``SimCore.devices`` (which the datastore update goes through). Both are plain dicts, changed
synchronously between two requests, so a request sees a device wholly or not at all: a unit
that is not there answers 0x0B (gateway target failed to respond), as for any unknown unit.

Binding a new port is the only step that can fail (address in use); it is done first, with no
device on it yet, so a failed registration leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging

from pymodbus.simulator import SimDevice
from pymodbus.simulator.simcore import SimCore
from pymodbus.simulator.simruntime import SimRuntime

from ..sim import AssetSpec, Snapshot
from .points import Table
from .server import ModbusService, _AssetDevice, _bits, _Port, _table_data
from .sunspec_face import sunspec_face

log = logging.getLogger("bess_sim.modbus")


def _sim_core(p: _Port) -> SimCore:
    # A port's datastore is always a SimCore built from SimDevices (server._Port).
    return p.context


def _find_port(service: ModbusService, port: int) -> _Port | None:
    for p in service._ports:
        if p.port == port:
            return p
    return None


async def ensure_port(service: ModbusService, port: int) -> bool:
    """Serve ``port`` (bind and listen) if it is not served yet; True if it was bound now.
    Raises ``ModbusBindError`` naming the port when it cannot be bound."""
    if _find_port(service, port) is not None:
        return False
    p = _Port(service, port, [])
    await service._start_port(p)  # raises ModbusBindError; nothing is kept then
    service._ports.append(p)
    return True


def attach(service: ModbusService, spec: AssetSpec, snapshot: Snapshot) -> None:
    """Put the asset's device on its (already served) port; it answers from now on."""
    p = _find_port(service, spec.modbus.port)
    if p is None:
        raise KeyError(f"port {spec.modbus.port} is not served")
    dev = _AssetDevice(service, spec, snapshot)
    rm = service.register_map
    sim = SimDevice(
        spec.modbus.unit_id,
        simdata=(_bits(), _bits(), _table_data(rm.size(Table.HOLDING)),
                 _table_data(rm.size(Table.INPUT))),
        action=dev.action,
    )  # fmt: skip
    _sim_core(p).devices[spec.modbus.unit_id] = SimRuntime(sim)
    p.devices[spec.modbus.unit_id] = dev
    face = sunspec_face(service.fleet, spec, dev)
    if face is not None:
        p.sunspec[spec.modbus.unit_id] = face
    service._devices[spec.id] = dev
    log.info(
        "modbus: %s now answers as unit %d on port %d",
        spec.name,
        spec.modbus.unit_id,
        p.bound_port or p.port,
    )


def detach(service: ModbusService, asset_id: str) -> AssetSpec | None:
    """Take the asset's device off its port (its unit answers 0x0B from now on). Returns its
    spec, or None when it had no device."""
    dev = service._devices.pop(asset_id, None)
    if dev is None:
        return None
    spec = dev.spec
    p = _find_port(service, spec.modbus.port)
    if p is not None and p.devices.get(spec.modbus.unit_id) is dev:
        del p.devices[spec.modbus.unit_id]
        p.sunspec.pop(spec.modbus.unit_id, None)
        _sim_core(p).devices.pop(spec.modbus.unit_id, None)
    return spec


async def release_idle_ports(service: ModbusService) -> list[int]:
    """Close every port that has no device left (its listener and its connections); returns
    the configured port numbers closed."""
    closed: list[int] = []
    for p in [p for p in service._ports if not p.devices]:
        service._ports.remove(p)
        listener, p.listener = p.listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()  # closes its connections too
        log.info("modbus: port %d closed (no device left on it)", p.bound_port or p.port)
        p.bound_port = 0
        closed.append(p.port)
    return closed
