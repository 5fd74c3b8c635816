"""Wires a :class:`~bess_sim.faults.FaultBook` into one simulator (DESIGN §11).

The fault room is pure; this is where its decisions meet the Modbus listeners (per-port
request hooks, refused connections), the faces (the Modbus sink sees snapshots as the
``modbus`` surface shows them), the log (one line at start, one at end), /metrics and the
persistence queue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from .faults import Fault, FaultBook, FaultKind, FaultState
from .metrics import Metrics
from .modbus.connection import HookAction, RequestHook
from .modbus.server import ModbusService
from .sim import Fleet, Snapshot

log = logging.getLogger("bess_sim.faults")


class ModbusFace:
    """Telemetry sink in front of the Modbus service: publishes what the ``modbus`` surface
    shows (native registers and the SunSpec block read the same snapshot)."""

    def __init__(self, service: ModbusService, book: FaultBook) -> None:
        self.service = service
        self.book = book

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        self.service.publish(self.book.present(snapshots, "modbus"))


class FaultWiring:
    def __init__(
        self,
        book: FaultBook,
        fleet: Fleet,
        metrics: Metrics,
        modbus: Callable[[], ModbusService | None],
    ) -> None:
        self.book = book
        self.fleet = fleet
        self.metrics = metrics
        self._modbus = modbus
        self._hooks: dict[int, RequestHook] = {}
        self._refusing: frozenset[int] = frozenset()
        book.add_listener(self._on_fault)
        book.add_comm_listener(self._on_comm)

    # ------------------------------------------------------------ Modbus
    def attach(self, service: ModbusService) -> None:
        service.port_hook = self.port_hook
        self._refusing = frozenset()
        self.sync()

    def port_hook(self, port: int) -> RequestHook | None:
        """The request hook of ``port`` while a comm fault acts on it (else None: the request
        path stays as fast as without faults)."""
        if self.book.comm_for(port) is None:
            return None
        hook = self._hooks.get(port)
        if hook is None:
            hook = self._hooks[port] = self._make_hook(port)
        return hook

    def _make_hook(self, port: int) -> RequestHook:
        book = self.book

        def hook(unit_id: int, function_code: int) -> HookAction | None:
            rules = book.comm_for(port)
            if rules is None:
                return None
            d = rules.decide(unit_id, function_code, book.notify_comm)
            if d is None:
                return None
            return HookAction(d.delay_s, d.drop, d.exception_code, d.close)

        return hook

    def sync(self) -> None:
        """Apply the book's current effects to the Modbus side (after every change)."""
        service = self._modbus()
        if service is None:
            return
        want = self.book.refusing_ports
        for port in want - self._refusing:
            closed = service.refuse_connections(port, self._refused_callback(port))
            log.info("fault: Modbus port %d refuses connections (%d closed)", port, closed)
        for port in self._refusing - want:
            service.refuse_connections(port, None)
            log.info("fault: Modbus port %d accepts connections again", port)
        self._refusing = want
        service.publish(self.book.present(self.fleet.snapshots(), "modbus"))

    def _refused_callback(self, port: int) -> Callable[[], None]:
        return lambda: self.book.notify_comm(None, port, "refused")

    # ------------------------------------------------------------ log / metrics
    def _on_comm(self, asset_id: str | None, port: int, kind: str) -> None:
        self.metrics.fault_comm_effects.labels(kind).inc()

    def _on_fault(self, fault: Fault) -> None:
        self.metrics.faults.labels(fault.kind.value, _event(fault)).inc()
        counts = Counter(f.kind for f in self.book.active)
        for kind in FaultKind:
            self.metrics.faults_active.labels(kind.value).set(counts.get(kind, 0))
        target = self._target(fault)
        if fault.state is FaultState.ACTIVE:
            until = "until deleted" if fault.ends_at is None else f"until {fault.ends_at:%H:%M:%S}"
            log.info(
                "fault %s started: %s on %s%s %s",
                fault.id,
                fault.kind.value,
                target,
                f" {fault.params}" if fault.params else "",
                until,
            )
        elif fault.state is FaultState.ENDED:
            log.info(
                "fault %s ended: %s on %s (%s)", fault.id, fault.kind.value, target,
                fault.end_reason,
            )  # fmt: skip
        else:
            log.debug("fault %s scheduled: %s on %s", fault.id, fault.kind.value, target)
        self.sync()

    def _target(self, fault: Fault) -> str:
        if fault.port is not None:
            return f"Modbus port {fault.port}"
        aid = fault.asset_id or ""
        if self.fleet.has_asset(aid):
            spec = self.fleet.spec(aid)
            return f"{spec.name} (port {spec.modbus.port} unit {spec.modbus.unit_id})"
        return aid


def _event(fault: Fault) -> str:
    return {
        FaultState.SCHEDULED: "scheduled",
        FaultState.ACTIVE: "started",
        FaultState.ENDED: "ended",
    }[fault.state]
