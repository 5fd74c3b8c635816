"""Optional DESIGN §10 fields of an assets.yaml entry → :class:`ModelParams`.

Same rules as :mod:`bess_sim.config`: every failure is a ConfigError naming the file, the
entry and the field (dotted for nested ones, e.g. ``thermal.trip_c``)."""

from __future__ import annotations

import math
from typing import Any, Protocol

from .config import ConfigError
from .sim.models.curve import Curve
from .sim.models.params import FrequencyParams, ModelParams, ReactiveParams, ThermalParams

#: assets.yaml keys handled here.
MODEL_FIELDS = frozenset(
    {
        "efficiency_curve",
        "self_discharge_pct_per_day",
        "charge_taper",
        "discharge_taper",
        "thermal",
        "reactive",
        "frequency_response",
    }
)
_THERMAL = (
    "ambient_c", "initial_c", "heat_capacity_mj_per_k", "resistance_k_per_mw",
    "derate_start_c", "derate_end_c", "trip_c",
)  # fmt: skip
_REACTIVE = ("s_max_mva", "q_min_mvar", "q_max_mvar", "priority")
_FREQUENCY = ("mode", "nominal_hz", "deadband_hz", "droop_pct", "max_mw")


class _Entry(Protocol):
    raw: dict[str, Any]

    def error(self, field: str, message: str) -> ConfigError: ...


def parse_model(e: _Entry, max_mw: float, min_mw: float) -> ModelParams | None:
    """The §10 parameters of one asset, or None when it sets none of them (§3 model)."""
    raw = e.raw
    if not any(k in raw for k in MODEL_FIELDS):
        return None
    eff = _curve(e, "efficiency_curve", "power_pct", "efficiency", (0.0, math.inf), (0.0, 1.0))
    sd = _num(e, "self_discharge_pct_per_day", raw.get("self_discharge_pct_per_day", 0.0))
    if not 0.0 <= sd <= 100.0:
        raise e.error("self_discharge_pct_per_day", f"must be in [0, 100], got {sd:g}")
    return ModelParams(
        efficiency_curve=eff,
        self_discharge_pct_per_day=sd,
        charge_taper=_curve(e, "charge_taper", "soc_pct", "limit_pct", (0, 100), (0, 100)),
        discharge_taper=_curve(e, "discharge_taper", "soc_pct", "limit_pct", (0, 100), (0, 100)),
        thermal=_thermal(e),
        reactive=_reactive(e),
        frequency_response=_frequency(e, max_mw, min_mw),
    )


def _num(e: _Entry, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise e.error(field, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise e.error(field, f"must be finite, got {value!r}")
    return float(value)


def _curve(
    e: _Entry,
    field: str,
    x_name: str,
    y_name: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> Curve | None:
    """``[[x, y], ...]``: ≥ 2 points, x strictly increasing, both within range (for the
    efficiency, y in (0, 1] like §2's ``efficiency``)."""
    raw = e.raw.get(field)
    if raw is None:
        return None
    shape = f"a list of [{x_name}, {y_name}] pairs"
    if not isinstance(raw, list) or len(raw) < 2:
        raise e.error(field, f"must be {shape} with at least 2 points, got {raw!r}")
    points: list[tuple[float, float]] = []
    for i, pt in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(pt, list) or len(pt) != 2:
            raise e.error(where, f"must be a [{x_name}, {y_name}] pair, got {pt!r}")
        x, y = _num(e, where, pt[0]), _num(e, where, pt[1])
        if not x_range[0] <= x <= x_range[1]:
            raise e.error(where, f"{x_name} must be in [{x_range[0]:g}, {x_range[1]:g}], got {x:g}")
        lo_ok = y > y_range[0] if y_name == "efficiency" else y >= y_range[0]
        if not (lo_ok and y <= y_range[1]):
            bracket = "(" if y_name == "efficiency" else "["
            raise e.error(
                where, f"{y_name} must be in {bracket}{y_range[0]:g}, {y_range[1]:g}], got {y:g}"
            )
        if points and x <= points[-1][0]:
            raise e.error(where, f"{x_name} must be strictly increasing, got {x:g} after "
                          f"{points[-1][0]:g}")  # fmt: skip
        points.append((x, y))
    return Curve.of(tuple(points))


def _mapping(e: _Entry, field: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    raw = e.raw.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise e.error(field, f"must be a mapping {{{', '.join(keys)}}}, got {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in keys)
    if unknown:
        raise e.error(f"{field}.{unknown[0]}", f"unknown field (expected {', '.join(keys)})")
    return raw


def _field(
    e: _Entry, raw: dict[str, Any], field: str, key: str, default: float | None = None
) -> float:
    value = raw.get(key, default)
    if value is None:
        raise e.error(f"{field}.{key}", "is required")
    return _num(e, f"{field}.{key}", value)


def _thermal(e: _Entry) -> ThermalParams | None:
    raw = _mapping(e, "thermal", _THERMAL)
    if raw is None:
        return None
    ambient = _field(e, raw, "thermal", "ambient_c", 25.0)
    p = ThermalParams(
        ambient_c=ambient,
        initial_c=_field(e, raw, "thermal", "initial_c", ambient),
        heat_capacity_mj_per_k=_field(e, raw, "thermal", "heat_capacity_mj_per_k"),
        resistance_k_per_mw=_field(e, raw, "thermal", "resistance_k_per_mw"),
        derate_start_c=_field(e, raw, "thermal", "derate_start_c"),
        derate_end_c=_field(e, raw, "thermal", "derate_end_c"),
        trip_c=_field(e, raw, "thermal", "trip_c"),
    )
    if p.heat_capacity_mj_per_k <= 0:
        raise e.error(
            "thermal.heat_capacity_mj_per_k", f"must be > 0, got {p.heat_capacity_mj_per_k:g}"
        )
    if p.resistance_k_per_mw <= 0:
        raise e.error("thermal.resistance_k_per_mw", f"must be > 0, got {p.resistance_k_per_mw:g}")
    if p.derate_end_c <= p.derate_start_c:
        raise e.error(
            "thermal.derate_end_c",
            f"must be > derate_start_c ({p.derate_start_c:g}), got {p.derate_end_c:g}",
        )
    if p.trip_c < p.derate_start_c:
        raise e.error(
            "thermal.trip_c", f"must be >= derate_start_c ({p.derate_start_c:g}), got {p.trip_c:g}"
        )
    if p.initial_c >= p.trip_c:
        raise e.error("thermal.initial_c", f"must be < trip_c ({p.trip_c:g}), got {p.initial_c:g}")
    return p


def _reactive(e: _Entry) -> ReactiveParams | None:
    raw = _mapping(e, "reactive", _REACTIVE)
    if raw is None:
        return None
    s_max = _field(e, raw, "reactive", "s_max_mva")
    if s_max <= 0:
        raise e.error("reactive.s_max_mva", f"must be > 0, got {s_max:g}")
    q_min = _field(e, raw, "reactive", "q_min_mvar", -s_max)
    q_max = _field(e, raw, "reactive", "q_max_mvar", s_max)
    if q_min > 0:
        raise e.error("reactive.q_min_mvar", f"must be <= 0, got {q_min:g}")
    if q_max < 0:
        raise e.error("reactive.q_max_mvar", f"must be >= 0, got {q_max:g}")
    priority = raw.get("priority", "p")
    if priority not in ("p", "q"):
        raise e.error("reactive.priority", f"must be 'p' or 'q', got {priority!r}")
    return ReactiveParams(s_max, q_min, q_max, priority)


def _frequency(e: _Entry, max_mw: float, min_mw: float) -> FrequencyParams | None:
    raw = _mapping(e, "frequency_response", _FREQUENCY)
    if raw is None:
        return None
    mode = raw.get("mode", "droop")
    if mode != "droop":
        raise e.error("frequency_response.mode", f"must be 'droop', got {mode!r}")
    nominal = _field(e, raw, "frequency_response", "nominal_hz", 50.0)
    if nominal not in (50.0, 60.0):
        raise e.error("frequency_response.nominal_hz", f"must be 50 or 60, got {nominal:g}")
    deadband = _field(e, raw, "frequency_response", "deadband_hz", 0.0)
    if not 0 <= deadband < nominal:
        raise e.error(
            "frequency_response.deadband_hz", f"must be in [0, nominal), got {deadband:g}"
        )
    droop = _field(e, raw, "frequency_response", "droop_pct")
    if droop <= 0:
        raise e.error("frequency_response.droop_pct", f"must be > 0, got {droop:g}")
    rating = max(max_mw, -min_mw)
    fr_max = _field(e, raw, "frequency_response", "max_mw", rating)
    if not 0 <= fr_max <= rating:
        raise e.error(
            "frequency_response.max_mw", f"must be in [0, {rating:g}] (the rating), got {fr_max:g}"
        )
    return FrequencyParams("droop", nominal, deadband, droop, fr_max)


def model_mapping(params: ModelParams | None) -> dict[str, Any]:
    """The inverse of :func:`parse_model`: the assets.yaml fields that reproduce ``params``
    (used by ``GET /fleet.yaml`` and the stored spec of registered assets)."""
    if params is None:
        return {}
    out: dict[str, Any] = {}
    for name in ("efficiency_curve", "charge_taper", "discharge_taper"):
        curve: Curve | None = getattr(params, name)
        if curve is not None:
            out[name] = [[x, y] for x, y in zip(curve.xs, curve.ys, strict=True)]
    if params.self_discharge_pct_per_day:
        out["self_discharge_pct_per_day"] = params.self_discharge_pct_per_day
    for name, keys in (
        ("thermal", _THERMAL),
        ("reactive", _REACTIVE),
        ("frequency_response", _FREQUENCY),
    ):
        sub = getattr(params, name)
        if sub is not None:
            out[name] = {k: getattr(sub, k) for k in keys}
    return out
