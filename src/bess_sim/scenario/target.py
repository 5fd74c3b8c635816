"""What the scenario runner needs from a simulator, and the adapter over ``Runtime``.

Fault steps go through :class:`FaultPort` (``add_fault`` / ``end_fault``), the seam to the
§11 fault layer; their bodies are validated with the fault layer's own request model before a
run starts (exit 2 / 422 naming the step and field).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from ..clock import ManualClock, RealTimeClock
from ..faults import Fault, FaultBook, FaultRequest
from ..sim import DispatchRecord, DispatchRequest, Fleet, Snapshot
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
    async def add_fault(self, spec: Mapping[str, Any]) -> str:
        """Start a fault; ``spec`` is the §11 ``POST /faults`` body. Returns the fault id."""
        ...

    async def end_fault(self, fault_id: str) -> None: ...


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
    def sim_time_s(self) -> float:
        """Simulated seconds of the tick the runner sampled last (or of the fleet between
        runs): the runner's clock."""
        ...

    @property
    def tick_dt_s(self) -> float:
        """Simulated seconds of the next tick."""
        ...

    @property
    def ramp_step_s(self) -> float:
        """Longest manual step while a frequency ramp runs: infinite when the runner's sink
        sets the next tick's frequency itself (one process), one tick when the fleet ticks
        elsewhere and each value has to be sent between ticks (scale-out headend)."""
        ...

    async def step(self, seconds: float) -> int: ...

    # Commands of scenario steps: through the simulator's own command methods, so a
    # scale-out headend forwards them to the agents (DESIGN §15).
    async def dispatch(self, req: DispatchRequest) -> DispatchRecord: ...

    async def asset_command(self, asset_id: str, command: Literal["trip", "reset"]) -> None: ...

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None: ...

    def ramp_frequency(self, frequency_hz: float) -> None:
        """The frequency the next tick runs with (a ramp's value, set from the sink)."""
        ...

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

    async def dispatch(self, req: DispatchRequest) -> DispatchRecord: ...

    async def asset_command(self, asset_id: str, command: Literal["trip", "reset"]) -> Snapshot: ...

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None: ...

    async def add_fault(self, request: FaultRequest, *, fault_id: str | None = None) -> Fault: ...

    async def end_fault(self, fault_id: str) -> Fault: ...

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
    def sim_time_s(self) -> float:
        return self.fleet.sim_time_s

    @property
    def tick_dt_s(self) -> float:
        clock = self._rt.clock
        return clock.dt_s if isinstance(clock, RealTimeClock) else clock.tick_interval_s

    @property
    def ramp_step_s(self) -> float:
        return math.inf

    async def step(self, seconds: float) -> int:
        return await self._rt.step(seconds)

    async def dispatch(self, req: DispatchRequest) -> DispatchRecord:
        return await self._rt.dispatch(req)

    async def asset_command(self, asset_id: str, command: Literal["trip", "reset"]) -> None:
        await self._rt.asset_command(asset_id, command)

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None:
        await self._rt.set_grid(frequency_hz, ambient_c)

    def ramp_frequency(self, frequency_hz: float) -> None:
        # Called by the runner's sink after a tick, before the next: the fleet is here.
        self.fleet.set_grid(frequency_hz=frequency_hz)

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
    async def add_fault(self, spec: Mapping[str, Any]) -> str:
        fault = await self._rt.add_fault(FaultRequest.model_validate(dict(spec)))
        return str(fault.id)

    async def end_fault(self, fault_id: str) -> None:
        await self._rt.end_fault(fault_id)
