"""Scenario file validation (DESIGN §12): every bad file is refused naming step and field."""

from __future__ import annotations

from typing import Any

import pytest

from bess_sim.scenario import ScenarioError, build_plan, parse_scenario, parse_text
from tests.scenario.helpers import example_fleet, scenario

SRC = "s.yaml"


def plan_of(data: dict[str, Any]) -> Any:
    return build_plan(parse_scenario(data, SRC), example_fleet().assets, SRC)


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        plan_of(data)
    return str(info.value)


def test_times_resolve_relative_steps_and_expectation_windows() -> None:
    plan = plan_of(
        scenario(
            {"at": 5, "dispatch": {"asset": "PLAIN-1", "mw": 3}},
            {"at": "+10", "frequency": {"hz": 49.9, "ramp_s": 4}},
            {"at": "+0", "expect": {"asset": "*", "field": "soc_pct", "op": ">", "value": 1,
                                    "during": ["+1", 40]}},
            {"at": 20, "expect": {"asset": "5ce0a110-0000-4000-8000-0000000000a1",
                                  "field": "status", "op": "==", "value": "idle", "at": "+3"}},
        )
    )  # fmt: skip
    assert [s.at_s for s in plan.steps] == [5.0, 15.0]
    assert plan.steps[0].args["asset_id"] == "5ce0a110-0000-4000-8000-0000000000a3"
    window, point = plan.expectations
    assert (window.t0_s, window.t1_s, len(window.asset_ids)) == (16.0, 40.0, 3)
    assert (point.t0_s, point.t1_s) == (23.0, 23.0)
    assert plan.end_s == 40.0
    assert plan.breakpoints == (0.0, 5.0, 15.0, 16.0, 23.0, 40.0)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"at": 1, "dispatch": {"asset": "PLAIN-1", "mw": "x"}}, "step 0 (at 1): dispatch.mw"),
        ({"at": 1, "dispatch": {"asset": "PLAIN-1"}}, "step 0 (at 1): dispatch.mw"),
        ({"at": 1, "dispatch": {"asset": "NOPE", "mw": 1}}, "dispatch.asset: unknown asset"),
        ({"at": 1, "frequency": {"hz": -1}}, "step 0 (at 1): frequency.hz"),
        ({"at": 1, "speed": {"x": 0}}, "speed.x"),
        ({"at": -1, "trip": {"asset": "PLAIN-1"}}, "step 0 (at -1): at"),
        ({"at": "+x", "trip": {"asset": "PLAIN-1"}}, "step 0 (at +x): at"),
        ({"at": 1}, "exactly one action"),
        ({"at": 1, "trip": {"asset": "PLAIN-1"}, "reset": {"asset": "PLAIN-1"}},
         "exactly one action"),
        ({"at": 1, "explode": {}}, "step 0 (at 1): explode"),
        ({"at": 1, "expect": {"asset": "*", "field": "colour", "op": "==", "value": 1}},
         "expect.field: unknown field 'colour'"),
        ({"at": 1, "expect": {"asset": "*", "field": "soc_pct", "op": "~", "value": 1}},
         "expect.op"),
        ({"at": 1, "expect": {"asset": "*", "field": "soc_pct", "op": "between", "value": 1}},
         "needs value: [low, high]"),
        ({"at": 5, "expect": {"asset": "*", "field": "soc_pct", "op": ">", "value": 1,
                              "during": [9, 6]}}, "expect.during: t1 6 s is before t0 9 s"),
        ({"at": 5, "expect": {"asset": "*", "field": "soc_pct", "op": ">", "value": 1,
                              "at": 2}}, "cannot look back"),
        ({"at": 1, "expect": {"asset": "*", "field": "status", "op": "==", "value": "busy"}},
         "expect.value: status is one of"),
        ({"at": 1, "expect": {"asset": "*", "field": "status", "op": "==", "value": 3}},
         "expect.value: status is compared by its label"),
        ({"at": 1, "expect": {"asset": "*", "field": "soc_pct", "op": "==", "value": "full"}},
         "expect.value: soc_pct is a number"),
        ({"at": 1, "clear_fault": {"id": "f1"}}, "clear_fault.id: no earlier fault step"),
        ({"at": 1, "fault": {"kind": "trip"}}, "give exactly one of asset or port"),
    ],
)  # fmt: skip
def test_bad_step_names_the_step_and_field(step: dict[str, Any], expected: str) -> None:
    msg = error_of(scenario(step))
    assert msg.startswith(f"{SRC}: ")
    assert expected in msg


def test_steps_out_of_order_name_the_later_step() -> None:
    msg = error_of(
        scenario(
            {"at": 10, "trip": {"asset": "PLAIN-1"}},
            {"at": 5, "reset": {"asset": "PLAIN-1"}},
        )
    )
    assert "step 1 (at 5): at: steps must be ordered by at" in msg


def test_top_level_fields_are_checked() -> None:
    assert "name" in error_of({"steps": [{"at": 0, "speed": {"x": 1}}]})
    assert "steps" in error_of({"name": "n", "steps": []})
    assert "s.yaml: tick_interval_s" in error_of(
        scenario({"at": 0, "speed": {"x": 1}}, tick_interval_s=0)
    )
    assert "grid.frequency" in error_of(scenario({"at": 0, "speed": {"x": 1}}, grid={
        "frequency": "fast"}))  # fmt: skip
    assert "s.yaml: colour" in error_of(scenario({"at": 0, "speed": {"x": 1}}, colour=1))


def test_grid_accepts_both_spellings() -> None:
    a = plan_of(scenario({"at": 0, "speed": {"x": 1}}, grid={"frequency": 49.9, "ambient": 30}))
    b = plan_of(scenario({"at": 0, "speed": {"x": 1}}, grid={"frequency_hz": 49.9,
                                                             "ambient_c": 30}))  # fmt: skip
    assert (a.frequency_hz, a.ambient_c) == (b.frequency_hz, b.ambient_c) == (49.9, 30.0)


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(ScenarioError, match=r"s.yaml: not valid YAML \(line 3"):
        parse_text("name: x\nsteps: [\n  - {", SRC)
    with pytest.raises(ScenarioError, match="must be a mapping"):
        parse_text("- 1\n- 2\n", SRC)


def test_unquoted_relative_time_is_explained() -> None:
    # YAML reads `at: +10` as the number 10: the ordering error says how to write "+10".
    text = "name: x\nsteps:\n- {at: 20, speed: {x: 1}}\n- {at: +10, speed: {x: 2}}\n"
    with pytest.raises(ScenarioError) as info:
        build_plan(parse_text(text, SRC), example_fleet().assets, SRC)
    msg = str(info.value)
    assert 'written in quotes: "+N"' in msg
