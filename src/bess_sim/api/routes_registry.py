"""Run-time registration routes (DESIGN §14): POST /sites, POST /assets, PUT/DELETE
/assets/{id}, DELETE /sites/{id}, GET /fleet.yaml. Thin: ``Registry`` decides everything."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from ..registry import RegistrationError
from .auth import require_token
from .errors import R401, R404_ASSET, R422, validation_error
from .ports import Supervisor
from .schemas import ErrorOut
from .schemas_registry import (
    AssetIn,
    RegisteredAssetOut,
    RegisteredSiteOut,
    SiteIn,
    site_yaml_mapping,
)

AssetId = Annotated[UUID, Path(description="Asset UUID.")]
SiteId = Annotated[UUID, Path(description="Site UUID.")]

R409: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "Clash: the id or the Modbus (port, unit_id) is taken, the port cannot "
        "be bound, the site still has assets, or the item is managed by assets.yaml.",
    },
}
R503: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "The database is down: nothing was changed."},
}
R404_SITE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No site with this id."},
}


def _http(exc: RegistrationError) -> Exception:
    if exc.status == 422:
        loc: tuple[str | int, ...] = (
            ("body", *(exc.field or "").split(".")) if exc.field else ("body",)
        )
        return validation_error(loc, exc.detail)
    return HTTPException(exc.status, exc.detail)


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter(tags=["registration"])
    auth = [Depends(require_token(sup.settings.api_token))]
    reg = sup.registry

    @router.post(
        "/sites",
        status_code=201,
        response_model=RegisteredSiteOut,
        summary="Register a site",
        description="Adds a site at run time (same rules as a `sites:` entry of assets.yaml).",
        responses={**R401, **R409, **R422, **R503},
        dependencies=auth,
    )
    async def add_site(body: SiteIn) -> RegisteredSiteOut:
        try:
            site = await reg.add_site(site_yaml_mapping(body))
        except RegistrationError as exc:
            raise _http(exc) from None
        return RegisteredSiteOut.with_origin(site, "api")

    @router.delete(
        "/sites/{site_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a registered site",
        description="Only a site registered over the API, and only once it has no assets "
        "(409 otherwise).",
        responses={**R401, **R404_SITE, **R409, **R422, **R503},
        dependencies=auth,
    )
    async def delete_site(site_id: SiteId) -> Response:
        try:
            await reg.remove_site(str(site_id))
        except RegistrationError as exc:
            raise _http(exc) from None
        return Response(status_code=204)

    @router.post(
        "/assets",
        status_code=201,
        response_model=RegisteredAssetOut,
        summary="Register an asset",
        description="Adds a battery at run time: body = the fields of an `assets:` entry of "
        "assets.yaml, validated by the same rules (422 naming the field). It ticks from the "
        "next tick and answers Modbus at once (its port is bound if new). 409 when the id or "
        "`(port, unit_id)` is taken or the port cannot be bound.",
        responses={**R401, **R409, **R422, **R503},
        dependencies=auth,
    )
    async def add_asset(body: AssetIn) -> RegisteredAssetOut:
        try:
            spec = await reg.add_asset(body.as_yaml_mapping())
        except RegistrationError as exc:
            raise _http(exc) from None
        return RegisteredAssetOut.with_origin(spec, "api")

    @router.put(
        "/assets/{asset_id}",
        response_model=RegisteredAssetOut,
        summary="Change a registered asset",
        description="Replaces the parameters of an asset registered over the API (the whole "
        "entry, as in assets.yaml). SOC and MW carry over, clamped to the new limits; a "
        "dispatch in effect outside the new [min_mw, max_mw] ends `interrupted`. Assets of "
        "assets.yaml: 409.",
        responses={**R401, **R404_ASSET, **R409, **R422, **R503},
        dependencies=auth,
    )
    async def replace_asset(asset_id: AssetId, body: AssetIn) -> RegisteredAssetOut:
        try:
            spec = await reg.replace_asset(str(asset_id), body.as_yaml_mapping())
        except RegistrationError as exc:
            raise _http(exc) from None
        return RegisteredAssetOut.with_origin(spec, "api")

    @router.delete(
        "/assets/{asset_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a registered asset",
        description="Its dispatch in effect ends `interrupted`, its Modbus unit answers 0x0B "
        "(a port left without units is closed); its history stays readable until restart. "
        "Assets of assets.yaml: 409.",
        responses={**R401, **R404_ASSET, **R409, **R422, **R503},
        dependencies=auth,
    )
    async def delete_asset(asset_id: AssetId) -> Response:
        try:
            await reg.remove_asset(str(asset_id))
        except RegistrationError as exc:
            raise _http(exc) from None
        return Response(status_code=204)

    @router.get(
        "/fleet.yaml",
        summary="Export the fleet as assets.yaml",
        description="The whole current fleet (file and registered assets) as an assets.yaml "
        "that `bess-sim check-config` accepts and that reproduces the same fleet.",
        response_class=Response,
        responses={
            200: {
                "content": {
                    "application/yaml": {
                        # The YAML document's structure (what a YAML-aware client parses).
                        "schema": {
                            "type": "object",
                            "required": ["sites", "assets"],
                            "properties": {
                                "sites": {"type": "array", "items": {"type": "object"}},
                                "assets": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    }
                }
            }
        },
    )
    async def fleet_yaml() -> Response:
        return Response(reg.export_yaml(), media_type="application/yaml")

    return router
