"""Dispatch: submit a setpoint, list and read dispatch records (DESIGN §4)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from ..sim import DispatchRequest, DispatchSource, DispatchStatus, UnknownAssetError
from .auth import require_token
from .errors import R401, R422
from .ports import AssetUnavailableError, Supervisor
from .schemas import (
    DispatchIn,
    DispatchOut,
    DispatchRejectedOut,
    DispatchStatusLabel,
    ErrorOut,
    ValidationOut,
)

_DISPATCH_DESCRIPTION = """\
Validates the request exactly as a Modbus setpoint write is validated, records it, and (when
accepted) makes it the asset's setpoint at once, superseding the one in effect.

Rejected when: `mw` is not finite or outside `[min_mw, max_mw]`; `mode` disagrees with the sign
of `mw` (+MW = discharge, -MW = charge); `duration_s` is given and the energy it needs is not
available (discharge needs `mw * duration_s / 3600 / efficiency` MWh above soc_min, charge
needs `|mw| * duration_s / 3600 * efficiency` MWh below soc_max); or the asset is tripped.
A rejected dispatch is recorded too (status `rejected`) and answered with 422
`{"detail": <reason>, "dispatch": <record>}`. A body that is not a well-formed dispatch
(missing field, bad UUID, wrong type) gets a plain 422 and is not recorded.
"""


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter(tags=["dispatch"])
    auth = [Depends(require_token(sup.settings.api_token))]

    @router.post(
        "/dispatch",
        status_code=201,
        response_model=DispatchOut,
        summary="Dispatch an asset",
        description=_DISPATCH_DESCRIPTION,
        dependencies=auth,
        responses={
            **R401,
            404: {"model": ErrorOut, "description": "No asset with this id (nothing recorded)."},
            503: {
                "model": ErrorOut,
                "description": "Scale-out headend only: the asset's agent is offline.",
            },
            422: {
                "model": DispatchRejectedOut | ValidationOut,
                "description": "Rejected dispatch (`detail` = reason, `dispatch` = the "
                "recorded record), or a malformed body (`detail` = list of problems).",
            },
        },
    )
    async def dispatch(body: DispatchIn, request: Request) -> DispatchOut | JSONResponse:
        peer = request.client
        req = DispatchRequest(
            asset_id=str(body.asset_id),
            mw=body.mw,
            duration_s=body.duration_s,
            mode=body.mode,
            mvar=body.mvar,
            source=DispatchSource.REST,
            client=f"{peer.host}:{peer.port}" if peer is not None else None,
        )
        try:
            rec = await sup.dispatch(req)
        except UnknownAssetError:
            raise HTTPException(404, f"unknown asset {body.asset_id}") from None
        except AssetUnavailableError as exc:
            raise HTTPException(503, str(exc)) from None
        out = DispatchOut.of(rec)
        if rec.status is DispatchStatus.REJECTED:
            rejected = DispatchRejectedOut(detail=rec.reason or "rejected", dispatch=out)
            return JSONResponse(rejected.model_dump(mode="json"), status_code=422)
        return out

    @router.get(
        "/dispatches",
        response_model=list[DispatchOut],
        summary="List dispatch records",
        description="Newest first. Filters combine (AND).",
        responses={
            404: {"model": ErrorOut, "description": "asset_id names no asset."},
            **R422,
        },
    )
    async def list_dispatches(
        asset_id: Annotated[UUID | None, Query(description="Only this asset.")] = None,
        status: Annotated[
            DispatchStatusLabel | None, Query(description="Only records in this status.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[DispatchOut]:
        aid: str | None = None
        if asset_id is not None:
            aid = str(asset_id)
            if not sup.fleet.has_asset(aid):
                raise HTTPException(404, f"unknown asset {asset_id}")
        recs = sup.fleet.dispatches(
            asset_id=aid,
            status=DispatchStatus(status) if status is not None else None,
            limit=limit,
        )
        return [DispatchOut.of(r) for r in recs]

    @router.get(
        "/dispatches/{dispatch_id}",
        response_model=DispatchOut,
        summary="Get one dispatch record",
        responses={
            404: {"model": ErrorOut, "description": "No dispatch with this id."},
            **R422,
        },
    )
    async def get_dispatch(
        dispatch_id: Annotated[UUID, Path(description="Dispatch record UUID.")],
    ) -> DispatchOut:
        rec = sup.fleet.dispatch_record(str(dispatch_id))
        if rec is None:
            raise HTTPException(404, f"unknown dispatch {dispatch_id}")
        return DispatchOut.of(rec)

    return router
