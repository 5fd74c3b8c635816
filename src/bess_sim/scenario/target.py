"""What the scenario runner needs from a simulator, and the adapter over ``Runtime``.

Fault steps go through :class:`FaultPort` (``add_fault`` / ``end_fault``), the seam to the
§11 fault layer; their bodies are validated with the fault layer's own request model before a
run starts (exit 2 / 422 naming the step and field).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from pydantic import ValidationError

from ..clock import ManualClock, RealTimeClock
from ..faults import FaultBook, FaultRequest
from ..sim import Fleet
from ..sim.model import TelemetrySink
from ..tickgate import TickGate

#: ``cb(asset_id | None, port, kind)``; kind ∈ exception, dropped, late, refused, offline.
CommListener = Callable[[str | None, int, str], None]


def _check_fault(body: Mapping[str, Any]) -> None:
    """Validate a §11 ``POST /faults`` body with the fault layer's own model (one rule set),
    raising ValueError naming the field."""
    try:
        FaultRequest.model_validate(dict(body))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"{loc}: {err['msg']}" if loc else str(err["msg"])) from None


#: ``check(body)`` validates a §11 ``POST /faults`` body without a simulator, raising
#: ValueError naming the field.
FAULT_CHECKER: Callable[[Mapping[str, Any]], None] = _check_fault


class FaultPort(Protocol):
    def add_fault(self, spec: Mapping[str, Any]) -> str:
        """Start a fault; ``spec`` is the §11 ``POST /faults`` body. Returns the fault id."""
        ...

    def end_fault(self, fault_id: str) -> None: ...


class ScenarioTarget(FaultPort, Protocol):
    fleet: Fleet

    @property
    def paced(self) -> bool:
        """True on the real-time clock (the runner waits), False on the manual clock (the
        runner steps as fast as possible)."""
        ...

    @property
    def failure(self) -> str | None: ...

    @property
    def tick_dt_s(self) -> float:
        """Simulated seconds of the next tick."""
        ...

    async def step(self, seconds: float) -> int: ...

    def set_speed(self, x: float) -> None: ...

    def add_sink(self, sink: TelemetrySink) -> None: ...

    def remove_sink(self, sink: TelemetrySink) -> None: ...

    def add_comm_listener(self, cb: CommListener) -> None: ...

    def remove_comm_listener(self, cb: CommListener) -> None: ...

    def between_ticks(self) -> AbstractAsyncContextManager[None]:
        """Held while steps change the fleet: the tick may run in a worker thread."""
        ...


class _RuntimeLike(Protocol):
    fleet: Fleet
    clock: RealTimeClock | ManualClock

    @property
    def failure(self) -> str | None: ...

    async def step(self, seconds: float) -> int: ...

    def add_sink(self, sink: TelemetrySink) -> None: ...

    def remove_sink(self, sink: TelemetrySink) -> None: ...

    def comm_listeners(self) -> list[CommListener]: ...

    @property
    def faults(self) -> FaultBook: ...

    @property
    def tick_gate(self) -> TickGate: ...


class RuntimeTarget:
    """:class:`ScenarioTarget` over a running simulator."""

    def __init__(self, runtime: _RuntimeLike) -> None:
        self._rt = runtime
        self.fleet = runtime.fleet

    @property
    def paced(self) -> bool:
        return isinstance(self._rt.clock, RealTimeClock)

    @property
    def failure(self) -> str | None:
        return self._rt.failure

    @property
    def tick_dt_s(self) -> float:
        clock = self._rt.clock
        return clock.dt_s if isinstance(clock, RealTimeClock) else clock.tick_interval_s

    async def step(self, seconds: float) -> int:
        return await self._rt.step(seconds)

    def set_speed(self, x: float) -> None:
        clock = self._rt.clock
        if isinstance(clock, RealTimeClock):
            # RealTimeClock reads ``speed`` at every tick (dt_s = interval × speed).
            clock.speed = x

    def add_sink(self, sink: TelemetrySink) -> None:
        self._rt.add_sink(sink)

    def remove_sink(self, sink: TelemetrySink) -> None:
        self._rt.remove_sink(sink)

    def add_comm_listener(self, cb: CommListener) -> None:
        self._rt.comm_listeners().append(cb)

    def remove_comm_listener(self, cb: CommListener) -> None:
        listeners = self._rt.comm_listeners()
        if cb in listeners:
            listeners.remove(cb)

    def between_ticks(self) -> AbstractAsyncContextManager[None]:
        return self._rt.tick_gate.shared()

    # -------------------------------------------------------------- faults (§11 seam)
    def add_fault(self, spec: Mapping[str, Any]) -> str:
        return str(self._rt.faults.add(FaultRequest.model_validate(dict(spec))).id)

    def end_fault(self, fault_id: str) -> None:
        self._rt.faults.end(fault_id)
