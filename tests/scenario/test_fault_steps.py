"""Fault steps through the FaultPort seam (DESIGN §11 is another room): validation before the
run, the §11 body handed over, ids mapped for clear_fault, fault events in the scorecard.

The fault layer here records what the runner hands it and trips the real fleet: the runner's
side of the seam seen in isolation (the real layer end to end: test_examples.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bess_sim.runtime import Runtime
from bess_sim.scenario import ScenarioError, build_plan, parse_scenario
from bess_sim.scenario.plan import check_fault_steps
from bess_sim.scenario.runner import ScenarioRun
from bess_sim.scenario.target import RuntimeTarget
from tests.conftest import ASSET_1


class TripFaults(RuntimeTarget):
    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self.added: list[Mapping[str, Any]] = []
        self.ended: list[str] = []

    async def add_fault(self, spec: Mapping[str, Any]) -> str:
        self.added.append(spec)
        self.fleet.trip(spec["asset_id"])
        return f"fault-{len(self.added)}"

    async def end_fault(self, fault_id: str) -> None:
        self.ended.append(fault_id)
        self.fleet.reset_fault(ASSET_1)


def check(body: Mapping[str, Any]) -> None:
    if body["kind"] != "trip":
        raise ValueError(f"kind: unknown fault kind {body['kind']!r}")


FILE = {
    "name": "faults",
    "steps": [
        {"at": 5, "fault": {"id": "t", "kind": "trip", "asset": "BESS-1", "duration_s": 20}},
        {"at": 6, "expect": {"asset": "BESS-1", "field": "status", "op": "==", "value": "fault"}},
        {"at": 10, "clear_fault": {"id": "t"}},
        {"at": 11, "expect": {"asset": "BESS-1", "field": "status", "op": "==", "value": "idle"}},
    ],
}


def test_fault_steps_are_checked_before_the_run(runtime: Runtime) -> None:
    plan = build_plan(parse_scenario(FILE, "f.yaml"), runtime.fleet.specs, "f.yaml")
    check_fault_steps(plan, "f.yaml", check)
    bad = {**FILE, "steps": [{"at": 1, "fault": {"kind": "melt", "asset": "BESS-1"}}]}
    plan = build_plan(parse_scenario(bad, "f.yaml"), runtime.fleet.specs, "f.yaml")
    with pytest.raises(ScenarioError, match=r"step 0 \(at 1\): fault: kind: unknown fault kind"):
        check_fault_steps(plan, "f.yaml", check)


async def test_fault_steps_reach_the_fault_layer(runtime: Runtime) -> None:
    plan = build_plan(parse_scenario(FILE, "f.yaml"), runtime.fleet.specs, "f.yaml")
    target = TripFaults(runtime)
    run = ScenarioRun(plan, target, source="f.yaml")
    assert await run.run() == "passed", run.status()
    assert target.added == [{"kind": "trip", "params": {}, "asset_id": ASSET_1, "duration_s": 20}]
    assert target.ended == ["fault-1"]  # the file's label "t" mapped to the layer's id
    events = run.status()["scorecard"]["events"]
    # Cleared at 10: the end scheduled at 25 (duration_s) never happens and is not scored.
    assert [(e["kind"], e["at_s"], e["label"], e["asset"]) for e in events] == [
        ("fault_start", 5.0, "t", "BESS-1"),
        ("fault_end", 10.0, "t", "BESS-1"),
    ]
