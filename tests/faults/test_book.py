"""The pure fault room: FaultBook scheduling in simulated time, the interface the scenario
runner codes against, comm decisions and their seed (DESIGN §11). No I/O."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bess_sim.config import parse_assets
from bess_sim.faults import (
    Fault,
    FaultBook,
    FaultError,
    FaultKind,
    FaultNotFoundError,
    FaultRequest,
    FaultState,
)
from bess_sim.sim import Fleet

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "11111111-1111-4111-8111-111111111111"
A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "aaaaaaaa-0000-4000-8000-000000000002"


def book(seed: int = 1) -> FaultBook:
    data = {
        "sites": [{"id": SITE, "name": "S"}],
        "assets": [
            {"id": A, "site_id": SITE, "name": "A", "capacity_mwhr": 10, "max_mw": 5,
             "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9,
             "modbus": {"port": 5020, "unit_id": 1}},
            {"id": B, "site_id": SITE, "name": "B", "capacity_mwhr": 10, "max_mw": 5,
             "min_mw": -5, "ramp_rate_mw_per_min": 60, "efficiency": 0.9,
             "modbus": {"port": 5020, "unit_id": 2}},
        ],
    }  # fmt: skip
    return FaultBook(Fleet(parse_assets(data, "assets.yaml"), T0), seed=seed)


def test_importing_faults_loads_no_io_libraries() -> None:
    code = (
        "import sys, bess_sim.faults;"
        "bad = [m for m in ('pymodbus', 'fastapi', 'asyncpg', 'asyncio', 'uvicorn', 'starlette')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_schedule_start_and_end_in_simulated_time() -> None:
    b = book()
    seen: list[tuple[str, FaultState]] = []
    b.add_listener(lambda f: seen.append((f.kind.value, f.state)))
    f = b.add(FaultRequest(kind=FaultKind.STUCK, asset_id=A, start_in_s=10, duration_s=5))
    assert isinstance(f, Fault) and f.state is FaultState.SCHEDULED
    fleet = b.fleet
    fleet.advance(9.0)
    assert not b.advance()
    fleet.advance(1.0)
    assert b.advance() and b.get(f.id).state is FaultState.ACTIVE  # type: ignore[union-attr]
    fleet.advance(7.0)  # past the end inside one tick: ends at its scheduled time
    b.advance()
    ended = b.get(f.id)
    assert ended is not None and ended.state is FaultState.ENDED
    assert ended.started_at == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert ended.ended_at == datetime(2026, 1, 1, 0, 0, 15, tzinfo=UTC)
    assert ended.end_reason == "elapsed"
    assert seen == [("stuck", FaultState.SCHEDULED), ("stuck", FaultState.ACTIVE),
                    ("stuck", FaultState.ENDED)]  # fmt: skip


def test_interface_for_the_scenario_runner() -> None:
    b = book()
    req = FaultRequest.model_validate(
        {"kind": "modbus_drop", "asset_id": A, "params": {"probability": 0.5}}
    )
    f = b.add(req)
    assert f.params == {"probability": 0.5} and f.state is FaultState.ACTIVE
    assert [x.id for x in b.list(asset_id=A, state="active")] == [f.id]
    assert b.list(asset_id=B) == []
    assert b.end(f.id).state is FaultState.ENDED
    with pytest.raises(FaultNotFoundError):
        b.end("nope")
    with pytest.raises(FaultError) as exc:
        b.add(FaultRequest(kind=FaultKind.TRIP, asset_id="aaaaaaaa-0000-4000-8000-0000000000ff"))
    assert exc.value.field == "asset_id"
    with pytest.raises(FaultError) as exc:
        b.add(FaultRequest(kind=FaultKind.MODBUS_OFFLINE, port=5999))
    assert exc.value.field == "port"
    with pytest.raises(ValidationError, match="delay_ms"):
        FaultRequest.model_validate({"kind": "modbus_latency", "asset_id": A, "params": {}})


def test_comm_decisions_per_unit_and_combined() -> None:
    b = book()
    outcomes: list[tuple[str | None, int, str]] = []
    notify = lambda a, p, k: outcomes.append((a, p, k))  # noqa: E731
    b.add(FaultRequest(kind=FaultKind.MODBUS_LATENCY, port=5020, params={"delay_ms": 100}))
    b.add(FaultRequest(kind=FaultKind.MODBUS_EXCEPTION, asset_id=B,
                       params={"code": 4, "function_codes": [3]}))  # fmt: skip
    rules = b.comm_for(5020)
    assert rules is not None and b.comm_for(5021) is None
    d1 = rules.decide(1, 3, notify)
    d2 = rules.decide(2, 3, notify)
    d3 = rules.decide(2, 4, notify)
    assert d1 is not None and (d1.delay_s, d1.exception_code) == (0.1, None)
    assert d2 is not None and (d2.delay_s, d2.exception_code) == (0.1, 4)
    assert d3 is not None and d3.exception_code is None
    assert outcomes == [(A, 5020, "late"), (B, 5020, "late"), (B, 5020, "exception"),
                        (B, 5020, "late")]  # fmt: skip


def drops(seed: int) -> list[bool]:
    b = book(seed)
    b.add(FaultRequest(kind=FaultKind.MODBUS_DROP, asset_id=A, params={"probability": 0.5}))
    rules = b.comm_for(5020)
    assert rules is not None
    out = []
    for _ in range(200):
        d = rules.decide(1, 4, lambda *_: None)
        out.append(d is not None and d.drop)
    return out


def test_same_seed_same_drops() -> None:
    assert drops(7) == drops(7)
    assert drops(7) != drops(8)
    assert 60 < sum(drops(7)) < 140


def test_derates_multiply_and_end_restores_the_rated_limits() -> None:
    b = book()
    f1 = b.add(FaultRequest(kind=FaultKind.DERATE, asset_id=A, params={"discharge_pct": 50}))
    b.add(FaultRequest(kind=FaultKind.DERATE, asset_id=A, params={"discharge_pct": 50}))
    assert b.fleet.snapshot(A).available_discharge_mw == 1.25
    b.end(f1.id)
    assert b.fleet.snapshot(A).available_discharge_mw == 2.5
    for f in b.list(state="active"):
        b.end(f.id)
    assert b.fleet.snapshot(A).available_discharge_mw == 5.0
