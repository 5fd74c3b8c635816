"""Fleet-wide grid conditions (DESIGN §10): frequency for droop response, ambient for the
thermal models."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from .auth import require_token
from .errors import R401, R422
from .ports import AssetUnavailableError, Supervisor
from .schemas import ErrorOut, r9, r9n
from .schemas_model import GridIn, GridOut


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter()
    auth = [Depends(require_token(sup.settings.api_token))]

    def current() -> GridOut:
        grid = sup.fleet.grid
        return GridOut(frequency_hz=r9(grid.frequency_hz), ambient_c=r9n(grid.ambient_c))

    @router.get(
        "/grid", response_model=GridOut, summary="Grid frequency and ambient", tags=["grid"]
    )
    async def get_grid() -> GridOut:
        return current()

    @router.post(
        "/grid",
        response_model=GridOut,
        summary="Set grid frequency and/or ambient",
        tags=["grid"],
        description="Sets the fleet-wide grid frequency (every asset with `frequency_response` "
        "reacts through its droop) and/or the ambient temperature of every asset with a "
        "`thermal` model; an omitted field stays as it is. Takes effect from the next tick; "
        "answers the values now in effect.",
        dependencies=auth,
        responses={
            **R401,
            **R422,
            503: {"model": ErrorOut, "description": "Scale-out: an agent is offline."},
        },
    )
    async def post_grid(body: GridIn) -> GridOut:
        try:
            await sup.set_grid(body.frequency_hz, body.ambient_c)
        except AssetUnavailableError as exc:
            # Scale-out headend: an agent is offline, so the fleet cannot change as one.
            raise HTTPException(503, str(exc)) from None
        return current()

    return router
