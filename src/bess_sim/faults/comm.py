"""Per-request decisions of the Modbus comm faults (DESIGN §11), in arrival order.

Pure: the Modbus layer asks :meth:`PortComm.decide` for each well-framed request of a port and
carries out the :class:`CommDecision` (modbus/connection.py ``HookAction``). Random draws come
from one ``random.Random`` per fault, seeded from the run's ``--seed`` and the fault's ordinal,
so the same seed and the same request sequence give the same drops, whatever other faults do.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .model import FaultKind

#: Modbus exception 0x0B: gateway target device failed to respond (application protocol
#: v1.1b3 §7) — what a gateway answers for a device that is gone.
GATEWAY_TARGET_FAILED = 0x0B

CommNotify = Callable[[str | None, int, str], None]


@dataclass(frozen=True, slots=True)
class CommDecision:
    """What to do with one request: wait ``delay_s`` (wall clock), then close the connection,
    drop the request (no answer) or answer ``exception_code`` instead of serving it."""

    delay_s: float = 0.0
    drop: bool = False
    exception_code: int | None = None
    close: bool = False


class CommRule:
    """One active comm fault, compiled for the request path."""

    __slots__ = ("code", "delay_s", "fault_id", "fcs", "jitter_s", "kind", "probability", "rng",
                 "unit")  # fmt: skip

    def __init__(
        self,
        fault_id: str,
        kind: FaultKind,
        unit: int | None,
        params: dict[str, object],
        rng: random.Random,
    ) -> None:
        self.fault_id = fault_id
        self.kind = kind
        self.unit = unit  # None: every unit of the port
        self.rng = rng
        self.delay_s = _num(params.get("delay_ms"), 0.0) / 1000.0
        self.jitter_s = _num(params.get("jitter_ms"), 0.0) / 1000.0
        self.probability = _num(params.get("probability"), 1.0)
        code = params.get("code")
        self.code = int(code) if isinstance(code, int) else GATEWAY_TARGET_FAILED
        fcs = params.get("function_codes")
        self.fcs = frozenset(int(f) for f in fcs) if isinstance(fcs, list) else None

    def fires(self) -> bool:
        p = self.probability
        return p >= 1.0 or (p > 0.0 and self.rng.random() < p)


def _num(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) else default


class PortComm:
    """The comm rules in effect on one port and the unit → asset map for the listeners."""

    __slots__ = ("port", "rules", "units")

    def __init__(self, port: int, units: dict[int, str]) -> None:
        self.port = port
        self.units = units
        self.rules: list[CommRule] = []

    def decide(self, unit: int, fc: int, notify: CommNotify) -> CommDecision | None:
        """The decision for one request (None: serve normally). Rules combine: latencies add
        up; then the first of disconnect, offline, drop, exception that fires decides."""
        delay = 0.0
        close = drop = False
        code: int | None = None
        outcomes: list[str] = []
        for r in self.rules:
            if r.unit is not None and r.unit != unit:
                continue
            kind = r.kind
            decided = close or drop or code is not None
            if kind is FaultKind.MODBUS_LATENCY:
                d = r.delay_s
                if r.jitter_s > 0.0:
                    d += r.rng.uniform(-r.jitter_s, r.jitter_s)
                if d > 0.0:
                    delay += d
                    outcomes.append("late")
            elif decided:
                continue
            elif kind is FaultKind.MODBUS_DISCONNECT:
                close = True
                outcomes.append("refused")
            elif kind is FaultKind.MODBUS_OFFLINE:
                code = GATEWAY_TARGET_FAILED
                outcomes.append("offline")
            elif kind is FaultKind.MODBUS_DROP:
                if r.fires():
                    drop = True
                    outcomes.append("dropped")
            elif (
                kind is FaultKind.MODBUS_EXCEPTION and (r.fcs is None or fc in r.fcs) and r.fires()
            ):
                code = r.code
                outcomes.append("exception")
        if not outcomes:
            return None
        asset_id = self.units.get(unit)
        for outcome in outcomes:
            notify(asset_id, self.port, outcome)
        return CommDecision(delay, drop, code, close)
