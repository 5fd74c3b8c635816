"""Per-asset mutable state of the fleet and the snapshot built from it."""

from __future__ import annotations

from datetime import datetime

from . import physics
from .device_fault import DeviceFault, faulted_limits
from .dispatch import DispatchRecord, DispatchSource
from .model import Alarm, AssetSpec, Snapshot, Status
from .models import AssetModel
from .models.thermal import derate_factor
from .untrack import untrack

# Status thresholds (DESIGN §3.5).
_STATUS_DEADBAND_MW = 0.1
# Plain ints in snapshots (see Snapshot: GC-untrackable).
_IDLE, _CHARGING, _DISCHARGING, _FAULT = (
    int(Status.IDLE),
    int(Status.CHARGING),
    int(Status.DISCHARGING),
    int(Status.FAULT),
)
_SOC_LOW = int(Alarm.SOC_LOW)
_SOC_HIGH = int(Alarm.SOC_HIGH)
_DERATED = int(Alarm.DERATED)
_SOC_EPS = physics.SOC_EPS_MWH


class AssetCell:
    """Mutable per-asset cell of the fleet; everything it holds is an immutable value."""

    __slots__ = (
        "active",
        "active_end_s",
        "current_mvar",
        "current_mw",
        "fault",
        "heartbeat",
        "heartbeat_changed_s",
        "latched",
        "lim",
        "model",
        "setpoint_mvar",
        "setpoint_mw",
        "snapshot",
        "soc_mwhr",
        "spec",
        "temperature_c",
        "tripped",
        "watchdog_timeout_s",
    )

    def __init__(self, spec: AssetSpec) -> None:
        self.spec = spec
        self.lim = physics.Limits.of(spec)
        # The physical state lives here as two floats (not a PhysicalState) because the tick
        # rewrites it for every asset; see physics.integrate.
        self.soc_mwhr = spec.capacity_mwhr * spec.initial_soc_pct / 100.0
        self.current_mw = 0.0
        self.setpoint_mw = 0.0
        self.tripped = False
        self.latched = Alarm(0)  # watchdog / trip: stay set until cleared by a command
        self.active: DispatchRecord | None = None
        self.active_end_s: float | None = None
        self.watchdog_timeout_s = spec.watchdog_timeout_s
        self.heartbeat = 0
        self.heartbeat_changed_s = 0.0
        self.snapshot: Snapshot | None = None
        # DESIGN §10 state (stays 0 / None for an asset without the v2 fields).
        self.model = None if spec.model is None else AssetModel(spec, spec.model)
        self.current_mvar = 0.0
        self.setpoint_mvar = 0.0
        self.temperature_c = None if self.model is None else self.model.initial_temperature_c()
        self.fault: DeviceFault | None = None  # DESIGN §11 device faults in effect

    def apply_fault(self, fault: DeviceFault | None) -> None:
        """Fold the device faults into the constants the tick reads (sim/device_fault.py)."""
        spec = self.spec
        self.fault = fault
        self.lim = faulted_limits(spec, fault)
        self.model = None if spec.model is None else AssetModel(spec, spec.model, fault)
        if fault is not None and fault.derated:
            self.latched |= Alarm.DERATED
        else:
            self.latched &= ~Alarm.DERATED

    def watchdog_deadline_s(self) -> float | None:
        active = self.active
        if active is None or active.source is not DispatchSource.MODBUS:
            return None
        if self.watchdog_timeout_s <= 0.0:
            return None
        return self.heartbeat_changed_s + self.watchdog_timeout_s


def snapshot_of(cell: AssetCell, ts: datetime, sim_s: float, frequency_hz: float) -> Snapshot:
    """The asset's telemetry now (DESIGN §3.6, §10)."""
    spec = cell.spec
    lim = cell.lim
    soc = cell.soc_mwhr
    mw = cell.current_mw
    bits = int(cell.latched)
    if soc <= lim.soc_min_mwhr + physics.SOC_EPS_MWH:
        bits |= _SOC_LOW
    if soc >= lim.soc_max_mwhr - physics.SOC_EPS_MWH:
        bits |= _SOC_HIGH
    if cell.tripped:
        status = _FAULT
    elif mw > _STATUS_DEADBAND_MW:
        status = _DISCHARGING
    elif mw < -_STATUS_DEADBAND_MW:
        status = _CHARGING
    else:
        status = _IDLE
    capacity = spec.capacity_mwhr
    model = cell.model
    if model is None:
        # §3 asset: rated limits, 0 in a direction blocked by an SOC bound or a trip.
        blocked = cell.tripped
        avail_dis = (
            0.0
            if blocked or (mw >= 0.0 and soc <= lim.soc_min_mwhr + _SOC_EPS)
            else lim.max_mw  # rated, or derated by a fault (sim/device_fault.py)
        )
        avail_chg = (
            0.0
            if blocked or (mw <= 0.0 and soc >= lim.soc_max_mwhr - _SOC_EPS)
            else lim.min_mw + 0.0
        )
    else:
        avail_dis, avail_chg = model.available(
            soc, cell.temperature_c, cell.tripped, mw, cell.current_mvar
        )
        if not cell.tripped and derate_factor(model.params.thermal, cell.temperature_c) < 1.0:
            bits |= _DERATED
    # Positional: this runs for every asset on every tick (field order of Snapshot).
    snap = Snapshot(
        spec.id,
        spec.site_id,
        ts,
        sim_s,
        soc,
        soc / capacity * 100.0,
        capacity,
        mw,
        cell.setpoint_mw,
        spec.max_mw,
        spec.min_mw,
        status,
        bits,
        cell.heartbeat,
        cell.current_mvar,
        cell.setpoint_mvar,
        avail_dis,
        avail_chg,
        cell.temperature_c,
        frequency_hz,
    )
    untrack(snap)  # never in a cycle; see untrack.py (GC pauses in the tick)
    return snap
