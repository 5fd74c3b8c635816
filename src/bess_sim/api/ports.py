"""What the HTTP layer needs from the simulator: a small interface, so ``api`` does not import
``runtime`` (imports point inward) and tests can hand in any object that fits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from ..clock import ManualClock, RealTimeClock
from ..faults import Fault, FaultBook, FaultRequest
from ..metrics import Metrics
from ..settings import Settings
from ..sim import DispatchRecord, DispatchRequest, Fleet, HistoryQuery, Snapshot
from ..sim.model import TelemetrySink

if TYPE_CHECKING:
    from ..registry import Registry
    from ..scenario.host import ScenarioHost


#: Commands on one asset besides dispatch (POST /assets/{id}/trip, /reset).
AssetCommand = Literal["trip", "reset"]


class AssetUnavailableError(Exception):
    """The asset exists but nothing can act on it now (scale-out: its agent is offline,
    DESIGN §15): answered 503 with the reason."""


class Supervisor(Protocol):
    settings: Settings
    fleet: Fleet
    metrics: Metrics
    clock: RealTimeClock | ManualClock
    registry: Registry
    faults: FaultBook
    scenarios: ScenarioHost

    @property
    def db_status(self) -> Literal["ok", "down", "disabled"]: ...

    @property
    def failure(self) -> str | None: ...

    async def step(self, seconds: float) -> int: ...

    async def dispatch(self, req: DispatchRequest) -> DispatchRecord: ...

    async def asset_command(self, asset_id: str, command: AssetCommand) -> Snapshot: ...

    async def add_fault(self, request: FaultRequest, *, fault_id: str | None = None) -> Fault: ...

    async def end_fault(self, fault_id: str) -> Fault: ...

    async def set_grid(self, frequency_hz: float | None, ambient_c: float | None) -> None: ...

    async def history(self, query: HistoryQuery) -> list[Snapshot]: ...

    def add_sink(self, sink: TelemetrySink) -> None: ...

    def remove_sink(self, sink: TelemetrySink) -> None: ...
