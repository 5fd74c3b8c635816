"""Error responses: shared OpenAPI descriptions and the exception handlers.

Rule (DESIGN §6): any input gets a 4xx with a JSON ``detail``, never a 500 — the catch-all
handler is a last resort that logs the traceback and answers a JSON 500 without internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import MUTATING_METHODS, token_ok, unauthorized
from .schemas import ErrorOut, ValidationOut

log = logging.getLogger("bess_sim.api")

R404_ASSET: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No asset with this id."},
}
R422: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationOut, "description": "Malformed id, query parameter or body."},
}
R401: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "BESS_API_TOKEN is set and the request lacks `Authorization: Bearer "
        "<token>`.",
    },
}


def validation_error(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 in the same shape as FastAPI's own request-validation errors."""
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


def _loc(value: Any) -> list[str | int]:
    out: list[str | int] = []
    for part in value if isinstance(value, (list, tuple)) else [value]:
        out.append(part if isinstance(part, int) and not isinstance(part, bool) else str(part))
    return out


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Only loc/msg/type: the raw ``input`` may hold NaN, bytes or huge values that are not
    JSON-serialisable (Starlette's encoder refuses NaN and would turn the 422 into a 500)."""
    out: list[dict[str, Any]] = []
    for err in errors if isinstance(errors, (list, tuple)) else []:
        if not isinstance(err, dict):
            continue
        msg = str(err.get("msg", "invalid value"))
        out.append({"loc": _loc(err.get("loc", ())), "msg": msg, "type": str(err.get("type", ""))})
    return out or [{"loc": [], "msg": "invalid request", "type": "value_error"}]


def install_handlers(app: FastAPI, api_token: str | None) -> None:
    def auth_failure(request: Request) -> JSONResponse | None:
        if request.method in MUTATING_METHODS and not token_ok(
            api_token, request.headers.get("authorization")
        ):
            err = unauthorized()
            return JSONResponse({"detail": err.detail}, status_code=401, headers=err.headers)
        return None

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        denied = auth_failure(request)
        if denied is not None:
            return denied
        return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI answers 400 for a body it cannot even decode (bad UTF-8 bytes); to a
            # client that is one more malformed body: 422 like every other (DESIGN §6).
            denied = auth_failure(request)
            if denied is not None:
                return denied
            detail = [{"loc": ["body"], "msg": str(exc.detail), "type": "body_invalid"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged by the simulator)"}, 500)
