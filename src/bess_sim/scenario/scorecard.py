"""The EMS scorecard (DESIGN §12): what the EMS under test did during a scenario.

A recorder fed by the fleet's dispatch records, the tick snapshots and the Modbus layer's
comm events; pure arithmetic, no clock and no I/O (docs/scenarios.md defines every figure).
Times are simulated seconds since the scenario start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..sim.dispatch import DispatchRecord, DispatchSource, DispatchStatus
from ..sim.model import Alarm, AssetSpec, Snapshot

#: Comm event kinds (the fault layer's ``FaultBook.add_comm_listener`` callback vocabulary).
COMM_KINDS = ("exception", "dropped", "late", "refused", "offline")
#: Sources that are the EMS under test (a scenario's own dispatches are not).
EMS_SOURCES = frozenset({DispatchSource.MODBUS, DispatchSource.REST})
#: Entries kept in the rejected / beyond-available lists (counts are exact beyond it).
MAX_LISTED = 100
_SOC_LOW = int(Alarm.SOC_LOW)
_SOC_HIGH = int(Alarm.SOC_HIGH)
# Setpoint beyond an available limit by more than this (MW): float dust is not a finding.
_BEYOND_EPS_MW = 1e-6


@dataclass(slots=True)
class _Card:
    spec: AssetSpec
    by_source: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    beyond: int = 0
    reverts: int = 0
    at_min_s: float = 0.0
    at_max_s: float = 0.0
    charged_mwh: float = 0.0
    discharged_mwh: float = 0.0
    comm: Counter[str] = field(default_factory=Counter)
    last_t: float | None = None
    last_mw: float = 0.0
    last: Snapshot | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A fault start/end or a frequency event the EMS may react to."""

    kind: str  # fault_start | fault_end | frequency
    at_s: float
    asset_id: str | None  # None: fleet-wide (frequency, a port-wide fault)
    label: str


def energy_split(mw0: float, mw1: float, dt_s: float) -> tuple[float, float]:
    """(discharged, charged) MWh of power moving linearly from mw0 to mw1 over dt_s,
    split where it crosses zero (both ≥ 0)."""
    if dt_s <= 0.0:
        return 0.0, 0.0
    h = dt_s / 3600.0
    if mw0 >= 0.0 and mw1 >= 0.0:
        return (mw0 + mw1) / 2.0 * h, 0.0
    if mw0 <= 0.0 and mw1 <= 0.0:
        return 0.0, -(mw0 + mw1) / 2.0 * h
    # Crosses zero at fraction f of the interval.
    f = mw0 / (mw0 - mw1)
    first = mw0 / 2.0 * f * h
    second = mw1 / 2.0 * (1.0 - f) * h
    if mw0 > 0.0:
        return first, -second
    return second, -first


class ScorecardRecorder:
    """Collects the scorecard of one scenario run. ``origin`` is the simulated UTC time of the
    scenario start; only commands submitted from then on count."""

    def __init__(
        self,
        specs: Iterable[AssetSpec],
        origin: datetime,
        state_of: Callable[[str], Snapshot] | None = None,
        origin_s: float = 0.0,
    ) -> None:
        self.origin = origin
        self._origin_s = origin_s  # the fleet's sim_time_s at ``origin``
        # The asset's state when a command arrives (the fleet refreshes it on a trip or a
        # reset between ticks); the last tick's snapshot when not given.
        self._state_of = state_of
        self._cards: dict[str, _Card] = {s.id: _Card(s) for s in specs}
        self._seen: set[str] = set()
        self._commands: list[tuple[float, str, str]] = []  # (t, asset_id, source) of EMS
        self._rejected: list[dict[str, Any]] = []
        self._beyond: list[dict[str, Any]] = []
        self._events: list[Event] = []
        self._port_comm: Counter[tuple[int, str]] = Counter()
        self._unit_comm: Counter[str] = Counter()  # comm events without an asset
        self.active = True

    # ------------------------------------------------------------ inputs
    def _t(self, when: datetime) -> float:
        return (when - self.origin).total_seconds()

    def on_dispatch(self, record: DispatchRecord) -> None:
        """Fleet dispatch listener: every new or changed record."""
        if not self.active:
            return
        card = self._cards.get(record.asset_id)
        if card is None:
            return
        if record.status is DispatchStatus.REVERTED:
            card.reverts += 1
            return
        if record.id in self._seen or record.status not in (
            DispatchStatus.ACCEPTED,
            DispatchStatus.REJECTED,
        ):
            return
        t = self._t(record.submitted_at)
        if t < -1e-9:
            return  # a record from before the scenario
        self._seen.add(record.id)
        source = record.source.value
        card.by_source[source] += 1
        if record.source not in EMS_SOURCES:
            return
        self._commands.append((t, record.asset_id, source))
        name = card.spec.name
        if record.status is DispatchStatus.REJECTED:
            card.rejected += 1
            reason = record.reason or ""
            card.reasons[reason] += 1
            if len(self._rejected) < MAX_LISTED:
                self._rejected.append({"at_s": t, "asset": name, "asset_id": record.asset_id,
                                       "source": source, "client": record.client,
                                       "mw": record.mw, "reason": reason})  # fmt: skip
            return
        snap = card.last if self._state_of is None else self._state_of(record.asset_id)
        if snap is None:
            return
        hi, lo = snap.available_discharge_mw, snap.available_charge_mw
        if record.mw > hi + _BEYOND_EPS_MW or record.mw < lo - _BEYOND_EPS_MW:
            card.beyond += 1
            if len(self._beyond) < MAX_LISTED:
                self._beyond.append({"at_s": t, "asset": name, "asset_id": record.asset_id,
                                     "source": source, "mw": record.mw,
                                     "available_discharge_mw": hi,
                                     "available_charge_mw": lo})  # fmt: skip

    def on_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """One tick's snapshots (also called once with the state at the start)."""
        if not self.active:
            return
        cards = self._cards
        origin_s = self._origin_s
        for snap in snapshots:
            card = cards.get(snap.asset_id)
            if card is None:
                continue
            # Runs for every asset on every tick: plain ints and floats only (an IntFlag
            # ``&`` costs ~1 µs, datetime arithmetic more; bench/scenario_overhead.py).
            t = snap.sim_time_s - origin_s
            last_t = card.last_t
            mw = snap.current_mw
            if last_t is not None and t > last_t:
                dt = t - last_t
                if mw != 0.0 or card.last_mw != 0.0:
                    dis, chg = energy_split(card.last_mw, mw, dt)
                    card.discharged_mwh += dis
                    card.charged_mwh += chg
                # The state at the end of the tick stands for the tick (ticks are short).
                alarms = snap.alarms
                if alarms & _SOC_LOW:
                    card.at_min_s += dt
                if alarms & _SOC_HIGH:
                    card.at_max_s += dt
            card.last_t = t
            card.last_mw = mw
            card.last = snap

    def on_comm_event(self, asset_id: str | None, port: int, kind: str) -> None:
        """A Modbus answer the EMS got wrong: exception, dropped, late, refused, offline.
        Same signature as the fault layer's comm listener (``FaultBook.add_comm_listener``)."""
        if not self.active:
            return
        self._port_comm[(port, kind)] += 1
        card = self._cards.get(asset_id) if asset_id is not None else None
        if card is None:
            self._unit_comm[kind] += 1
        else:
            card.comm[kind] += 1

    def note_event(self, event: Event) -> None:
        if self.active:
            self._events.append(event)

    def drop_events(self, kind: str, label: str, after_s: float) -> None:
        """Forget scheduled events that will not happen (a fault cleared before its end)."""
        self._events = [
            e
            for e in self._events
            if not (e.kind == kind and e.label == label and e.at_s > after_s)
        ]

    # ------------------------------------------------------------ outputs
    def reaction_s(self, event: Event) -> float | None:
        """Seconds from ``event`` to the first EMS command after it (to its asset, or to any
        asset for a fleet-wide event); None when there was none."""
        for t, asset_id, _ in self._commands:
            if t + 1e-9 >= event.at_s and (event.asset_id is None or asset_id == event.asset_id):
                return max(t - event.at_s, 0.0)
        return None

    def figure(self, name: str, asset_id: str | None) -> float:
        """One number of the scorecard so far (``scorecard.<name>`` expectations)."""
        cards = list(self._cards.values()) if asset_id is None else [self._cards[asset_id]]
        figures = _figures(cards, self._unit_comm if asset_id is None else Counter())
        value = figures[name]
        assert isinstance(value, int | float)
        return float(value)

    def result(self) -> dict[str, Any]:
        cards = list(self._cards.values())
        fleet = _figures(cards, self._unit_comm)
        fleet["modbus_by_port"] = [
            {"port": port, "kind": kind, "count": n}
            for (port, kind), n in sorted(self._port_comm.items())
        ]
        return {
            "fleet": fleet,
            "assets": [
                {"asset_id": c.spec.id, "asset": c.spec.name, **_figures([c], Counter())}
                for c in cards
            ],
            "events": [
                {
                    "kind": e.kind,
                    "at_s": e.at_s,
                    "asset_id": e.asset_id,
                    "asset": None if e.asset_id is None else self._name(e.asset_id),
                    "label": e.label,
                    "reaction_s": self.reaction_s(e),
                }
                for e in sorted(self._events, key=lambda e: e.at_s)
            ],
            "rejected": list(self._rejected),
            "beyond_available": list(self._beyond),
        }

    def _name(self, asset_id: str) -> str:
        card = self._cards.get(asset_id)
        return asset_id if card is None else card.spec.name


def _figures(cards: list[_Card], extra_comm: Counter[str]) -> dict[str, Any]:
    by_source: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    comm: Counter[str] = Counter(extra_comm)
    for c in cards:
        by_source.update(c.by_source)
        reasons.update(c.reasons)
        comm.update(c.comm)
    charged = sum(c.charged_mwh for c in cards)
    discharged = sum(c.discharged_mwh for c in cards)
    capacity = sum(c.spec.capacity_mwhr for c in cards)
    return {
        "ems_commands": sum(n for s, n in by_source.items() if s != "scenario"),
        "commands_by_source": {s.value: by_source.get(s.value, 0) for s in DispatchSource},
        "rejected_commands": sum(c.rejected for c in cards),
        "rejected_reasons": dict(reasons.most_common(MAX_LISTED)),
        "setpoints_beyond_available": sum(c.beyond for c in cards),
        "watchdog_reverts": sum(c.reverts for c in cards),
        "seconds_at_soc_min": sum(c.at_min_s for c in cards),
        "seconds_at_soc_max": sum(c.at_max_s for c in cards),
        "energy_charged_mwh": charged,
        "energy_discharged_mwh": discharged,
        # Throughput-based equivalent full cycles: (charged + discharged) / (2 × capacity).
        "equivalent_full_cycles": (charged + discharged) / (2.0 * capacity) if capacity else 0.0,
        "modbus_exceptions": comm.get("exception", 0),
        "modbus_dropped": comm.get("dropped", 0),
        "modbus_late": comm.get("late", 0),
        "modbus_refused": comm.get("refused", 0),
        "modbus_offline": comm.get("offline", 0),
    }
