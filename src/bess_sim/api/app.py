"""``create_app(supervisor)``: the FastAPI application of one simulator."""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..sim import DispatchRequest, DispatchSource, Snapshot, UnknownAssetError
from .ports import Supervisor


class DispatchIn(BaseModel):
    asset_id: UUID
    mw: float
    duration_s: float | None = Field(None, gt=0)
    mode: str | None = None


class StepIn(BaseModel):
    seconds: float = Field(gt=0, le=31_536_000)


def _snapshot_json(s: Snapshot) -> dict[str, Any]:
    return {
        "asset_id": s.asset_id,
        "site_id": s.site_id,
        "timestamp": s.timestamp.isoformat().replace("+00:00", "Z"),
        "soc_mwhr": s.soc_mwhr,
        "soc_pct": s.soc_pct,
        "capacity_mwhr": s.capacity_mwhr,
        "current_mw": s.current_mw,
        "setpoint_mw": s.setpoint_mw,
        "max_mw": s.max_mw,
        "min_mw": s.min_mw,
        "status": s.status.label,
        "alarms": list(s.alarm_names),
    }


def create_app(sup: Supervisor) -> FastAPI:
    app = FastAPI(title="bess-sim", version="0.1.0")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tick": sup.fleet.tick_count, "db": sup.db_status}

    @app.get("/assets")
    async def assets() -> list[dict[str, Any]]:
        return [
            {
                "id": a.id,
                "site_id": a.site_id,
                "name": a.name,
                "location": a.location,
                "capacity_mwhr": a.capacity_mwhr,
                "max_mw": a.max_mw,
                "min_mw": a.min_mw,
                "ramp_rate_mw_per_min": a.ramp_rate_mw_per_min,
                "efficiency": a.efficiency,
                "modbus": {"port": a.modbus.port, "unit_id": a.modbus.unit_id},
            }
            for a in sup.fleet.specs
        ]

    @app.get("/telemetry/{asset_id}")
    async def telemetry(asset_id: UUID) -> dict[str, Any]:
        try:
            return _snapshot_json(sup.fleet.snapshot(str(asset_id)))
        except UnknownAssetError:
            raise HTTPException(404, f"unknown asset {asset_id}") from None

    @app.post("/dispatch", status_code=201)
    async def dispatch(body: DispatchIn) -> Any:
        req = DispatchRequest(
            str(body.asset_id), body.mw, body.duration_s, body.mode, DispatchSource.REST
        )
        try:
            rec = sup.fleet.dispatch(req)
        except UnknownAssetError:
            raise HTTPException(404, f"unknown asset {body.asset_id}") from None
        out = {
            "id": rec.id,
            "asset_id": rec.asset_id,
            "mw": rec.mw if math.isfinite(rec.mw) else None,
            "duration_s": rec.duration_s,
            "status": rec.status.value,
            "reason": rec.reason,
        }
        if rec.reason:
            return JSONResponse({"detail": rec.reason, "dispatch": out}, status_code=422)
        return out

    @app.post("/sim/step")
    async def step(body: StepIn) -> dict[str, Any]:
        if sup.clock.kind != "manual":
            raise HTTPException(409, "the clock is real-time; start with --clock manual to step")
        ticks = await sup.step(body.seconds)
        return {"ticks": ticks, "sim_time_s": sup.fleet.sim_time_s}

    return app
