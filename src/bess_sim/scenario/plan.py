"""Resolve a validated scenario file against a fleet into a frozen, executable plan.

Resolves "+N" times, checks the steps are ordered by ``at``, turns asset names into ids and
checks expectation fields. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..sim.model import ALARM_NAMES, STATUS_LABELS, AssetSpec
from .model import (
    AmbientAction,
    AssetAction,
    ClearFaultAction,
    DispatchAction,
    ExpectAction,
    FaultAction,
    FrequencyAction,
    ScenarioError,
    ScenarioFile,
    SpeedAction,
    Step,
    TimeSpec,
)

#: Snapshot fields an expectation may test (numbers; ``status`` also as its label).
SNAPSHOT_FIELDS = (
    "soc_mwhr",
    "soc_pct",
    "capacity_mwhr",
    "current_mw",
    "setpoint_mw",
    "max_mw",
    "min_mw",
    "status",
    "heartbeat",
    "current_mvar",
    "setpoint_mvar",
    "available_discharge_mw",
    "available_charge_mw",
    "temperature_c",
    "frequency_hz",
)
#: ``alarm.<name>``: 1 while the alarm is raised, else 0.
ALARM_FIELDS = tuple(f"alarm.{n}" for n in ALARM_NAMES.values())
#: ``scorecard.<figure>``: the EMS scorecard so far, of the asset (or the fleet for "*").
SCORECARD_FIELDS = (
    "scorecard.ems_commands",
    "scorecard.rejected_commands",
    "scorecard.setpoints_beyond_available",
    "scorecard.watchdog_reverts",
    "scorecard.seconds_at_soc_min",
    "scorecard.seconds_at_soc_max",
    "scorecard.energy_charged_mwh",
    "scorecard.energy_discharged_mwh",
    "scorecard.equivalent_full_cycles",
    "scorecard.modbus_exceptions",
)
EXPECT_FIELDS = SNAPSHOT_FIELDS + ALARM_FIELDS + SCORECARD_FIELDS


@dataclass(frozen=True, slots=True)
class Expectation:
    index: int  # step index in the file
    name: str
    asset: str  # as written ("*" or a name/id)
    asset_ids: tuple[str, ...]  # resolved; "*" → every asset (empty for a fleet scorecard)
    field: str
    op: str
    value: float | str
    high: float | None  # op "between"
    tolerance: float
    t0_s: float
    t1_s: float  # == t0_s for a point check ("at")

    @property
    def fleet(self) -> bool:
        return self.asset == "*"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    index: int
    at_s: float
    action: str
    # The action with assets resolved to ids (fault: the §11 POST /faults body).
    args: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    description: str
    start_time: datetime | None
    tick_interval_s: float | None
    frequency_hz: float | None
    ambient_c: float | None
    steps: tuple[PlannedStep, ...]
    expectations: tuple[Expectation, ...]
    end_s: float

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Simulated times at which the runner must stop to act or check."""
        pts = {0.0, self.end_s}
        pts.update(s.at_s for s in self.steps)
        for e in self.expectations:
            pts.add(e.t0_s)
            pts.add(e.t1_s)
        return tuple(sorted(pts))

    @property
    def fault_steps(self) -> tuple[PlannedStep, ...]:
        return tuple(s for s in self.steps if s.action in ("fault", "clear_fault"))


def _abs(spec: TimeSpec, base_s: float) -> float:
    if isinstance(spec, str):
        return base_s + float(spec[1:])
    return float(spec)


class _Assets:
    def __init__(self, specs: Sequence[AssetSpec]) -> None:
        self.by_id = {a.id: a for a in specs}
        self.by_name: dict[str, AssetSpec] = {}
        for a in specs:
            self.by_name.setdefault(a.name, a)

    def resolve(self, ref: str, where: str) -> AssetSpec:
        spec = self.by_id.get(ref) or self.by_name.get(ref)
        if spec is None:
            known = ", ".join(sorted(self.by_name)[:20])
            raise ScenarioError(f"{where}: unknown asset {ref!r} (assets: {known})")
        return spec


def build_plan(scenario: ScenarioFile, specs: Sequence[AssetSpec], source: str) -> Plan:
    """Check ``scenario`` against the fleet ``specs``; raise :class:`ScenarioError` naming
    the step and field, else return the plan."""
    assets = _Assets(specs)
    steps: list[PlannedStep] = []
    expectations: list[Expectation] = []
    prev_s = 0.0
    fault_ids: set[str] = set()
    end_s = 0.0
    for i, step in enumerate(scenario.steps):
        shown = f"{step.at:g}" if isinstance(step.at, float) else step.at
        where = f"{source}: step {i} (at {shown})"
        at_s = _abs(step.at, prev_s)
        if at_s < prev_s - 1e-9:
            raise ScenarioError(
                f"{where}: at: steps must be ordered by at; {at_s:g} s is before the previous "
                f'step at {prev_s:g} s (a relative time is written in quotes: "+N")'
            )
        prev_s = at_s
        end_s = max(end_s, at_s)
        action = step.action
        if action == "expect":
            assert step.expect is not None
            exp = _expectation(i, step, step.expect, at_s, assets, f"{where}: expect")
            expectations.append(exp)
            end_s = max(end_s, exp.t1_s)
            continue
        args = _args(step, assets, f"{where}: {action}", fault_ids)
        if action == "fault" and step.fault is not None:
            # A scheduled end is part of the time line (its reaction time is scored).
            start = at_s + (step.fault.start_in_s or 0.0)
            end_s = max(end_s, start + (step.fault.duration_s or 0.0))
        if action == "frequency" and step.frequency is not None:
            end_s = max(end_s, at_s + step.frequency.ramp_s)
        steps.append(PlannedStep(i, at_s, action, args, step.name or ""))
    grid = scenario.grid
    return Plan(
        name=scenario.name,
        description=scenario.description,
        start_time=scenario.start_time,
        tick_interval_s=scenario.tick_interval_s,
        frequency_hz=None if grid is None else grid.frequency_hz,
        ambient_c=None if grid is None else grid.ambient_c,
        steps=tuple(steps),
        expectations=tuple(expectations),
        end_s=end_s,
    )


def _args(step: Step, assets: _Assets, where: str, fault_ids: set[str]) -> dict[str, Any]:
    action = getattr(step, step.action)
    if isinstance(action, DispatchAction):
        spec = assets.resolve(action.asset, f"{where}.asset")
        return {"asset_id": spec.id, "mw": action.mw, "mvar": action.mvar,
                "duration_s": action.duration_s}  # fmt: skip
    if isinstance(action, AssetAction):
        return {"asset_id": assets.resolve(action.asset, f"{where}.asset").id}
    if isinstance(action, FaultAction):
        body: dict[str, Any] = {"kind": action.kind, "params": dict(action.params)}
        if action.asset is not None:
            body["asset_id"] = assets.resolve(action.asset, f"{where}.asset").id
        else:
            body["port"] = action.port
        if action.start_in_s is not None:
            body["start_in_s"] = action.start_in_s
        if action.duration_s is not None:
            body["duration_s"] = action.duration_s
        if action.id is not None:
            if action.id in fault_ids:
                raise ScenarioError(f"{where}.id: fault id {action.id!r} is used twice")
            fault_ids.add(action.id)
        return {"body": body, "label": action.id}
    if isinstance(action, ClearFaultAction):
        if action.id not in fault_ids:
            raise ScenarioError(
                f"{where}.id: no earlier fault step has id {action.id!r}"
                + (f" (known: {', '.join(sorted(fault_ids))})" if fault_ids else "")
            )
        return {"label": action.id}
    if isinstance(action, FrequencyAction):
        return {"hz": action.hz, "ramp_s": action.ramp_s}
    if isinstance(action, AmbientAction):
        return {"c": action.c}
    if isinstance(action, SpeedAction):
        return {"x": action.x}
    raise AssertionError(step.action)  # pragma: no cover - ACTIONS is exhaustive


def _expectation(
    index: int, step: Step, exp: ExpectAction, at_s: float, assets: _Assets, where: str
) -> Expectation:
    if exp.field not in EXPECT_FIELDS:
        raise ScenarioError(
            f"{where}.field: unknown field {exp.field!r}; one of {', '.join(EXPECT_FIELDS)}"
        )
    value: float | str
    high: float | None = None
    if isinstance(exp.value, tuple):
        value, high = exp.value
    else:
        value = exp.value
    if exp.field == "status" and not isinstance(value, str):
        raise ScenarioError(
            f"{where}.value: status is compared by its label, one of {', '.join(STATUS_LABELS)}"
        )
    if isinstance(value, str):
        if exp.field != "status":
            raise ScenarioError(f"{where}.value: {exp.field} is a number, got {value!r}")
        if value not in STATUS_LABELS:
            raise ScenarioError(
                f"{where}.value: status is one of {', '.join(STATUS_LABELS)}, got {value!r}"
            )
    if exp.asset == "*":
        ids = tuple(assets.by_id)
    else:
        ids = (assets.resolve(exp.asset, f"{where}.asset").id,)
    if exp.during is not None:
        t0, t1 = _abs(exp.during[0], at_s), _abs(exp.during[1], at_s)
        if t1 < t0:
            raise ScenarioError(f"{where}.during: t1 {t1:g} s is before t0 {t0:g} s")
    else:
        t0 = t1 = at_s if exp.at is None else _abs(exp.at, at_s)
    if t0 < at_s - 1e-9:
        raise ScenarioError(
            f"{where}.{'during' if exp.during else 'at'}: {t0:g} s is before the step itself "
            f"(at {at_s:g} s); an expectation cannot look back"
        )
    if not math.isfinite(t1):  # pragma: no cover - TimeSpec is finite
        raise ScenarioError(f"{where}: time is not finite")
    name = exp.name or step.name or _default_name(exp, t0, t1)
    return Expectation(index, name, exp.asset, ids, exp.field, exp.op, value, high,
                       exp.tolerance, t0, t1)  # fmt: skip


def _default_name(exp: ExpectAction, t0: float, t1: float) -> str:
    value = f"[{exp.value[0]:g}, {exp.value[1]:g}]" if isinstance(exp.value, tuple) else exp.value
    when = f"at {t0:g} s" if t0 == t1 else f"during [{t0:g}, {t1:g}] s"
    tol = f" ±{exp.tolerance:g}" if exp.tolerance else ""
    return f"{exp.asset} {exp.field} {exp.op} {value}{tol} {when}"


def check_fault_steps(
    plan: Plan, source: str, checker: Callable[[Mapping[str, Any]], None]
) -> None:
    """Refuse (ScenarioError naming the step) a fault step the fault layer would refuse."""
    for step in plan.fault_steps:
        where = f"{source}: step {step.index} (at {step.at_s:g}): {step.action}"
        if step.action == "fault":
            try:
                checker(step.args["body"])
            except ValueError as exc:
                raise ScenarioError(f"{where}: {exc}") from None
