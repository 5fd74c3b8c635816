"""Scenarios in a live simulator (DESIGN §12): start one, watch it, stop it."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from ..scenario.host import ScenarioBusyError
from ..scenario.model import ScenarioError
from ..scenario.report import clean_json
from .auth import require_token
from .errors import R401, R422, validation_error
from .ports import Supervisor
from .schemas import ErrorOut

R409: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "A scenario is already running."}
}
R404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No scenario has been started."}
}

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "The scenario file (docs/scenarios.md): YAML text "
        "(`Content-Type: application/yaml`) or the same structure as JSON.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


class ScenarioStatusOut(BaseModel):
    """Progress, expectation results so far and the EMS scorecard of the current scenario."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    source: str
    state: str = Field(description="running | passed | failed | stopped | error")
    error: str | None
    sim_time_s: float = Field(description="Simulated seconds since the scenario started.")
    end_s: float
    steps_done: int
    steps: int
    last_step: str
    expectations: list[dict[str, Any]]
    passed: int
    failed: int
    scorecard: dict[str, Any]


def build_router(sup: Supervisor) -> APIRouter:
    router = APIRouter()
    auth = [Depends(require_token(sup.settings.api_token))]

    def out(status: dict[str, Any]) -> ScenarioStatusOut:
        return ScenarioStatusOut.model_validate(clean_json(status))

    @router.post(
        "/scenarios",
        status_code=201,
        response_model=ScenarioStatusOut,
        summary="Start a scenario",
        tags=["scenarios"],
        description="Validates the scenario against the fleet and starts it at the current "
        "simulated time (t = 0 now). On the manual clock it steps time itself as fast as "
        "possible; on the real-time clock it follows the clock. 422 names the step and field "
        "of a bad file; 409 while another scenario runs.",
        dependencies=auth,
        responses={**R401, **R409, **R422},
        openapi_extra=_BODY_DOC,
    )
    async def post_scenario(request: Request) -> ScenarioStatusOut:
        raw = await request.body()
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise validation_error(("body",), "the body is not UTF-8 text") from None
        body: str | dict[str, Any]
        if media.endswith("json"):
            try:
                decoded = json.loads(text)
            except ValueError as exc:
                raise validation_error(("body",), f"not valid JSON: {exc}") from None
            if not isinstance(decoded, dict):
                raise validation_error(("body",), "a scenario must be a JSON object")
            body = decoded
        else:
            body = text
        try:
            run = sup.scenarios.start(body, "POST /scenarios")
        except ScenarioBusyError as exc:
            raise HTTPException(409, str(exc)) from None
        except ScenarioError as exc:
            raise validation_error(("body",), str(exc)) from None
        return out(run.status())

    @router.get(
        "/scenarios/current",
        response_model=ScenarioStatusOut,
        summary="Progress, results so far and scorecard",
        tags=["scenarios"],
        description="The running scenario, or the last one to run (404 if none has).",
        responses={**R404},
    )
    async def get_current() -> ScenarioStatusOut:
        run = sup.scenarios.current
        if run is None:
            raise HTTPException(404, "no scenario has been started")
        return out(run.status())

    @router.post(
        "/scenarios/current/stop",
        response_model=ScenarioStatusOut,
        summary="Stop the running scenario",
        tags=["scenarios"],
        description="Ends the running scenario (state `stopped`); answers its status once "
        "it has stopped. A finished scenario is answered as it is. 404 if none has run.",
        dependencies=auth,
        responses={**R401, **R404},
    )
    async def stop_current() -> ScenarioStatusOut:
        run = sup.scenarios.stop()
        if run is None:
            raise HTTPException(404, "no scenario has been started")
        await sup.scenarios.wait()
        return out(run.status())

    return router
