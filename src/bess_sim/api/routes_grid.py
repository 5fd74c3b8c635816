"""Fleet-wide grid conditions (DESIGN §10): frequency for droop response, ambient for the
thermal models."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from .auth import require_token
from .errors import R401, R422
from .ports import Supervisor
from .schemas import r9, r9n
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
        responses={**R401, **R422},
    )
    async def post_grid(body: GridIn) -> GridOut:
        sup.fleet.set_grid(frequency_hz=body.frequency_hz, ambient_c=body.ambient_c)
        return current()

    return router
