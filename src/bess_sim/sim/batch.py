"""Glue between the fleet's asset cells and the columnar §10 step (:mod:`.columnar`).

Per tick: pick the §10 assets with no event inside the tick, gather their state into arrays,
step them together, write the new state back and build their snapshots. The constants
(:class:`~.columnar.ModelColumns`) are rebuilt only when the set of models changes (an asset
added, replaced or removed, a device fault set or cleared: each makes a new AssetModel).

Measured (bench part ``model``, 10,000 assets with every effect on, 1 s ticks): see
bench/RESULTS.md; the per-asset path alone took ~110-130 ms per tick on this machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np

from .cell import _CHARGING, _DERATED, _DISCHARGING, _IDLE, _SOC_HIGH, _SOC_LOW, AssetCell
from .columnar import ModelColumns, step
from .model import Snapshot
from .models import AssetModel, GridState
from .untrack import untrack

# Same slack as the fleet's event check: an event this close to the tick's end fires in it.
_EVENT_EPS_S = 1e-9
_NAN = math.nan
#: Rows converted to numpy per call (~0.2 ms each, between two GIL switch points).
_ROWS_PER_SLICE = 1024


def _no_event(cell: AssetCell, limit_s: float) -> bool:
    if cell.fault is not None or cell.tripped:
        return False
    if cell.active is None:
        return True
    end_s = cell.active_end_s
    if end_s is not None and end_s <= limit_s:
        return False
    deadline = cell.watchdog_deadline_s()
    return deadline is None or deadline > limit_s


class BatchStepper:
    """Steps the event-free §10 assets of a fleet together; owned by one Fleet."""

    def __init__(self, min_assets: int = 1) -> None:
        self.min_assets = max(1, min_assets)
        self._models: list[AssetModel] = []
        self._cols: ModelColumns | None = None
        self.batched = 0  # assets stepped here in the last tick (tests, benchmarks)

    def _columns(self, models: list[AssetModel]) -> ModelColumns:
        cols = self._cols
        if (
            cols is None
            or len(models) != len(self._models)
            or any(a is not b for a, b in zip(models, self._models, strict=True))
        ):
            cols = self._cols = ModelColumns(models)
            self._models = models
        return cols

    def step(
        self,
        cells: Iterable[AssetCell],
        t0: float,
        t1: float,
        grid: GridState,
        end_time: datetime,
    ) -> dict[AssetCell, Snapshot]:
        """Step what can be stepped together from ``t0`` to ``t1``; returns the snapshot of
        each asset it stepped (the others are left untouched for the per-asset path)."""
        self.batched = 0
        group = [c for c in cells if c.model is not None]
        h = t1 - t0  # the per-asset path steps t1 - t0 too (not dt_s: rounding)
        if len(group) < self.min_assets or h <= 0.0:
            return {}
        models = [c.model for c in group if c.model is not None]
        cols = self._columns(models)
        n = len(group)
        limit_s = t1 + _EVENT_EPS_S
        eligible = np.fromiter((_no_event(c, limit_s) for c in group), np.bool_, n)
        if not eligible.any():
            return {}
        # One pass over the cells (six generator passes cost ~3x more at 10,000 assets), in
        # slices: numpy converts a list of tuples without giving the GIL away (~2 ms for
        # 10,000 rows, measured), a stall for the event loop when the tick runs in a thread.
        rows = np.concatenate(
            [
                np.array(
                    [
                        (
                            c.soc_mwhr,
                            c.current_mw,
                            c.current_mvar,
                            _NAN if c.temperature_c is None else c.temperature_c,
                            c.setpoint_mw,
                            c.setpoint_mvar,
                        )
                        for c in group[i : i + _ROWS_PER_SLICE]
                    ],
                    np.float64,
                )
                for i in range(0, n, _ROWS_PER_SLICE)
            ]
        ).T
        state = dict(zip(("soc", "mw", "mvar", "temp", "sp_mw", "sp_mvar"), rows, strict=True))
        r = step(
            cols,
            state,
            eligible,
            grid.frequency_hz,
            grid.ambient_c,
            h,
            (_SOC_LOW, _SOC_HIGH, _DERATED),
            (_IDLE, _CHARGING, _DISCHARGING),
        )
        out: dict[AssetCell, Snapshot] = {}
        freq = grid.frequency_hz
        new_tuple = tuple.__new__
        for cell, ok, soc, mw, mvar, temp, soc_pct, status, extra, a_dis, a_chg in zip(
            group,
            r.ok,
            r.soc_mwhr,
            r.current_mw,
            r.current_mvar,
            r.temperature_c,
            r.soc_pct,
            r.status,
            r.extra_alarms,
            r.available_discharge_mw,
            r.available_charge_mw,
            strict=True,
        ):
            if not ok:
                continue
            spec = cell.spec
            cell.soc_mwhr = soc
            cell.current_mw = mw
            cell.current_mvar = mvar
            if cell.temperature_c is None:
                temp = None  # no thermal model: NaN inside the columns, None outside
            else:
                cell.temperature_c = temp
            # Field order of Snapshot, as the fleet's snapshot_of builds it; tuple.__new__
            # skips the NamedTuple's generated __new__ frame (~0.5 µs × 10,000 per tick).
            out[cell] = snap = new_tuple(Snapshot, (
                spec.id,
                spec.site_id,
                end_time,
                t1,
                soc,
                soc_pct,
                spec.capacity_mwhr,
                mw,
                cell.setpoint_mw,
                spec.max_mw,
                spec.min_mw,
                status,
                int(cell.latched) | extra,
                cell.heartbeat,
                mvar,
                cell.setpoint_mvar,
                a_dis,
                a_chg,
                temp,
                freq,
            ))  # fmt: skip
            untrack(snap)  # never in a cycle; see untrack.py
        self.batched = len(out)
        return out
