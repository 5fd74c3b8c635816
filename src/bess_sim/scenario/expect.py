"""Evaluation of a scenario's expectations against the snapshots of each tick. Pure.

A point check (``at``) uses the first sample at or after its time; a window (``during``)
must hold on every sample inside it (every tick), and on the first one after it when no tick
fell inside (a window shorter than a tick in a paced run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..sim.model import ALARM_NAMES, STATUS_LABELS, Snapshot
from .plan import Expectation

_T_EPS = 1e-6
_ALARM_BITS = {f"alarm.{name}": int(bit) for bit, name in ALARM_NAMES.items()}

#: ``figure(name, asset_id | None)`` → the scorecard figure so far (None = fleet).
FigureFn = Callable[[str, str | None], float]


def observed(snap: Snapshot, field: str) -> float | str | None:
    if field == "status":
        return STATUS_LABELS[snap.status]
    bit = _ALARM_BITS.get(field)
    if bit is not None:
        return 1.0 if snap.alarms & bit else 0.0
    value = getattr(snap, field)
    return None if value is None else float(value)


def holds(exp: Expectation, value: float | str | None) -> bool:
    if value is None:
        return False
    if isinstance(value, str) or isinstance(exp.value, str):
        return exp.op == "==" and value == exp.value
    if math.isnan(value):
        return False
    tol = exp.tolerance
    target = float(exp.value)
    match exp.op:
        case "<":
            return value < target + tol
        case "<=":
            return value <= target + tol
        case "==":
            return abs(value - target) <= tol + 1e-9 * max(1.0, abs(target))
        case ">=":
            return value >= target - tol
        case ">":
            return value > target - tol
        case "between":
            assert exp.high is not None
            return target - tol <= value <= exp.high + tol
    raise AssertionError(exp.op)  # pragma: no cover


@dataclass(slots=True)
class _State:
    samples: int = 0
    failed: bool = False
    first_failure: dict[str, Any] | None = None
    low: float | None = None
    high: float | None = None
    last: float | str | None = None
    done: bool = False


class Evaluator:
    def __init__(self, expectations: tuple[Expectation, ...], names: Mapping[str, str]) -> None:
        self.expectations = expectations
        self._names = names
        self._states = [_State() for _ in expectations]

    def sample(self, t_s: float, snapshots: Sequence[Snapshot], figure: FigureFn) -> None:
        """The fleet's state at scenario time ``t_s`` (after a tick, or at the start)."""
        snaps: dict[str, Snapshot] | None = None  # built only when an expectation is due
        for exp, st in zip(self.expectations, self._states, strict=True):
            if st.done or t_s < exp.t0_s - _T_EPS:
                continue
            if snaps is None:
                snaps = {s.asset_id: s for s in snapshots}
            inside = t_s <= exp.t1_s + _T_EPS
            if not inside and st.samples:
                st.done = True
                continue
            self._check(exp, st, t_s, snaps, figure)
            if exp.t0_s == exp.t1_s or not inside:
                st.done = True

    def _check(
        self,
        exp: Expectation,
        st: _State,
        t_s: float,
        snaps: Mapping[str, Snapshot],
        figure: FigureFn,
    ) -> None:
        st.samples += 1
        if exp.field.startswith("scorecard."):
            name = exp.field.removeprefix("scorecard.")
            targets: list[tuple[str, float | str | None]] = []
            if exp.fleet:
                targets.append(("fleet", figure(name, None)))
            else:
                targets.extend((self._names.get(a, a), figure(name, a)) for a in exp.asset_ids)
        else:
            targets = [
                (self._names.get(a, a), observed(snaps[a], exp.field))
                for a in exp.asset_ids
                if a in snaps
            ]
        for asset, value in targets:
            if isinstance(value, float) and not math.isnan(value):
                st.low = value if st.low is None else min(st.low, value)
                st.high = value if st.high is None else max(st.high, value)
            st.last = value
            if not holds(exp, value) and not st.failed:
                st.failed = True
                st.first_failure = {"at_s": t_s, "asset": asset, "observed": value}

    def results(self, end_s: float) -> list[dict[str, Any]]:
        """Results so far; an expectation whose time has not come is ``pending``."""
        out: list[dict[str, Any]] = []
        for exp, st in zip(self.expectations, self._states, strict=True):
            if st.failed:
                status = "failed"
            elif st.samples and (st.done or end_s >= exp.t1_s - _T_EPS):
                status = "passed"
            else:
                status = "pending"
            out.append(
                {
                    "name": exp.name,
                    "step": exp.index,
                    "asset": exp.asset,
                    "field": exp.field,
                    "op": exp.op,
                    "value": [exp.value, exp.high] if exp.op == "between" else exp.value,
                    "tolerance": exp.tolerance,
                    "t0_s": exp.t0_s,
                    "t1_s": exp.t1_s,
                    "status": status,
                    "samples": st.samples,
                    "observed_min": st.low,
                    "observed_max": st.high,
                    "observed_last": st.last,
                    "first_failure": st.first_failure,
                    "message": _message(exp, st, status),
                }
            )
        return out

    def finish(self, end_s: float) -> list[dict[str, Any]]:
        """Final results: an expectation never sampled fails."""
        res = self.results(end_s)
        for r in res:
            if r["status"] == "pending":
                r["status"] = "failed"
                r["message"] = (
                    f"never evaluated: the run ended at {end_s:g} s before {r['t0_s']:g} s"
                )
        return res


def _message(exp: Expectation, st: _State, status: str) -> str:
    if status == "failed" and st.first_failure is not None:
        f = st.first_failure
        return (
            f"{f['asset']} {exp.field} = {_fmt(f['observed'])} at {f['at_s']:g} s; "
            f"expected {exp.op} {_fmt(exp.value)}"
            + (f"..{_fmt(exp.high)}" if exp.high is not None else "")
            + (f" ±{exp.tolerance:g}" if exp.tolerance else "")
        )
    if status == "passed":
        rng = (
            f"observed {_fmt(st.low)}..{_fmt(st.high)}"
            if st.low is not None and st.low != st.high
            else f"observed {_fmt(st.last)}"
        )
        return f"held on {st.samples} sample(s); {rng}"
    return "not evaluated yet"


def _fmt(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
