"""Fault injection: ``/faults`` (DESIGN §11, docs/faults.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ..faults import Fault, FaultError, FaultKind, FaultNotFoundError, FaultRequest, FaultState
from .auth import require_token
from .errors import R401, R422, validation_error
from .ports import AssetUnavailableError, Supervisor
from .schemas import ErrorOut

_POST_DESCRIPTION = """\
Schedules a fault in **simulated** time: it starts `start_in_s` simulated seconds from now
(0 or omitted = at once) and lasts `duration_s` (omitted = until `DELETE /faults/{id}`).
Target: `asset_id`, or for the `modbus_*` kinds `port` (every unit on that port).

| kind | params |
|---|---|
| `trip` | — (stays tripped after the fault ends, until reset) |
| `derate` | `discharge_pct`, `charge_pct` (0..100, default 100) |
| `stuck` | — |
| `soc_bias` | `offset_pct`, `drift_pct_per_h` |
| `modbus_latency` | `delay_ms`, `jitter_ms` (wall-clock ms) |
| `modbus_drop` | `probability` (0..1, default 1) |
| `modbus_exception` | `code` (1..255), `probability`, `function_codes` (optional list) |
| `modbus_offline` | — (answers 0x0B) |
| `modbus_disconnect` | — (the port's connections closed, new ones refused) |
| `frozen_telemetry` | `surfaces`: list of `modbus`, `rest` (default `["modbus"]`) |
| `value_override` | `field`, one of `value` / `offset` / `scale`, `surfaces` (default both) |

`value` may be a number or "NaN" / "Infinity" / "-Infinity".

A bad kind, target or parameter is a 422 naming the field; nothing is scheduled then.
"""


class FaultOut(BaseModel):
    """One injected fault."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    kind: FaultKind
    asset_id: UUID | None = Field(description="The asset, or null for a port-wide fault.")
    port: int | None = Field(description="The Modbus port of a port-wide fault, else null.")
    params: dict[str, Any] = Field(description="The parameters, defaults filled in.")
    state: FaultState
    created_at: datetime = Field(description="Simulated UTC time it was requested.")
    starts_at: datetime = Field(description="Scheduled start (simulated UTC).")
    ends_at: datetime | None = Field(description="Scheduled end; null = until deleted.")
    started_at: datetime | None = Field(description="When it took effect (tick boundary).")
    ended_at: datetime | None = Field(description="When it ended or was cancelled.")
    duration_s: float | None
    end_reason: str | None = Field(
        description="elapsed | deleted | asset removed (+ never started)"
    )

    @classmethod
    def of(cls, f: Fault) -> FaultOut:
        return cls(
            id=UUID(f.id),
            kind=f.kind,
            asset_id=None if f.asset_id is None else UUID(f.asset_id),
            port=f.port,
            params=f.params,
            state=f.state,
            created_at=f.created_at,
            starts_at=f.starts_at,
            ends_at=f.ends_at,
            started_at=f.started_at,
            ended_at=f.ended_at,
            duration_s=f.duration_s,
            end_reason=f.end_reason,
        )


FaultId = Annotated[UUID, Path(description="Fault UUID (from POST /faults).")]
_R404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No fault with this id."}
}


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter(tags=["fault injection"])
    auth = [Depends(require_token(sup.settings.api_token))]

    @router.post(
        "/faults",
        status_code=201,
        response_model=FaultOut,
        summary="Inject a fault",
        description=_POST_DESCRIPTION,
        dependencies=auth,
        responses={**R401, **R422},
    )
    async def add_fault(body: FaultRequest) -> FaultOut:
        try:
            fault = await sup.add_fault(body)
        except FaultError as exc:
            raise validation_error(("body", exc.field), exc.message) from None
        except AssetUnavailableError as exc:
            # Scale-out headend: the agent owning the target is offline.
            raise HTTPException(503, str(exc)) from None
        return FaultOut.of(fault)

    @router.get(
        "/faults",
        response_model=list[FaultOut],
        summary="List faults",
        description="Newest first. `asset_id` also matches port-wide faults on that asset's port.",
        responses={**R422},
    )
    async def list_faults(
        asset_id: Annotated[UUID | None, Query(description="Faults acting on this asset.")] = None,
        state: Annotated[FaultState | None, Query(description="scheduled | active | ended")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[FaultOut]:
        faults = sup.faults.list(
            asset_id=None if asset_id is None else str(asset_id), state=state, limit=limit
        )
        return [FaultOut.of(f) for f in faults]

    @router.get(
        "/faults/{fault_id}",
        response_model=FaultOut,
        summary="Get one fault",
        responses={**_R404, **R422},
    )
    async def get_fault(fault_id: FaultId) -> FaultOut:
        fault = sup.faults.get(str(fault_id))
        if fault is None:
            raise HTTPException(404, f"unknown fault {fault_id}")
        return FaultOut.of(fault)

    @router.delete(
        "/faults/{fault_id}",
        response_model=FaultOut,
        summary="End a fault now",
        description="An active fault ends now, a scheduled one is cancelled; ending an ended "
        "fault changes nothing. A `trip` stays tripped until reset, as a real trip.",
        dependencies=auth,
        responses={**R401, **_R404, **R422},
    )
    async def end_fault(fault_id: FaultId) -> FaultOut:
        try:
            fault = await sup.end_fault(str(fault_id))
        except FaultNotFoundError:
            raise HTTPException(404, f"unknown fault {fault_id}") from None
        except AssetUnavailableError as exc:
            raise HTTPException(503, str(exc)) from None
        return FaultOut.of(fault)

    return router
