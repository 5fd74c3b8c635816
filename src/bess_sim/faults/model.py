"""Fault kinds, states and the frozen fault record (DESIGN §11)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class FaultKind(enum.StrEnum):
    TRIP = "trip"
    DERATE = "derate"
    STUCK = "stuck"
    SOC_BIAS = "soc_bias"
    MODBUS_LATENCY = "modbus_latency"
    MODBUS_DROP = "modbus_drop"
    MODBUS_EXCEPTION = "modbus_exception"
    MODBUS_OFFLINE = "modbus_offline"
    MODBUS_DISCONNECT = "modbus_disconnect"
    FROZEN_TELEMETRY = "frozen_telemetry"
    VALUE_OVERRIDE = "value_override"


class FaultState(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"


#: Act on the power stage through the fleet (sim/device_fault.py, Fleet.trip).
DEVICE_KINDS = frozenset({FaultKind.TRIP, FaultKind.DERATE, FaultKind.STUCK})
#: Act on the wire, per request (or per connection for disconnect).
COMM_KINDS = frozenset(
    {
        FaultKind.MODBUS_LATENCY,
        FaultKind.MODBUS_DROP,
        FaultKind.MODBUS_EXCEPTION,
        FaultKind.MODBUS_OFFLINE,
        FaultKind.MODBUS_DISCONNECT,
    }
)
#: Kinds that may target a whole port instead of one asset.
PORT_KINDS = COMM_KINDS
#: Act on what the faces publish (Modbus, SunSpec, REST, WebSocket), not on the physics.
VIEW_KINDS = frozenset({FaultKind.SOC_BIAS, FaultKind.FROZEN_TELEMETRY, FaultKind.VALUE_OVERRIDE})

#: What a comm listener is told, once per affected request or connection.
CommOutcome = str  # "exception" | "dropped" | "late" | "refused" | "offline"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault. Times are simulated UTC; ``*_s`` the same in simulated seconds."""

    id: str
    kind: FaultKind
    asset_id: str | None
    port: int | None
    params: dict[str, Any]
    state: FaultState
    created_at: datetime
    starts_at: datetime  # scheduled start
    ends_at: datetime | None  # scheduled end (None: until ended by DELETE)
    started_at: datetime | None  # when it took effect
    ended_at: datetime | None  # when it stopped (or was cancelled before starting)
    start_s: float
    end_s: float | None
    end_reason: str | None = None  # elapsed | deleted | asset removed
    duration_s: float | None = None
