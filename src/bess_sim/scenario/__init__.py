"""Scenario files and the EMS scorecard (DESIGN §12).

Pure parts: :mod:`.model` (the file, validated with pydantic), :mod:`.plan` (resolved against a
fleet), :mod:`.expect` (expectation evaluation), :mod:`.scorecard` (the EMS scorecard). Driving
a simulator: :mod:`.runner`, :mod:`.host` (one at a time, live), :mod:`.report` (files).
"""

from .model import ScenarioError, ScenarioFile, parse_scenario, parse_text
from .plan import Plan, build_plan
from .target import RuntimeTarget, ScenarioTarget

__all__ = [
    "Plan",
    "RuntimeTarget",
    "ScenarioError",
    "ScenarioFile",
    "ScenarioTarget",
    "build_plan",
    "parse_scenario",
    "parse_text",
]
