"""Sites, assets, telemetry (latest and history) and fault injection."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BeforeValidator

from ..sim import AssetSpec, HistoryQuery, UnknownAssetError
from .auth import require_token
from .errors import R401, R404_ASSET, R422, validation_error
from .ports import AssetCommand, AssetUnavailableError, Supervisor
from .schemas import AssetOut, ErrorOut, SiteOut, TelemetryOut

log = logging.getLogger("bess_sim.api")

AssetId = Annotated[UUID, Path(description="Asset UUID (from GET /assets).")]

#: ``<number><unit>``; documented in OpenAPI as the parameter's pattern, so that clients (and
#: Schemathesis) know exactly which strings are valid. At most 7 digits: every value is finite.
BUCKET_PATTERN = r"^[0-9]{1,7}(\.[0-9]{1,3})?(ms|s|m|h|d)?$"
_BUCKET_RE = re.compile(r"^([0-9]{1,7}(?:\.[0-9]{1,3})?)(ms|s|m|h|d)?$")  # same language
# ISO 8601 date, optionally with a time: pydantic alone also takes a bare number as Unix
# seconds (``start=0.5``, ``end=-5``), which no client means.
_ISO_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}.*)?$")


def _iso_only(value: object) -> object:
    if isinstance(value, str) and _ISO_RE.match(value) is None:
        raise ValueError("must be an ISO 8601 timestamp such as 2026-01-01T00:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_bucket(text: str) -> float | None:
    """``"15s"``, ``"1m"``, ``"1h"``, ``"1d"``, ``"500ms"`` or plain seconds → seconds;
    a zero bucket means raw rows (None)."""
    m = _BUCKET_RE.match(text)
    if m is None:
        raise ValueError(f"bucket must look like 15s, 1m, 1h or 1d, got {text[:40]!r}")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    return seconds if seconds > 0.0 else None


def as_utc(ts: datetime | None, name: str) -> datetime | None:
    """Aware UTC datetime; a naive one is taken as UTC (documented on the route)."""
    if ts is None:
        return None
    try:
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise validation_error(("query", name), "timestamp out of range") from None


def asset_spec(sup: Supervisor, asset_id: UUID) -> AssetSpec:
    try:
        return sup.fleet.spec(str(asset_id))
    except UnknownAssetError:
        raise HTTPException(404, f"unknown asset {asset_id}") from None


def history_spec(sup: Supervisor, asset_id: UUID) -> AssetSpec:
    """Like :func:`asset_spec`, but an asset deleted during this run (DESIGN §14) is found
    too: its history stays readable until restart."""
    retired = sup.fleet.retired_spec(str(asset_id))
    return retired if retired is not None else asset_spec(sup, asset_id)


R503_AGENT: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "Scale-out headend only: the asset's agent is offline."}
}


async def _command(sup: Supervisor, asset_id: UUID, command: AssetCommand) -> TelemetryOut:
    spec = asset_spec(sup, asset_id)
    try:
        snap = await sup.asset_command(spec.id, command)
    except AssetUnavailableError as exc:
        raise HTTPException(503, str(exc)) from None
    return TelemetryOut.of(sup.faults.present_one(snap, "rest"))


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter()
    auth = [Depends(require_token(sup.settings.api_token))]

    @router.get(
        "/sites",
        response_model=list[SiteOut],
        summary="List sites",
        tags=["fleet"],
        description="The sites of assets.yaml in file order, then those registered at run "
        "time (POST /sites).",
    )
    async def list_sites() -> list[SiteOut]:
        return [SiteOut.of(s) for s in sup.fleet.sites]

    @router.get(
        "/assets",
        response_model=list[AssetOut],
        # DESIGN §10 fields appear only on assets that set them (the §6 shape is unchanged).
        response_model_exclude_none=True,
        summary="List assets",
        tags=["fleet"],
        description="Every asset with its assets.yaml parameters and its Modbus address "
        "`{port, unit_id}` (the configured port).",
    )
    async def list_assets() -> list[AssetOut]:
        return [AssetOut.of(a) for a in sup.fleet.specs]

    @router.get(
        "/assets/{asset_id}",
        response_model=AssetOut,
        response_model_exclude_none=True,
        summary="Get one asset",
        tags=["fleet"],
        responses={**R404_ASSET, **R422},
    )
    async def get_asset(asset_id: AssetId) -> AssetOut:
        return AssetOut.of(asset_spec(sup, asset_id))

    @router.post(
        "/assets/{asset_id}/trip",
        response_model=TelemetryOut,
        summary="Trip the asset (fault injection)",
        tags=["fault injection"],
        description="Hardware-in-the-loop fault injection: the asset trips as a protection "
        "relay would. Its target power becomes 0 (it ramps down), the dispatch in effect ends "
        "with status `interrupted`, the `trip` alarm is set, status reads `fault` and new "
        "dispatches are rejected until `POST /assets/{id}/reset` (or a Modbus `fault_reset` "
        "write). Returns the telemetry right after the trip.",
        responses={**R401, **R404_ASSET, **R422, **R503_AGENT},
        dependencies=auth,
    )
    async def trip(asset_id: AssetId) -> TelemetryOut:
        return await _command(sup, asset_id, "trip")

    @router.post(
        "/assets/{asset_id}/reset",
        response_model=TelemetryOut,
        summary="Reset a tripped asset",
        tags=["fault injection"],
        description="Clears the trip (and the `trip` alarm); the asset stays at setpoint 0 "
        "until dispatched again. Resetting an asset that is not tripped is a no-op.",
        responses={**R401, **R404_ASSET, **R422, **R503_AGENT},
        dependencies=auth,
    )
    async def reset(asset_id: AssetId) -> TelemetryOut:
        return await _command(sup, asset_id, "reset")

    @router.get(
        "/telemetry/{asset_id}",
        response_model=TelemetryOut,
        summary="Latest telemetry of an asset",
        tags=["telemetry"],
        description="The snapshot of the last tick (from memory). Floats are rounded to 9 "
        "decimal places; `timestamp` is simulated UTC time.",
        responses={**R404_ASSET, **R422},
    )
    async def latest(asset_id: AssetId) -> TelemetryOut:
        spec = asset_spec(sup, asset_id)
        return TelemetryOut.of(sup.faults.present_one(sup.fleet.snapshot(spec.id), "rest"))

    @router.get(
        "/telemetry/{asset_id}/history",
        response_model=list[TelemetryOut],
        summary="Telemetry history of an asset",
        tags=["telemetry"],
        description="Snapshots newest first, at most `limit`, with `start <= timestamp <= "
        "end` (ISO 8601; a timestamp without offset is taken as UTC). From the database when "
        "one is configured, else from the in-memory ring buffer (the last `history_size` "
        "ticks per asset). With `bucket` (e.g. `15s`, `1m`, `1h`, `1d`) each row is the "
        "average over one time bucket.",
        responses={
            **R404_ASSET,
            **R422,
            503: {"model": ErrorOut, "description": "The history source (database) is down."},
        },
    )
    async def history(
        asset_id: AssetId,
        limit: Annotated[int, Query(ge=1, le=10_000, description="Rows, newest first.")] = 100,
        start: Annotated[
            IsoDatetime | None, Query(description="Oldest timestamp included (ISO 8601).")
        ] = None,
        end: Annotated[
            IsoDatetime | None, Query(description="Newest timestamp included (ISO 8601).")
        ] = None,
        bucket: Annotated[
            str | None,
            Query(
                pattern=BUCKET_PATTERN,
                description="Average per time bucket: `<number><unit>`, unit ms|s|m|h|d "
                "(plain number = seconds; 0 = raw rows).",
                examples=["1m"],
            ),
        ] = None,
    ) -> list[TelemetryOut]:
        spec = history_spec(sup, asset_id)
        start_utc = as_utc(start, "start")
        end_utc = as_utc(end, "end")
        if start_utc is not None and end_utc is not None and start_utc > end_utc:
            raise validation_error(("query", "start"), "start must not be after end")
        bucket_s: float | None = None
        if bucket is not None:
            try:
                bucket_s = parse_bucket(bucket)
            except ValueError as exc:
                raise validation_error(("query", "bucket"), str(exc)) from None
        query = HistoryQuery(spec.id, limit=limit, start=start_utc, end=end_utc, bucket_s=bucket_s)
        try:
            rows = await sup.history(query)
        except Exception as exc:
            # The history source is the database when configured: while it is down the
            # simulator keeps running and this route says so, instead of a bare 500.
            log.warning("history of %s unavailable: %r", spec.id, exc, exc_info=True)
            raise HTTPException(503, f"history unavailable: {type(exc).__name__}") from None
        return [TelemetryOut.of(s) for s in rows]

    return router
