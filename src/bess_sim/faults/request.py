"""``FaultRequest``: what ``POST /faults`` and a scenario's ``fault`` step take (DESIGN §11).

Pydantic, because this is an edge: the REST body and the scenario file both validate through
it, and every error names its field (``params.delay_ms``, ``asset_id`` ...). Inside, a fault
is the frozen :class:`~bess_sim.faults.model.Fault`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .model import COMM_KINDS, DEVICE_KINDS, PORT_KINDS, FaultKind

#: A JSON number (int or float), never a boolean nor a string.
Number = Annotated[float, Strict()]
#: Longest start delay / duration: one simulated year.
MAX_SECONDS = 31_536_000.0
#: Telemetry fields a ``value_override`` may corrupt (the float fields of a snapshot).
OVERRIDE_FIELDS = (
    "soc_pct",
    "soc_mwhr",
    "current_mw",
    "setpoint_mw",
    "capacity_mwhr",
    "max_mw",
    "min_mw",
    "current_mvar",
    "setpoint_mvar",
    "available_discharge_mw",
    "available_charge_mw",
    "temperature_c",
    "frequency_hz",
)
Surface = Literal["modbus", "rest"]
#: Non-finite override values, as strings for strict JSON encoders that cannot write NaN.
NonFinite = Literal["NaN", "Infinity", "-Infinity"]


def _modbus_only() -> list[Surface]:
    return ["modbus"]


def _both_surfaces() -> list[Surface]:
    return ["modbus", "rest"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    """trip, stuck, modbus_offline, modbus_disconnect."""


class DerateParams(_Params):
    discharge_pct: Number = Field(100.0, ge=0, le=100, description="% of max_mw still available")
    charge_pct: Number = Field(100.0, ge=0, le=100, description="% of |min_mw| still available")


class SocBiasParams(_Params):
    offset_pct: Number = Field(0.0, ge=-100, le=100, description="SOC points added at start")
    drift_pct_per_h: Number = Field(
        0.0, ge=-1000, le=1000, description="SOC points added per simulated hour"
    )


class LatencyParams(_Params):
    delay_ms: Number = Field(ge=0, le=60_000, description="added before each answer, wall ms")
    jitter_ms: Number = Field(0.0, ge=0, le=60_000, description="uniform ± around delay_ms")


class DropParams(_Params):
    probability: Number = Field(1.0, ge=0, le=1, description="chance each request is dropped")


class ExceptionParams(_Params):
    code: int = Field(ge=1, le=255, strict=True, description="Modbus exception code")
    probability: Number = Field(1.0, ge=0, le=1)
    function_codes: list[Annotated[int, Field(ge=1, le=127, strict=True)]] | None = Field(
        None, min_length=1, description="only these function codes (default: all)"
    )


class FrozenParams(_Params):
    surfaces: list[Surface] = Field(default_factory=_modbus_only, min_length=1)


class OverrideParams(_Params):
    field: Literal[OVERRIDE_FIELDS] = Field(description="telemetry field to corrupt")  # type: ignore[valid-type]
    value: Number | NonFinite | None = Field(None, description="published instead (NaN allowed)")
    offset: Number | None = Field(None, allow_inf_nan=False, description="added to the true value")
    scale: Number | None = Field(None, allow_inf_nan=False, description="true value multiplied")
    surfaces: list[Surface] = Field(default_factory=_both_surfaces, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> OverrideParams:
        given = [n for n in ("value", "offset", "scale") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of value, offset, scale is required")
        return self


PARAMS: dict[FaultKind, type[_Params]] = {
    FaultKind.TRIP: NoParams,
    FaultKind.DERATE: DerateParams,
    FaultKind.STUCK: NoParams,
    FaultKind.SOC_BIAS: SocBiasParams,
    FaultKind.MODBUS_LATENCY: LatencyParams,
    FaultKind.MODBUS_DROP: DropParams,
    FaultKind.MODBUS_EXCEPTION: ExceptionParams,
    FaultKind.MODBUS_OFFLINE: NoParams,
    FaultKind.MODBUS_DISCONNECT: NoParams,
    FaultKind.FROZEN_TELEMETRY: FrozenParams,
    FaultKind.VALUE_OVERRIDE: OverrideParams,
}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"params.{where}: {msg}" if where else f"params: {msg}"


class FaultRequest(BaseModel):
    """A fault to inject: ``kind``, its target (``asset_id`` or, for Modbus kinds, ``port``),
    ``params`` of that kind, and when (simulated seconds from now; ``duration_s`` omitted =
    until ``DELETE /faults/{id}``)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "modbus_latency",
                    "asset_id": "aaaaaaaa-0000-4000-8000-000000000001",
                    "params": {"delay_ms": 200, "jitter_ms": 50},
                    "start_in_s": 10,
                    "duration_s": 60,
                },
                {"kind": "modbus_disconnect", "port": 5020, "duration_s": 30},
            ]
        },
    )

    kind: FaultKind = Field(description="One of the DESIGN §11 kinds (docs/faults.md).")
    asset_id: UUID | None = Field(None, description="The asset (unit) affected.")
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        strict=True,
        description="Modbus kinds only, instead of asset_id: every unit on this port.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        validate_default=True,  # {} must still be checked: delay_ms, code ... are required
        description="Parameters of the kind (docs/faults.md).",
    )
    start_in_s: Number = Field(
        0.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="Simulated s from now."
    )
    duration_s: Number | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Simulated s it lasts; omitted/null = until deleted.",
    )

    @field_validator("params")
    @classmethod
    def _params_of_kind(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        if kind is None:
            return value  # the kind's own error is reported
        try:
            parsed = PARAMS[kind].model_validate(value)
        except ValidationError as exc:
            raise ValueError(_first_error(exc)) from None
        out = parsed.model_dump()
        v = out.get("value")
        if isinstance(v, float) and not math.isfinite(v):
            # Kept as the string form: JSON (REST answers, the database's jsonb) has no NaN.
            out["value"] = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        return out

    @model_validator(mode="after")
    def _target(self) -> FaultRequest:
        kind = self.kind
        if self.asset_id is not None and self.port is not None:
            raise ValueError("asset_id and port: give one, not both")
        if self.port is not None and kind not in PORT_KINDS:
            raise ValueError(f"port: a {kind.value} fault needs asset_id, not port")
        if self.asset_id is None and self.port is None:
            need = "asset_id or port" if kind in PORT_KINDS else "asset_id"
            raise ValueError(f"asset_id: a {kind.value} fault needs {need}")
        return self

    def typed_params(self) -> _Params:
        return PARAMS[self.kind].model_validate(self.params)


def override_number(value: float | str) -> float:
    """The float of an override ``value`` (the strings name the non-finite ones)."""
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return float(value)


__all__ = [
    "COMM_KINDS",
    "DEVICE_KINDS",
    "OVERRIDE_FIELDS",
    "PARAMS",
    "FaultRequest",
    "override_number",
]
