"""Health, Prometheus metrics, the simulation clock and manual stepping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from .auth import require_token
from .errors import R401, R422, validation_error
from .ports import AssetUnavailableError, Supervisor
from .schemas import ClockOut, ErrorOut, HealthOut, StepIn, StepOut, r9

log = logging.getLogger("bess_sim.api")

#: Prometheus text exposition format 0.0.4 — what every Prometheus server scrapes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Most ticks one step may run (as ``runtime.MAX_STEP_TICKS``; the api must not import the
#: runtime). A day of 0.1 s ticks is 864,000.
MAX_STEP_TICKS = 1_000_000


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter()
    auth = [Depends(require_token(sup.settings.api_token))]

    @router.get(
        "/health",
        response_model=HealthOut,
        summary="Liveness and database state",
        tags=["operations"],
        description="200 while the simulator runs. `db` is `disabled` without "
        "DATABASE_URL, `down` while the database is unreachable (telemetry is buffered and "
        "`status` reads `degraded`), else `ok`. 503 with `status` `failed` and an `error` "
        "once the tick loop has failed (simulated time no longer advances; the cause is "
        "logged): restart the simulator.",
        response_model_exclude_none=True,
        responses={503: {"model": HealthOut, "description": "The tick loop has failed."}},
    )
    async def health() -> HealthOut | JSONResponse:
        db = sup.db_status
        fleet = sup.fleet
        failure = sup.failure
        out = HealthOut(
            status="failed" if failure is not None else "degraded" if db == "down" else "ok",
            tick=fleet.tick_count,
            sim_time_s=r9(fleet.sim_time_s),
            now=fleet.now,
            db=db,
            error=failure,
        )
        if failure is not None:
            return JSONResponse(out.model_dump(mode="json"), status_code=503)
        return out

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        tags=["operations"],
        description="Prometheus text format 0.0.4: ticks, tick duration histogram, overruns, "
        "simulated time, dispatches by source and status, Modbus requests by function and "
        "exception code, database writer queue / written / dropped rows.",
        response_class=Response,
        responses={
            200: {
                "content": {
                    "text/plain": {
                        "schema": {"type": "string"},
                        "example": "# HELP bess_ticks_total Simulation ticks run\n"
                        "# TYPE bess_ticks_total counter\nbess_ticks_total 300.0\n",
                    }
                },
                "description": "Prometheus exposition text.",
            }
        },
    )
    async def metrics() -> Response:
        return Response(sup.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @router.get(
        "/sim/clock",
        response_model=ClockOut,
        summary="Simulation clock",
        tags=["simulation"],
    )
    async def clock() -> ClockOut:
        c = sup.clock
        fleet = sup.fleet
        return ClockOut(
            mode="manual" if c.kind == "manual" else "realtime",
            tick_interval_s=c.tick_interval_s,
            speed=c.speed,
            sim_time_s=r9(fleet.sim_time_s),
            now=fleet.now,
            start_time=fleet.start_time,
            tick=fleet.tick_count,
            overruns=c.overruns,
        )

    @router.post(
        "/sim/step",
        response_model=StepOut,
        summary="Advance the manual clock",
        tags=["simulation"],
        description="Only with `--clock manual`. Advances simulated time by `seconds` in ticks "
        "of `tick_interval_s` (the last one shorter) and answers once they are done; telemetry, "
        "Modbus registers, dispatch expiry and watchdogs all follow. Concurrent steps run one "
        "after the other.",
        dependencies=auth,
        responses={
            **R401,
            409: {"model": ErrorOut, "description": "The clock is real-time."},
            **R422,
            503: {"model": ErrorOut, "description": "The tick loop has failed (see /health)."},
        },
    )
    async def step(body: StepIn, request: Request) -> StepOut | JSONResponse:
        clock = sup.clock
        if clock.kind != "manual":
            raise HTTPException(409, "the clock is real-time; start with --clock manual to step")
        ticks_needed = math.ceil(body.seconds / clock.tick_interval_s - 1e-9)
        if ticks_needed > MAX_STEP_TICKS:
            raise validation_error(
                ("body", "seconds"),
                f"{body.seconds:g} s is {ticks_needed} ticks of {clock.tick_interval_s:g} s; "
                f"at most {MAX_STEP_TICKS} per step",
            )
        if sup.failure is not None:
            raise HTTPException(503, sup.failure)
        stepping = asyncio.ensure_future(sup.step(body.seconds))
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({stepping, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not stepping.done():
                # The client has gone (or this request was cancelled): nobody will read the
                # answer, so stop at the next yield point instead of computing up to a year of
                # ticks for no one. Ticks already run stay run (time does not go back).
                stepping.cancel()
                with contextlib.suppress(BaseException):
                    await stepping
                log.info(
                    "sim/step of %gs abandoned by its client; stopped at tick %d",
                    body.seconds,
                    sup.fleet.tick_count,
                )
        if stepping.cancelled():
            # Nobody reads this (nginx's 499 "client closed request"); it only ends the route.
            return JSONResponse({"detail": "client closed request"}, status_code=499)
        try:
            ticks = stepping.result()
        except AssetUnavailableError as exc:
            # Scale-out headend: an agent is offline, so the fleet cannot step as one.
            raise HTTPException(503, str(exc)) from None
        except Exception:
            if sup.failure is None:
                raise
            raise HTTPException(503, sup.failure) from None
        fleet = sup.fleet
        return StepOut(
            ticks=ticks, tick=fleet.tick_count, sim_time_s=r9(fleet.sim_time_s), now=fleet.now
        )

    return router


async def _client_gone(request: Request) -> None:
    """Return once the client has disconnected. The body has been read, so the server's
    ``receive`` now only answers ``http.disconnect`` (ASGI spec, HTTP connection scope)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
