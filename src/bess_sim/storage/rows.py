"""Conversions between domain objects and database rows (plain tuples/dicts, no asyncpg)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..sim import (
    Alarm,
    AssetSpec,
    DispatchRecord,
    DispatchSource,
    DispatchStatus,
    Site,
    Snapshot,
    Status,
)
from ..sim.model import ALARM_NAMES, STATUS_LABELS, alarm_names

_ALARM_BY_NAME = {name: bit for bit, name in ALARM_NAMES.items()}
_STATUS_BY_LABEL = {s.label: s for s in Status}


def site_row(site: Site) -> tuple[Any, ...]:
    return (site.id, site.name, site.location)


def asset_row(a: AssetSpec) -> tuple[Any, ...]:
    return (
        a.id, a.site_id, a.name, a.location, a.capacity_mwhr, a.max_mw, a.min_mw,
        a.ramp_rate_mw_per_min, a.efficiency, a.initial_soc_pct, a.soc_min_pct, a.soc_max_pct,
        a.watchdog_timeout_s, a.modbus.port, a.modbus.unit_id,
    )  # fmt: skip


def telemetry_row(s: Snapshot) -> tuple[Any, ...]:
    """Row in schema.TELEMETRY_COLUMNS order."""
    return (
        s.asset_id, s.timestamp, s.soc_mwhr, s.soc_pct, s.current_mw, s.setpoint_mw,
        s.status_label, s.alarm_names, s.current_mvar, s.setpoint_mvar,
        s.available_discharge_mw, s.available_charge_mw, s.temperature_c, s.frequency_hz,
    )  # fmt: skip


_I = {name: i for i, name in enumerate(Snapshot._fields)}
_ID, _TS, _SOC, _PCT, _MW, _SP, _ST, _AL, _QV, _QS, _AD, _AC, _TC, _HZ = (
    _I[f] for f in (
        "asset_id", "timestamp", "soc_mwhr", "soc_pct", "current_mw", "setpoint_mw", "status",
        "alarms", "current_mvar", "setpoint_mvar", "available_discharge_mw",
        "available_charge_mw", "temperature_c", "frequency_hz",
    )
)  # fmt: skip


def telemetry_rows(snapshots: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """:func:`telemetry_row` for many snapshots given as plain tuples in Snapshot field order
    (as the writer buffer keeps them): no Snapshot objects are built on the writer's path. The
    alarms stay the cached tuple of ``alarm_names`` (asyncpg encodes any sequence as text[]):
    a new list per row made the conversion of a 20 000-row batch trigger GC passes that held
    the loop ~60 ms (bench/drain_stall.py)."""
    return [
        (t[_ID], t[_TS], t[_SOC], t[_PCT], t[_MW], t[_SP], STATUS_LABELS[t[_ST]],
         alarm_names(t[_AL]), t[_QV], t[_QS], t[_AD], t[_AC], t[_TC], t[_HZ])
        for t in snapshots
    ]  # fmt: skip


def dispatch_row(r: DispatchRecord) -> tuple[Any, ...]:
    """Row in schema.DISPATCH_COLUMNS order."""
    return (
        r.id, r.asset_id, r.mw, r.duration_s, r.status.value, r.reason, r.source.value,
        r.client, r.submitted_at, r.ended_at, r.mvar,
    )  # fmt: skip


def parse_alarms(names: Any) -> Alarm:
    alarms = Alarm(0)
    for name in names or ():
        alarms |= _ALARM_BY_NAME.get(str(name), Alarm(0))
    return alarms


def parse_status(label: Any) -> Status:
    return _STATUS_BY_LABEL.get(str(label), Status.IDLE)


def dispatch_record(row: Mapping[str, Any]) -> DispatchRecord:
    duration = row["duration_s"]
    return DispatchRecord(
        id=str(row["id"]),
        asset_id=str(row["asset_id"]),
        mw=float(row["mw"]),
        duration_s=None if duration is None else float(duration),
        status=DispatchStatus(row["status"]),
        reason=row["reason"],
        source=DispatchSource(row["source"]),
        client=row["client"],
        submitted_at=row["submitted_at"],
        ended_at=row["ended_at"],
        mvar=_opt(row, "mvar"),
    )


def _opt(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(value)


def _or(row: Mapping[str, Any], key: str, default: float) -> float:
    value = _opt(row, key)
    return default if value is None else value


def snapshot_from_row(
    spec: AssetSpec, fleet_start: datetime, row: Mapping[str, Any], ts: datetime
) -> Snapshot:
    """A history row as a Snapshot: fixed fields from the asset spec, ``sim_time_s`` relative
    to the current run's start (negative for rows of an earlier run); heartbeat is not
    persisted (0)."""
    return Snapshot(
        asset_id=spec.id,
        site_id=spec.site_id,
        timestamp=ts,
        sim_time_s=(ts - fleet_start).total_seconds(),
        soc_mwhr=float(row["soc_mwhr"]),
        soc_pct=float(row["soc_pct"]),
        capacity_mwhr=spec.capacity_mwhr,
        current_mw=float(row["current_mw"]),
        setpoint_mw=float(row["setpoint_mw"]),
        max_mw=spec.max_mw,
        min_mw=spec.min_mw,
        status=int(parse_status(row["status"])),
        alarms=int(parse_alarms(row["alarms"])),
        heartbeat=0,
        # DESIGN §10 columns; NULL in rows from before schema version 2: the §3 values.
        current_mvar=_or(row, "current_mvar", 0.0),
        setpoint_mvar=_or(row, "setpoint_mvar", 0.0),
        available_discharge_mw=_or(row, "available_discharge_mw", spec.max_mw),
        available_charge_mw=_or(row, "available_charge_mw", spec.min_mw),
        temperature_c=_opt(row, "temperature_c"),
        frequency_hz=_or(row, "frequency_hz", 50.0),
    )
