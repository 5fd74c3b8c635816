"""``create_app(supervisor)``: the FastAPI application of one simulator.

Routers are built by factories that close over the supervisor (no module-level state: two
simulators in one process each get their own app). The dashboard is static HTML/JS/CSS served
from ``static/`` — nothing is fetched from the internet (labs are air-gapped).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from . import (
    routes_assets,
    routes_dispatch,
    routes_faults,
    routes_grid,
    routes_registry,
    routes_scenarios,
    routes_sim,
)
from .errors import install_handlers
from .gate import TickGateMiddleware
from .guard import HttpGuard
from .ports import Supervisor
from .ws import TelemetryHub

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Swagger UI 5 bundle shipped by the fastapi-offline package: FastAPI's own /docs
#: loads them from a CDN, which an air-gapped lab cannot reach.
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

_DESCRIPTION = """\
Supervisor API of a simulated battery (BESS) fleet. Every battery is also a Modbus TCP slave;
REST and Modbus share one dispatch validation path.

* Sign convention: **+MW = discharge (export), -MW = charge (import)**.
* Timestamps are ISO 8601 UTC (`Z`) of **simulated** time.
* Floats are rounded to 9 decimal places (float dust such as 9.999999999999998 → 10.0).
* When the simulator runs with `BESS_API_TOKEN`, POST routes need
  `Authorization: Bearer <token>`; GET routes stay open.
* Live telemetry: WebSocket `/ws/telemetry` (optionally `?asset_id=<uuid>`) pushes one message
  per tick: `{"type": "telemetry", "tick", "sim_time_s", "timestamp", "snapshots": [...]}`.
* Errors: 404 unknown asset/dispatch, 422 malformed input or rejected dispatch, 409 step on the
  real-time clock, 401 missing token. Errors carry a JSON `detail`.
* Numbers in bodies are strict JSON numbers (`true`, `"20"` are 422). Mutating requests from
  another origin (browser `Origin` / `Sec-Fetch-Site`) get 403, bodies that are not
  `application/json` 415, bodies over the size limit 413. `/health` answers 503 with
  `status: failed` once the tick loop has failed.
"""

_TAGS = [
    {"name": "fleet", "description": "Sites and assets as configured in assets.yaml."},
    {"name": "telemetry", "description": "Latest snapshot and history per asset."},
    {"name": "dispatch", "description": "Setpoints and their records (DESIGN §4)."},
    {
        "name": "fault injection",
        "description": "HIL faults (DESIGN §11): device, Modbus wire and telemetry faults "
        "scheduled in simulated time; trip and reset.",
    },
    {"name": "registration", "description": "Add, change, remove assets at run time."},
    {"name": "simulation", "description": "Simulated clock; manual stepping for tests."},
    {"name": "scenarios", "description": "Scripted HIL runs and the EMS scorecard (§12)."},
    {"name": "operations", "description": "Health and Prometheus metrics."},
]


def create_app(sup: Supervisor) -> FastAPI:
    app = FastAPI(
        title="bess-sim",
        version="0.1.0",
        summary="BESS fleet simulator: REST supervisor",
        description=_DESCRIPTION,
        openapi_tags=_TAGS,
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app, sup.settings.api_token)
    gate = getattr(sup, "tick_gate", None)
    if gate is not None:
        # Innermost: the guard refuses bad requests before they wait for a tick.
        app.add_middleware(TickGateMiddleware, gate=gate.shared)
    # Cross-site and body-size guards run before routing and body parsing (guard.py).
    app.add_middleware(HttpGuard, max_body_bytes=sup.settings.http_max_body_bytes)
    app.include_router(routes_assets.build_router(sup))
    app.include_router(routes_dispatch.build_router(sup))
    app.include_router(routes_sim.build_router(sup))
    app.include_router(routes_grid.build_router(sup))
    app.include_router(routes_registry.build_router(sup))
    app.include_router(routes_faults.build_router(sup))
    app.include_router(routes_scenarios.build_router(sup))

    hub = TelemetryHub(sup)
    app.state.telemetry_hub = hub

    @app.websocket("/ws/telemetry")
    async def ws_telemetry(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_offline_docs(app)
    return app


def _install_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI 5) with every asset served locally. No /redoc: ReDoc fetches its logo
    from redoc.ly, and one interactive page is enough."""
    assets = "/docs-assets"
    app.mount(assets, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
