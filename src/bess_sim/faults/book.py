"""``FaultBook``: the faults of one simulator, scheduled and ended in simulated time.

Pure (no clock, no I/O): simulated time is the fleet's. The runtime calls :meth:`advance`
after each tick, so a fault starts/ends at the first tick boundary at or after its scheduled
time (exactly on time when the times fall on ticks) and acts on the physics from there. What
a fault does lives elsewhere: device faults go to the fleet (``Fleet.trip``,
``Fleet.set_device_fault``), comm faults are answered per request through :meth:`comm_for`
(comm.py), view faults through :meth:`present` (view.py).
"""

from __future__ import annotations

import builtins
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ..sim import Fleet, Snapshot
from ..sim.device_fault import DeviceFault
from .comm import CommNotify, CommRule, PortComm
from .model import COMM_KINDS, Fault, FaultKind, FaultState
from .request import FaultRequest
from .view import AssetView, Bias, override_of

#: ``--seed`` default: a fixed seed, so two runs without the flag are already reproducible.
DEFAULT_SEED = 1
_EPS_S = 1e-9

FaultListener = Callable[[Fault], None]


def _start_order(f: Fault) -> tuple[float, datetime]:
    return f.start_s, f.created_at


class FaultError(ValueError):
    """A fault request that cannot be carried out; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FaultNotFoundError(KeyError):
    """No fault with this id."""


class FaultBook:
    """Every fault of this run (newest ``log_size`` kept) and the effects of the active ones."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        seed: int = DEFAULT_SEED,
        log_size: int = 10_000,
        id_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.fleet = fleet
        self.seed = seed
        self._log: OrderedDict[str, Fault] = OrderedDict()
        self._log_size = log_size
        self._new_id = id_factory
        self._open: dict[str, Fault] = {}  # scheduled or active, by id
        self._ordinal = 0
        self._rngs: dict[str, random.Random] = {}
        self._listeners: list[FaultListener] = []
        self._comm_listeners: list[CommNotify] = []
        self._device: dict[str, DeviceFault] = {}
        self._comm: dict[int, PortComm] = {}
        self._refusing: frozenset[int] = frozenset()
        self._views: dict[str, AssetView] = {}
        self._frozen: dict[str, dict[str, Snapshot]] = {}  # fault id → surface → snapshot
        self._biases: dict[str, Bias] = {}
        self._changed: list[Fault] = []  # told to the listeners once the effects are rebuilt

    # ------------------------------------------------------------ listeners
    def add_listener(self, listener: FaultListener) -> None:
        """``listener(fault)`` on every new fault and state change (synchronously, once the
        effects of the change are in place)."""
        self._listeners.append(listener)

    def add_comm_listener(self, listener: CommNotify) -> None:
        """``listener(asset_id | None, port, kind)`` once per request or connection a comm
        fault affected; kind ∈ exception, dropped, late, refused, offline."""
        self._comm_listeners.append(listener)

    def notify_comm(self, asset_id: str | None, port: int, kind: str) -> None:
        for cb in self._comm_listeners:
            cb(asset_id, port, kind)

    # ------------------------------------------------------------ read side
    def get(self, fault_id: str) -> Fault | None:
        return self._log.get(fault_id)

    def list(
        self,
        asset_id: str | None = None,
        state: FaultState | str | None = None,
        limit: int = 1000,
        port: int | None = None,
    ) -> list[Fault]:
        """Newest first. ``asset_id`` also matches port-wide faults of that asset's port."""
        want = None if state is None else FaultState(state)
        asset_port = self._port_of(asset_id) if asset_id is not None else None
        out: list[Fault] = []
        for f in reversed(self._log.values()):
            if want is not None and f.state is not want:
                continue
            if (
                asset_id is not None
                and f.asset_id != asset_id
                and (f.port is None or f.port != asset_port)
            ):
                continue
            if port is not None and f.port != port and self._port_of(f.asset_id) != port:
                continue
            out.append(f)
            if len(out) >= limit:
                break
        return out

    @property
    def active(self) -> builtins.list[Fault]:
        return [f for f in self._open.values() if f.state is FaultState.ACTIVE]

    # ------------------------------------------------------------ commands
    def check_target(self, request: FaultRequest) -> None:
        """Raises :class:`FaultError` naming the field when the target does not exist."""
        asset_id = None if request.asset_id is None else str(request.asset_id)
        if asset_id is not None and not self.fleet.has_asset(asset_id):
            raise FaultError("asset_id", f"unknown asset {asset_id}")
        if request.port is not None and request.port not in self._ports():
            raise FaultError("port", f"no asset is served on Modbus port {request.port}")

    def add(self, request: FaultRequest, *, fault_id: str | None = None) -> Fault:
        """Schedule ``request`` (active at once when ``start_in_s`` is 0). Raises
        :class:`FaultError` naming the field when the target does not exist. ``fault_id``:
        the id to use (scale-out: one port-wide fault on several agents has one id)."""
        self.check_target(request)
        asset_id = None if request.asset_id is None else str(request.asset_id)
        now_s = self.fleet.sim_time_s
        start_s = now_s + request.start_in_s
        end_s = None if request.duration_s is None else start_s + request.duration_s
        fault = Fault(
            id=self._new_id() if fault_id is None else fault_id,
            kind=request.kind,
            asset_id=asset_id,
            port=request.port,
            params=dict(request.params),
            state=FaultState.SCHEDULED,
            created_at=self._at(now_s),
            starts_at=self._at(start_s),
            ends_at=None if end_s is None else self._at(end_s),
            started_at=None,
            ended_at=None,
            start_s=start_s,
            end_s=end_s,
            duration_s=request.duration_s,
        )
        self._ordinal += 1
        self._rngs[fault.id] = random.Random(f"{self.seed}:{self._ordinal}")
        self._store(fault)
        self._open[fault.id] = fault
        if not self.advance():
            self._flush()
        return self._log[fault.id]

    def restore(self, faults: Sequence[Fault]) -> None:
        """Take back the scheduled and active faults of a process that stopped (scale-out
        agent restart, DESIGN §15) on this fleet's time base, with their ids, times and
        parameters; listeners are not told (nothing changed for them). A trip's effect is
        the asset's own tripped state; a freeze holds the asset as it is now; a comm
        fault's random draws start over."""
        base = self.fleet.start_time
        for fault in faults:
            if fault.state is FaultState.ENDED or fault.id in self._log:
                continue
            start_s = (fault.starts_at - base).total_seconds()
            end_s = None if fault.ends_at is None else (fault.ends_at - base).total_seconds()
            f = replace(fault, start_s=start_s, end_s=end_s)
            self._ordinal += 1
            self._rngs[f.id] = random.Random(f"{self.seed}:{f.id}")
            if f.state is FaultState.ACTIVE and f.started_at is not None:
                started_s = (f.started_at - base).total_seconds()
                if f.kind is FaultKind.SOC_BIAS:
                    p = f.params
                    self._biases[f.id] = Bias(
                        float(p["offset_pct"]), float(p["drift_pct_per_h"]), started_s
                    )
                elif f.kind is FaultKind.FROZEN_TELEMETRY and f.asset_id is not None:
                    snap = self.fleet.snapshot(f.asset_id)
                    surfaces = f.params.get("surfaces") or ["modbus"]
                    self._frozen[f.id] = dict.fromkeys(surfaces, snap)
            self._log[f.id] = f
            self._open[f.id] = f
        self._rebuild()

    def end(self, fault_id: str, reason: str = "deleted") -> Fault:
        """End a fault now (a scheduled one is cancelled); an ended one is returned as is."""
        fault = self._log.get(fault_id)
        if fault is None:
            raise FaultNotFoundError(fault_id)
        if fault.state is FaultState.ENDED:
            return fault
        self._finish(fault, self.fleet.sim_time_s, reason)
        self._rebuild()
        self._flush()
        return self._log[fault_id]

    def advance(self) -> bool:
        """Start and end faults due at the fleet's simulated time; True if any changed."""
        if not self._open:
            return False
        now_s = self.fleet.sim_time_s
        changed = False
        for fault in sorted(self._open.values(), key=_start_order):
            if fault.asset_id is not None and not self.fleet.has_asset(fault.asset_id):
                self._finish(fault, now_s, "asset removed")
                changed = True
                continue
            if fault.state is FaultState.SCHEDULED and fault.start_s <= now_s + _EPS_S:
                fault = self._activate(fault, now_s)
                changed = True
            if (
                fault.state is FaultState.ACTIVE
                and fault.end_s is not None
                and fault.end_s <= now_s + _EPS_S
            ):
                self._finish(fault, now_s, "elapsed")
                changed = True
        if changed:
            self._rebuild()
            self._flush()
        return changed

    def refresh(self) -> None:
        """The fleet changed (an asset added, moved or removed, DESIGN §14): end the faults
        of removed assets and recompute which units/ports the others act on."""
        if not self.advance():
            self._rebuild()
            self._flush()

    # ------------------------------------------------------------ effects: comm
    def comm_for(self, port: int) -> PortComm | None:
        """The comm rules in effect on ``port`` (None: none, serve normally)."""
        return self._comm.get(port)

    @property
    def refusing_ports(self) -> frozenset[int]:
        """Ports under ``modbus_disconnect``: connections closed, new ones refused."""
        return self._refusing

    # ------------------------------------------------------------ effects: views
    def present(self, snapshots: Sequence[Snapshot], surface: str) -> Sequence[Snapshot]:
        """``snapshots`` as ``surface`` (modbus | rest) shows them (the same list when no view
        fault is in effect)."""
        views = self._views
        if not views:
            return snapshots
        return [
            s if (v := views.get(s.asset_id)) is None else v.present(s, surface) for s in snapshots
        ]

    def present_one(self, snap: Snapshot, surface: str) -> Snapshot:
        view = self._views.get(snap.asset_id)
        return snap if view is None else view.present(snap, surface)

    # ------------------------------------------------------------ transitions
    def _activate(self, fault: Fault, now_s: float) -> Fault:
        fleet = self.fleet
        asset_id = fault.asset_id
        if fault.kind is FaultKind.TRIP and asset_id is not None:
            fleet.trip(asset_id)
        elif fault.kind is FaultKind.SOC_BIAS:
            p = fault.params
            self._biases[fault.id] = Bias(
                float(p["offset_pct"]), float(p["drift_pct_per_h"]), now_s
            )
        elif fault.kind is FaultKind.FROZEN_TELEMETRY and asset_id is not None:
            # What each surface shows at this instant stays shown (timestamp included).
            view = self._views.get(asset_id)
            snap = fleet.snapshot(asset_id)
            surfaces = fault.params.get("surfaces") or ["modbus"]
            self._frozen[fault.id] = {
                s: (snap if view is None else view.present(snap, s)) for s in surfaces
            }
        active = replace(fault, state=FaultState.ACTIVE, started_at=self._at(now_s))
        self._open[fault.id] = active
        self._store(active)
        return active

    def _finish(self, fault: Fault, now_s: float, reason: str) -> None:
        at_s = now_s
        if reason == "elapsed" and fault.end_s is not None:
            at_s = max(min(fault.end_s, now_s), fault.start_s)
        ended = replace(
            fault,
            state=FaultState.ENDED,
            ended_at=self._at(at_s),
            end_reason=reason if fault.state is FaultState.ACTIVE else f"{reason} (never started)",
        )
        self._open.pop(fault.id, None)
        self._rngs.pop(fault.id, None)
        self._frozen.pop(fault.id, None)
        self._biases.pop(fault.id, None)
        self._store(ended)

    def _rebuild(self) -> None:
        """Recompute the effect indices from the active faults (after every change)."""
        fleet = self.fleet
        device: dict[str, DeviceFault] = {}
        comm: dict[int, PortComm] = {}
        refusing: set[int] = set()
        views: dict[str, AssetView] = {}
        units_of = self._units_by_port()
        for f in sorted(self.active, key=_start_order):
            aid = f.asset_id
            kind = f.kind
            if kind is FaultKind.DERATE or kind is FaultKind.STUCK:
                assert aid is not None
                d = device.get(aid, DeviceFault())
                if kind is FaultKind.STUCK:
                    d = replace(d, stuck=True)
                else:
                    d = replace(
                        d,
                        discharge_pct=d.discharge_pct * float(f.params["discharge_pct"]) / 100.0,
                        charge_pct=d.charge_pct * float(f.params["charge_pct"]) / 100.0,
                    )
                device[aid] = d
            elif kind in COMM_KINDS:
                port, unit = self._wire_target(f)
                if port is None:
                    continue
                if kind is FaultKind.MODBUS_DISCONNECT:
                    refusing.add(port)
                    unit = None  # TCP connections belong to the port, not to a unit
                pc = comm.get(port)
                if pc is None:
                    pc = comm[port] = PortComm(port, units_of.get(port, {}))
                pc.rules.append(CommRule(f.id, kind, unit, f.params, self._rngs[f.id]))
            elif aid is not None:
                view = views.setdefault(aid, AssetView())
                if kind is FaultKind.SOC_BIAS:
                    view.biases.append(self._biases[f.id])
                elif kind is FaultKind.VALUE_OVERRIDE:
                    view.overrides.append(override_of(f.params))
                elif kind is FaultKind.FROZEN_TELEMETRY:
                    for surface, snap in self._frozen.get(f.id, {}).items():
                        view.frozen.setdefault(surface, snap)
        for aid in set(self._device) | set(device):
            if self._device.get(aid) != device.get(aid) and fleet.has_asset(aid):
                fleet.set_device_fault(aid, device.get(aid))
        self._device = device
        self._comm = comm
        self._refusing = frozenset(refusing)
        self._views = views

    # ------------------------------------------------------------ helpers
    def _store(self, fault: Fault) -> None:
        self._log[fault.id] = fault
        self._log.move_to_end(fault.id)
        while len(self._log) > self._log_size:
            old_id, old = next(iter(self._log.items()))
            if old.state is not FaultState.ENDED:
                break  # never forget an open fault
            del self._log[old_id]
        self._changed.append(fault)

    def _flush(self) -> None:
        changed, self._changed = self._changed, []
        for fault in changed:
            for cb in self._listeners:
                cb(fault)

    def _at(self, sim_s: float) -> datetime:
        return self.fleet.start_time + timedelta(seconds=sim_s)

    def _ports(self) -> set[int]:
        return {s.modbus.port for s in self.fleet.specs}

    def _port_of(self, asset_id: str | None) -> int | None:
        if asset_id is None or not self.fleet.has_asset(asset_id):
            return None
        return self.fleet.spec(asset_id).modbus.port

    def _units_by_port(self) -> dict[int, dict[int, str]]:
        out: dict[int, dict[int, str]] = {}
        for s in self.fleet.specs:
            out.setdefault(s.modbus.port, {})[s.modbus.unit_id] = s.id
        return out

    def _wire_target(self, fault: Fault) -> tuple[int | None, int | None]:
        if fault.port is not None:
            return fault.port, None
        if fault.asset_id is None or not self.fleet.has_asset(fault.asset_id):
            return None, None
        addr = self.fleet.spec(fault.asset_id).modbus
        return addr.port, addr.unit_id
