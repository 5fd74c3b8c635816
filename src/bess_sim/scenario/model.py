"""The scenario file (DESIGN §12) as pydantic models: the edge where YAML/JSON is checked.

Everything here only checks the *shape* of the file. What needs the fleet (asset names and
ids, the time line, expectation fields) is checked by :mod:`.plan`, which turns a
:class:`ScenarioFile` into the frozen :class:`~.plan.Plan` the runner executes.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: A time: simulated seconds from the scenario start, or "+N" (N seconds after the previous
#: step; inside an expectation, after the expectation's own step).
TimeSpec = float | str

#: Latest time a scenario may name (366 simulated days): a run is a test, not a year-long
#: simulation, and a typo such as 1e12 must not keep a stepping runner busy for hours.
MAX_TIME_S = 366 * 86_400.0

Finite = Annotated[float, Field(allow_inf_nan=False)]

Op = Literal["<", "<=", "==", ">=", ">", "between"]

#: Every action key a step may carry (exactly one per step).
ACTIONS = (
    "dispatch",
    "fault",
    "clear_fault",
    "trip",
    "reset",
    "frequency",
    "ambient",
    "speed",
    "expect",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_time(value: object) -> object:
    """Accept a finite number ≥ 0 or "+N" with N a finite number ≥ 0."""
    if isinstance(value, bool):
        raise ValueError("must be seconds (a number) or '+N'")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value > MAX_TIME_S:
            raise ValueError(f"must be seconds in [0, {MAX_TIME_S:g}], got {value}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("+"):
            try:
                n = float(text[1:])
            except ValueError:
                raise ValueError(f"'+N' needs a number N of seconds, got {value!r}") from None
            if not math.isfinite(n) or n < 0 or n > MAX_TIME_S:
                raise ValueError(f"'+N' needs N in [0, {MAX_TIME_S:g}], got {value!r}")
            return "+" + repr(n)
        try:
            n = float(text)
        except ValueError:
            raise ValueError(f"must be seconds (a number) or '+N', got {value!r}") from None
        return _check_time(n)
    raise ValueError("must be seconds (a number) or '+N'")


class DispatchAction(_Strict):
    asset: str
    mw: Finite
    mvar: Finite | None = None
    duration_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class FaultAction(_Strict):
    """A §11 fault: ``kind``, ``asset`` (name or id) or ``port``, ``params``, optional
    ``start_in_s``/``duration_s``; ``id`` is a label of this file for ``clear_fault``."""

    id: str | None = None
    kind: str
    asset: str | None = None
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    start_in_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    duration_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> FaultAction:
        if (self.asset is None) == (self.port is None):
            raise ValueError("give exactly one of asset or port")
        return self


class ClearFaultAction(_Strict):
    id: str


class AssetAction(_Strict):
    asset: str


class FrequencyAction(_Strict):
    hz: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
    ramp_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class AmbientAction(_Strict):
    c: Annotated[float, Field(ge=-100, le=200, allow_inf_nan=False)]


class SpeedAction(_Strict):
    x: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)]


class ExpectAction(_Strict):
    asset: str
    field: str
    op: Op
    value: Finite | str | tuple[Finite, Finite]
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    during: tuple[TimeSpec, TimeSpec] | None = None
    at: TimeSpec | None = None
    name: str | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: object) -> object:
        return None if value is None else _check_time(value)

    @field_validator("during", mode="before")
    @classmethod
    def _during(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError("must be [t0, t1]")
        return tuple(_check_time(v) for v in value)

    @model_validator(mode="after")
    def _shape(self) -> ExpectAction:
        if self.during is not None and self.at is not None:
            raise ValueError("give during or at, not both")
        if self.op == "between":
            if not isinstance(self.value, tuple):
                raise ValueError("op 'between' needs value: [low, high]")
            if self.value[0] > self.value[1]:
                raise ValueError(f"between: low {self.value[0]} > high {self.value[1]}")
        elif isinstance(self.value, tuple):
            raise ValueError(f"a [low, high] value needs op 'between', not {self.op!r}")
        if isinstance(self.value, str) and self.op != "==":
            raise ValueError(f"a text value ({self.value!r}) can only be compared with '=='")
        return self


class Step(_Strict):
    at: TimeSpec
    name: str | None = None
    dispatch: DispatchAction | None = None
    fault: FaultAction | None = None
    clear_fault: ClearFaultAction | None = None
    trip: AssetAction | None = None
    reset: AssetAction | None = None
    frequency: FrequencyAction | None = None
    ambient: AmbientAction | None = None
    speed: SpeedAction | None = None
    expect: ExpectAction | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: object) -> object:
        return _check_time(value)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"a step needs exactly one action of {', '.join(ACTIONS)} ({found})")
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)


class GridInit(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    frequency_hz: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] | None = Field(
        None, validation_alias="frequency"
    )
    ambient_c: Annotated[float, Field(ge=-100, le=200, allow_inf_nan=False)] | None = Field(
        None, validation_alias="ambient"
    )

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: object) -> object:
        # Both spellings: `frequency`/`ambient` (DESIGN §12) and the /grid names
        # `frequency_hz`/`ambient_c`.
        if isinstance(data, dict):
            out = dict(data)
            for short, full in (("frequency", "frequency_hz"), ("ambient", "ambient_c")):
                if full in out and short not in out:
                    out[short] = out.pop(full)
            return out
        return data


class ScenarioFile(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    start_time: datetime | None = None
    tick_interval_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    grid: GridInit | None = None
    steps: Annotated[list[Step], Field(min_length=1, max_length=100_000)]


class ScenarioError(Exception):
    """A scenario cannot be loaded or run; the message names the source, step and field."""


def _where(source: str, data: object, loc: tuple[int | str, ...]) -> str:
    """'FILE: steps[3] (at 20, dispatch): mw' from a pydantic error location."""
    parts: list[str] = []
    i = 0
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        idx = loc[1]
        at = None
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            steps = data["steps"]
            if 0 <= idx < len(steps) and isinstance(steps[idx], dict):
                at = steps[idx].get("at")
        parts.append(f"step {idx}" + (f" (at {at})" if at is not None else ""))
        i = 2
    field = ".".join(str(p) for p in loc[i:] if not _is_union_tag(p))
    head = f"{source}: " + (" ".join(parts) + ": " if parts else "")
    return head + (field or "(file)")


def _is_union_tag(part: int | str) -> bool:
    # pydantic puts the union member tried into the location ("float", "tuple[...]",
    # "function-after[...]"): noise for someone fixing a YAML file.
    text = str(part)
    return text in ("float", "str", "int") or "[" in text


def parse_scenario(data: object, source: str) -> ScenarioFile:
    """Validate decoded YAML/JSON; raise :class:`ScenarioError` naming step and field."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a mapping (name, steps, ...)")
    try:
        return ScenarioFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        seen: set[str] = set()
        for err in exc.errors():
            where = _where(source, data, tuple(err["loc"]))
            msg = str(err["msg"]).removeprefix("Value error, ")
            line = f"{where}: {msg}"
            if line not in seen:
                seen.add(line)
                lines.append(line)
        raise ScenarioError("\n".join(lines[:10])) from None


def parse_text(text: str, source: str) -> ScenarioFile:
    """YAML (JSON is YAML) text → :class:`ScenarioFile`."""
    import yaml  # local: pyyaml is a dependency, but only the edge needs it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ScenarioError(f"{source}: not valid YAML{where}: {problem}") from None
    return parse_scenario(data, source)
