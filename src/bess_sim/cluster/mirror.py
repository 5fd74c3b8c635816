"""The headend's fleet (DESIGN §15): assets.yaml's assets, whose snapshots and dispatch
records are the ones the shard agents published, never computed here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..sim import AssetSpec, DispatchRecord, Fleet, FleetConfig, Snapshot
from ..sim.model import Status
from . import wire

#: Tick timestamps whose simulated time the mirror keeps (a scenario sample needs the recent
#: few; a manual step's ticks are mirrored before it is answered).
_SIM_TIMES_KEPT = 4096


class MirrorFleet(Fleet):
    """A ``Fleet`` that never advances: the agents' snapshots and records are written in."""

    def __init__(self, config: FleetConfig, start_time: datetime) -> None:
        self.owner: dict[str, int] = {}  # asset id → shard index (learnt from telemetry)
        self._latest: datetime | None = None
        #: tick timestamp → the agents' simulated seconds at it (recent ticks): a scenario's
        #: samples carry the agents' own time (scenario_target.py).
        self.sim_time_at: dict[datetime, float] = {}
        super().__init__(config, start_time)
        # Nothing is known of an asset until its agent reports: offline, not a made-up idle.
        for cell in self._assets.values():
            if cell.snapshot is not None:
                cell.snapshot = cell.snapshot._replace(status=int(Status.OFFLINE))

    @property
    def now(self) -> datetime:
        # The agents' simulated time (the newest tick seen), not a clock of our own.
        return self._latest if self._latest is not None else super().now

    def apply(self, batch: wire.TelemetryBatch) -> list[Snapshot]:
        """Write the batch's snapshots in; returns those of assets this fleet has."""
        known = []
        cells, owner, shard = self._assets, self.owner, batch.shard
        for snap in batch.snapshots:  # one lookup per row: ~100k rows/s at 100k assets
            cell = cells.get(snap.asset_id)
            if cell is None:
                continue  # an asset the headend's assets.yaml does not list
            cell.snapshot = snap
            owner[snap.asset_id] = shard
            known.append(snap)
        if known:
            ts = known[-1].timestamp
            if self._latest is None or ts > self._latest:
                self._latest = ts
            self.sim_time_at[ts] = batch.sim_time_s
            if len(self.sim_time_at) > _SIM_TIMES_KEPT:
                del self.sim_time_at[next(iter(self.sim_time_at))]
        self.tick_count = max(self.tick_count, batch.tick)
        self.sim_time_s = max(self.sim_time_s, batch.sim_time_s)
        return known

    def add_asset(self, spec: AssetSpec) -> Snapshot:
        snap = super().add_asset(spec)
        self._unreported_offline(spec.id)
        return snap

    # The database's restore (DESIGN §7) writes its last rows in at start-up: shown, but
    # still ``offline`` until the agent reports (its state is the agent's, not the rows').
    def restore(self, asset_id: str, **kwargs: Any) -> None:
        super().restore(asset_id, **kwargs)
        self._unreported_offline(asset_id)

    def trip(self, asset_id: str, *, over_temperature: bool = False) -> None:
        super().trip(asset_id, over_temperature=over_temperature)
        self._unreported_offline(asset_id)

    def _unreported_offline(self, asset_id: str) -> None:
        cell = self._cell(asset_id)
        if asset_id not in self.owner and cell.snapshot is not None:
            cell.snapshot = cell.snapshot._replace(status=int(Status.OFFLINE))

    def mark_offline(self, shard: int) -> list[Snapshot]:
        """Status ``offline`` on every asset of ``shard`` (the rest of the snapshot is the
        last one published, so SOC and MW stay readable)."""
        out = []
        for aid, owner in self.owner.items():
            if owner == shard:
                cell = self._cell(aid)
                snap = cell.snapshot
                if snap is not None and snap.status != Status.OFFLINE:
                    cell.snapshot = snap._replace(status=int(Status.OFFLINE))
                    out.append(cell.snapshot)
        return out

    def record(self, rec: DispatchRecord) -> None:
        """An agent's record (new, or a new status of a known one): stored and passed to the
        listeners (metrics, database) as if made here."""
        known = self._log.get(rec.id)
        if known == rec:
            return  # the command's answer and the stream carry the same record
        if known is not None and known.status != rec.status and rec.status == "accepted":
            return  # a redelivered older version (accepted ends once, never starts again)
        self._store(rec)
