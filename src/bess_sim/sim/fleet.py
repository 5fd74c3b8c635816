"""The fleet: owns simulated time, every asset's state and the dispatch lifecycle.

Simulated time belongs to this object alone (as in SimPy): it advances only through
:meth:`Fleet.advance`, which the runtime calls with a ``dt_s`` from a real-time or manual clock.
Within a tick, an asset's tick is split at the instants where a dispatch ends or its watchdog
expires, so lifecycle events happen at their exact simulated time whatever the tick length.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from . import physics
from .batch import BatchStepper
from .cell import AssetCell, snapshot_of
from .control import AssetControl, ControlBoard
from .device_fault import DeviceFault
from .dispatch import DispatchRecord, DispatchRequest, DispatchSource, DispatchStatus, validate
from .model import Alarm, AssetSpec, FleetConfig, Site, Snapshot
from .models import AssetModel, GridState
from .records import DispatchListener, DispatchLog

__all__ = ["DEFAULT_GRID_HZ", "AssetControl", "DispatchListener", "Fleet", "UnknownAssetError"]

# Events closer than this to the end of a sub-step fire in it (float rounding of sim time).
_EVENT_EPS_S = 1e-9
#: Grid frequency before any ``set_grid`` when no asset names a nominal (Hz).
DEFAULT_GRID_HZ = 50.0


class UnknownAssetError(KeyError):
    """The asset id is not in the fleet."""


def _new_id() -> str:
    return str(uuid.uuid4())


class Fleet:
    """All assets of one simulator and their dispatches."""

    def __init__(
        self,
        config: FleetConfig,
        start_time: datetime,
        *,
        dispatch_log_size: int = 100_000,
        id_factory: Callable[[], str] = _new_id,
        batch_min_assets: int = 1,
    ) -> None:
        """``batch_min_assets``: the fewest §10 assets for which the columnar step is used
        (a very large number turns it off: the per-asset path is the reference)."""
        if start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware (UTC)")
        self.config = config
        self.start_time = start_time.astimezone(UTC)
        self.sim_time_s = 0.0
        self.tick_count = 0
        self._assets: dict[str, AssetCell] = {a.id: AssetCell(a) for a in config.assets}
        self._sites: dict[str, Site] = {s.id: s for s in config.sites}
        self._retired: dict[str, AssetSpec] = {}
        self._log = DispatchLog(dispatch_log_size)
        self._new_id = id_factory
        nominal = next(
            (
                a.model.frequency_response.nominal_hz
                for a in config.assets
                if a.model is not None and a.model.frequency_response is not None
            ),
            DEFAULT_GRID_HZ,
        )
        self.grid = GridState(nominal)
        self._batch = BatchStepper(batch_min_assets)
        self._controls = ControlBoard()  # holding/SunSpec echo during a threaded tick
        now = self.now
        for cell in self._assets.values():
            cell.snapshot = self._snapshot(cell, now)

    # ----------------------------------------------------------------- read side
    @property
    def now(self) -> datetime:
        """Simulated UTC time."""
        return self.start_time + timedelta(seconds=self.sim_time_s)

    @property
    def sites(self) -> tuple[Site, ...]:
        return self.config.sites

    @property
    def specs(self) -> tuple[AssetSpec, ...]:
        return self.config.assets

    def spec(self, asset_id: str) -> AssetSpec:
        return self._cell(asset_id).spec

    def has_asset(self, asset_id: str) -> bool:
        return asset_id in self._assets

    def snapshot(self, asset_id: str) -> Snapshot:
        snap = self._cell(asset_id).snapshot
        assert snap is not None
        return snap

    def snapshots(self) -> list[Snapshot]:
        return [c.snapshot for c in self._assets.values() if c.snapshot is not None]

    def control(self, asset_id: str) -> AssetControl:
        """Safe to call from the loop while a tick runs in a worker thread (sim/control.py)."""
        return self._controls.read(self._cell(asset_id))

    def active_dispatch(self, asset_id: str) -> DispatchRecord | None:
        return self._cell(asset_id).active

    def dispatch_record(self, dispatch_id: str) -> DispatchRecord | None:
        return self._log.get(dispatch_id)

    def dispatches(
        self,
        asset_id: str | None = None,
        status: DispatchStatus | None = None,
        limit: int = 100,
    ) -> list[DispatchRecord]:
        """Newest first."""
        return self._log.query(asset_id, status, limit)

    def add_dispatch_listener(self, listener: DispatchListener) -> None:
        """``listener`` is called (synchronously) with every new or changed record."""
        self._log.add_listener(listener)

    def remove_dispatch_listener(self, listener: DispatchListener) -> None:
        """Stop calling ``listener`` (a scenario's scorecard at the end of its run)."""
        self._log.remove_listener(listener)

    # ----------------------------------------------------------------- commands
    def dispatch(self, req: DispatchRequest) -> DispatchRecord:
        """Validate and record ``req``; accepted ones take effect at once. Raises
        :class:`UnknownAssetError` for an unknown asset (nothing is recorded then)."""
        cell = self._cell(req.asset_id)
        reason = validate(cell.spec, cell.soc_mwhr, cell.tripped, req)
        now = self.now
        duration = req.duration_s
        # mvar omitted: the reactive setpoint in effect stays (P and Q are separate registers
        # on a real PCS); the record keeps the pair that is in effect.
        mvar = req.mvar
        if mvar is None and cell.spec.model is not None and cell.spec.model.reactive is not None:
            mvar = cell.setpoint_mvar
        record = DispatchRecord(
            id=self._new_id(),
            asset_id=req.asset_id,
            mw=req.mw,
            duration_s=duration,
            status=DispatchStatus.REJECTED if reason else DispatchStatus.ACCEPTED,
            reason=reason,
            source=req.source,
            client=req.client,
            submitted_at=now,
            ended_at=now if reason else None,
            mvar=mvar,
        )
        if reason is None:
            self._end_active(cell, DispatchStatus.SUPERSEDED)
            cell.active = record
            cell.active_end_s = None if duration is None else self.sim_time_s + duration
            cell.setpoint_mw = req.mw
            cell.setpoint_mvar = mvar or 0.0
            if cell.latched & Alarm.WATCHDOG:
                cell.latched &= ~Alarm.WATCHDOG
            if req.source is DispatchSource.MODBUS:
                # The write itself proves the master is alive: the watchdog runs from here.
                cell.heartbeat_changed_s = self.sim_time_s
        self._store(record)
        return record

    def heartbeat(self, asset_id: str, value: int) -> None:
        """A heartbeat register write; only a change counts (DESIGN §4 watchdog)."""
        cell = self._cell(asset_id)
        if value != cell.heartbeat:
            cell.heartbeat = value
            cell.heartbeat_changed_s = self.sim_time_s

    def set_watchdog_timeout(self, asset_id: str, seconds: float) -> None:
        cell = self._cell(asset_id)
        cell.watchdog_timeout_s = max(seconds, 0.0)

    def trip(self, asset_id: str, *, over_temperature: bool = False) -> None:
        """Trip the asset (fault injection): target 0, active dispatch interrupted.
        ``over_temperature``: the trip was thermal (restored from the database)."""
        cell = self._cell(asset_id)
        cell.tripped = True
        cell.latched |= Alarm.TRIP | (Alarm.OVER_TEMPERATURE if over_temperature else Alarm(0))
        self._end_active(cell, DispatchStatus.INTERRUPTED)
        cell.setpoint_mw = 0.0
        cell.setpoint_mvar = 0.0
        cell.snapshot = self._snapshot(cell, self.now)

    def set_device_fault(self, asset_id: str, fault: DeviceFault | None) -> None:
        """The device faults in effect for the asset (DESIGN §11; None = none), from now on."""
        cell = self._cell(asset_id)
        cell.apply_fault(fault)
        cell.snapshot = self._snapshot(cell, self.now)

    def reset_fault(self, asset_id: str) -> None:
        cell = self._cell(asset_id)
        cell.tripped = False
        cell.latched &= ~(Alarm.TRIP | Alarm.OVER_TEMPERATURE)
        cell.snapshot = self._snapshot(cell, self.now)

    def restore(
        self,
        asset_id: str,
        *,
        soc_mwhr: float,
        current_mw: float,
        active: DispatchRecord | None = None,
        remaining_s: float | None = None,
        temperature_c: float | None = None,
        current_mvar: float = 0.0,
        heartbeat: int | None = None,
        heartbeat_age_s: float = 0.0,
        watchdog_timeout_s: float | None = None,
        watchdog_alarm: bool = False,
    ) -> None:
        """Put an asset back to a persisted state (used on start-up by the storage layer).
        ``active`` is re-applied with ``remaining_s`` left (None = holds); temperature and Q
        apply only to an asset whose §10 model has a thermal / reactive part. The watchdog
        (DESIGN §4) continues from ``heartbeat`` last changed ``heartbeat_age_s`` simulated
        seconds ago (0: the timer restarts now), with a timeout written over Modbus kept and
        its latched alarm; a trip is restored with :meth:`trip`."""
        cell = self._cell(asset_id)
        spec = cell.spec
        soc = min(max(soc_mwhr, 0.0), spec.capacity_mwhr)
        mw = min(max(current_mw, spec.min_mw), spec.max_mw)
        cell.soc_mwhr = soc
        cell.current_mw = mw
        cell.active = active
        cell.setpoint_mw = active.mw if active is not None else 0.0
        cell.setpoint_mvar = (active.mvar or 0.0) if active is not None else 0.0
        cell.active_end_s = None if remaining_s is None else self.sim_time_s + remaining_s
        cell.heartbeat_changed_s = self.sim_time_s - max(heartbeat_age_s, 0.0)
        if heartbeat is not None:
            cell.heartbeat = heartbeat
        if watchdog_timeout_s is not None:
            cell.watchdog_timeout_s = max(watchdog_timeout_s, 0.0)
        if watchdog_alarm:
            cell.latched |= Alarm.WATCHDOG
        model = cell.model
        thermal = model is not None and model.params.thermal is not None
        if thermal and temperature_c is not None and math.isfinite(temperature_c):
            cell.temperature_c = temperature_c
        if model is not None and model.params.reactive is not None and math.isfinite(current_mvar):
            s_max = model.params.reactive.s_max_mva
            cell.current_mvar = min(max(current_mvar, -s_max), s_max)
        if active is not None:
            self._store(active)
        cell.snapshot = self._snapshot(cell, self.now)

    def watchdog_states(self) -> dict[str, tuple[float, float]]:
        """``(timeout_s, seconds since the heartbeat last changed)`` of every asset whose
        watchdog is running (a Modbus dispatch in effect) or whose timeout was written over
        Modbus: what a restarted process needs to continue the watchdog (DESIGN §15)."""
        now = self.sim_time_s
        return {
            aid: (c.watchdog_timeout_s, now - c.heartbeat_changed_s)
            for aid, c in self._assets.items()
            if c.watchdog_timeout_s != c.spec.watchdog_timeout_s
            or c.watchdog_deadline_s() is not None
        }

    def load_records(self, records: Iterable[DispatchRecord]) -> None:
        """Seed the in-memory log (oldest first) without notifying listeners."""
        self._log.load(records)

    def resume_at(self, start_time: datetime) -> None:
        """Move the simulated start time before the first tick (the storage layer resumes a
        persisted run after its last telemetry timestamp, so ``(asset_id, ts)`` never repeats)."""
        if self.tick_count or self.sim_time_s:
            raise RuntimeError("resume_at is only allowed before the first tick")
        if start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware (UTC)")
        self.start_time = start_time.astimezone(UTC)
        now = self.now
        for cell in self._assets.values():
            cell.snapshot = self._snapshot(cell, now)

    # ----------------------------------------------------------------- registration
    # Run-time changes of the fleet (DESIGN §14). Called between ticks (the tick is
    # synchronous), so an asset is either wholly in a tick or not at all.
    def add_site(self, site: Site) -> None:
        if site.id in self._sites:
            raise ValueError(f"site {site.id} exists")
        self._sites[site.id] = site
        self.config = replace(self.config, sites=(*self.config.sites, site))

    def remove_site(self, site_id: str) -> Site:
        if any(c.spec.site_id == site_id for c in self._assets.values()):
            raise ValueError(f"site {site_id} still has assets")
        site = self._sites.pop(site_id)
        self.config = replace(self.config, sites=tuple(self._sites.values()))
        return site

    def add_asset(self, spec: AssetSpec) -> Snapshot:
        """A new asset at its initial state; it ticks from the next tick."""
        if spec.id in self._assets or spec.site_id not in self._sites:
            raise ValueError(f"asset {spec.id} exists or site {spec.site_id} is unknown")
        cell = AssetCell(spec)
        cell.heartbeat_changed_s = self.sim_time_s
        cell.snapshot = self._snapshot(cell, self.now)
        self._assets[spec.id] = cell
        self._retired.pop(spec.id, None)
        self._sync_specs()
        return cell.snapshot

    def replace_asset(self, spec: AssetSpec) -> Snapshot:
        """New parameters for an existing asset. SOC (MWh) and MW carry over, clamped to the
        new limits; a dispatch in effect outside the new [min_mw, max_mw] is interrupted."""
        cell = self._cell(spec.id)
        cell.spec = spec
        cell.apply_fault(cell.fault)  # limits and the §10 model of the new spec
        model = cell.model
        if model is None or model.params.thermal is None:
            cell.temperature_c = None
        elif cell.temperature_c is None:  # thermal model newly added: starts at initial_c
            cell.temperature_c = model.initial_temperature_c()
        if model is None or model.params.reactive is None:
            cell.current_mvar = cell.setpoint_mvar = 0.0
        cell.soc_mwhr = min(max(cell.soc_mwhr, spec.soc_min_mwhr), spec.soc_max_mwhr)
        cell.current_mw = min(max(cell.current_mw, spec.min_mw), spec.max_mw)
        active = cell.active
        if active is not None and not spec.min_mw <= active.mw <= spec.max_mw:
            self._end_active(cell, DispatchStatus.INTERRUPTED)
            cell.setpoint_mw = 0.0
        cell.snapshot = self._snapshot(cell, self.now)
        self._sync_specs()
        return cell.snapshot

    def remove_asset(self, asset_id: str) -> AssetSpec:
        """Take an asset out of the fleet; its dispatch in effect ends ``interrupted``. Its
        spec stays known (:meth:`retired_spec`) so its history can still be read."""
        cell = self._cell(asset_id)
        self._end_active(cell, DispatchStatus.INTERRUPTED)
        del self._assets[asset_id]
        self._retired[asset_id] = cell.spec
        self._sync_specs()
        return cell.spec

    def retired_spec(self, asset_id: str) -> AssetSpec | None:
        """The spec of an asset removed during this run, else None."""
        return self._retired.get(asset_id)

    def _sync_specs(self) -> None:
        self.config = replace(self.config, assets=tuple(c.spec for c in self._assets.values()))

    # ----------------------------------------------------------------- time
    def advance(self, dt_s: float) -> list[Snapshot]:
        """Advance simulated time by ``dt_s`` seconds; return every asset's new snapshot."""
        if dt_s < 0.0:
            raise ValueError("dt_s must be >= 0")
        self._controls.begin_tick()
        try:
            return self._advance(dt_s)
        finally:
            self._controls.end_tick()

    def _advance(self, dt_s: float) -> list[Snapshot]:
        t0 = self.sim_time_s
        t1 = t0 + dt_s
        end_time = self.start_time + timedelta(seconds=t1)
        out: list[Snapshot] = []
        append = out.append
        integrate = physics.integrate
        target_for = physics.target_for
        snapshot = self._snapshot
        # §10 assets with no event in this tick are stepped together on numpy columns
        # (sim/batch.py, sim/columnar.py); the rest below, one by one.
        batch = self._batch.step(self._assets.values(), t0, t1, self.grid, end_time)
        for cell in self._assets.values():
            if cell.model is not None:
                snap = batch.pop(cell, None) if batch else None
                if snap is None:
                    self._advance_asset(cell, t0, t1)
                    snap = snapshot(cell, end_time, t1)
            else:
                if cell.active is None or (
                    cell.active_end_s is None and cell.watchdog_deadline_s() is None
                ):
                    # Fast path (no lifecycle event can fall inside the tick): one integration,
                    # none at all for an idle asset (0 MW, setpoint 0: nothing moves).
                    mw = cell.current_mw
                    if mw != 0.0 or cell.setpoint_mw != 0.0:
                        lim = cell.lim
                        soc = cell.soc_mwhr
                        target = target_for(lim, soc, cell.setpoint_mw, cell.tripped, mw)
                        cell.soc_mwhr, cell.current_mw, _, _, _ = integrate(
                            lim, soc, mw, target, dt_s
                        )
                else:
                    self._advance_asset(cell, t0, t1)
                snap = snapshot(cell, end_time, t1)
            cell.snapshot = snap
            append(snap)
        self.sim_time_s = t1
        self.tick_count += 1
        return out

    def _advance_asset(self, cell: AssetCell, t0: float, t1: float) -> None:
        """Advance one asset, splitting the tick where its dispatch ends or its watchdog
        expires so each event happens at its exact simulated instant."""
        lim = cell.lim
        t = t0
        while True:
            stop = t1
            end_s = cell.active_end_s
            if end_s is not None and end_s < stop:
                stop = max(end_s, t)
            deadline = cell.watchdog_deadline_s()
            if deadline is not None and deadline < stop:
                stop = max(deadline, t)
            if stop > t:
                if cell.model is not None:
                    self._step_model(cell, cell.model, stop - t, stop)
                else:
                    soc, mw = cell.soc_mwhr, cell.current_mw
                    target = physics.target_for(lim, soc, cell.setpoint_mw, cell.tripped, mw)
                    cell.soc_mwhr, cell.current_mw, _, _, _ = physics.integrate(
                        lim, soc, mw, target, stop - t
                    )
                t = stop
            if end_s is not None and end_s <= t + _EVENT_EPS_S:
                self._controls.before_change(cell)
                self._end_active(cell, DispatchStatus.COMPLETED, at_s=end_s)
                cell.setpoint_mw = 0.0
                cell.setpoint_mvar = 0.0
            deadline = cell.watchdog_deadline_s()
            if deadline is not None and deadline <= t + _EVENT_EPS_S:
                self._controls.before_change(cell)
                self._end_active(cell, DispatchStatus.REVERTED, at_s=deadline)
                cell.setpoint_mw = 0.0
                cell.setpoint_mvar = 0.0
                cell.latched |= Alarm.WATCHDOG
            if t >= t1:
                return

    def _step_model(self, cell: AssetCell, model: AssetModel, dt_s: float, end_s: float) -> None:
        """One DESIGN §10 step; an over-temperature trip ends the dispatch in effect."""
        r = model.step(
            cell.soc_mwhr,
            cell.current_mw,
            cell.current_mvar,
            cell.temperature_c,
            cell.setpoint_mw,
            cell.setpoint_mvar,
            self.grid,
            cell.tripped,
            dt_s,
        )
        cell.soc_mwhr = r.soc_mwhr
        cell.current_mw = r.current_mw
        cell.current_mvar = r.current_mvar
        cell.temperature_c = r.temperature_c
        if r.over_temperature:
            self._controls.before_change(cell)
            cell.tripped = True
            cell.latched |= Alarm.TRIP | Alarm.OVER_TEMPERATURE
            # Stamped at the end of the (sub-)step in which trip_c was reached.
            self._end_active(cell, DispatchStatus.INTERRUPTED, at_s=end_s)
            cell.setpoint_mw = 0.0
            cell.setpoint_mvar = 0.0

    # ----------------------------------------------------------------- grid
    def set_grid(self, frequency_hz: float | None = None, ambient_c: float | None = None) -> None:
        """Set the fleet-wide grid frequency and/or ambient temperature (DESIGN §10);
        ``None`` leaves a value unchanged. Takes effect from the next tick."""
        grid = self.grid
        self.grid = GridState(
            grid.frequency_hz if frequency_hz is None else frequency_hz,
            grid.ambient_c if ambient_c is None else ambient_c,
        )

    # ----------------------------------------------------------------- helpers
    def _cell(self, asset_id: str) -> AssetCell:
        try:
            return self._assets[asset_id]
        except KeyError:
            raise UnknownAssetError(asset_id) from None

    def _snapshot(self, cell: AssetCell, ts: datetime, sim_s: float | None = None) -> Snapshot:
        return snapshot_of(
            cell, ts, self.sim_time_s if sim_s is None else sim_s, self.grid.frequency_hz
        )

    def _end_active(
        self, cell: AssetCell, status: DispatchStatus, at_s: float | None = None
    ) -> None:
        active = cell.active
        if active is None:
            return
        at = self.now if at_s is None else self.start_time + timedelta(seconds=at_s)
        ended = DispatchRecord(
            id=active.id,
            asset_id=active.asset_id,
            mw=active.mw,
            duration_s=active.duration_s,
            status=status,
            reason=active.reason,
            source=active.source,
            client=active.client,
            submitted_at=active.submitted_at,
            ended_at=at,
            mvar=active.mvar,
        )
        cell.active = None
        cell.active_end_s = None
        self._store(ended)

    def _store(self, record: DispatchRecord) -> None:
        self._log.store(record)

    def hold_notifications(self) -> None:
        """Queue dispatch-listener calls until :meth:`release_notifications` (the runtime
        computes a tick in a worker thread; its listeners — database queue, scorecard, bus —
        must run on the event loop)."""
        self._log.hold()

    def release_notifications(self) -> None:
        """Call the listeners with every record queued since :meth:`hold_notifications`, in
        order, and notify directly again."""
        self._log.release()
