"""A restarted agent back where its shard left off (DESIGN §15): registrations, then the last
published state, from JetStream and the KV bucket (what ``agent.py`` keeps there)."""

from __future__ import annotations

import dataclasses
import logging

from ..fault_wiring import FaultWiring
from ..faults import Fault, FaultBook
from ..registry import RegistrationError, Registry
from ..sim import DispatchRecord, Fleet, Snapshot
from ..sim.model import Alarm, Status
from . import wire
from .bus import Bus
from .wire import Shard

log = logging.getLogger("bess_sim.cluster")


async def load_registered(bus: Bus, shard: Shard, registry: Registry) -> None:
    """Sites and this shard's assets registered over the headend's API (DESIGN §14), kept in
    the KV bucket: added (ports bound) before the state is resumed."""
    items = await bus.kv_items()
    mine = f"asset.{shard.index}."
    todo = [(k, v) for k, v in sorted(items.items()) if k.startswith("site.")]
    todo += [(k, v) for k, v in items.items() if k.startswith(mine)]
    for key, value in todo:
        try:
            if key.startswith("site."):
                await registry.add_site(wire.loads(value))
            else:
                await registry.add_asset(wire.loads(value))
        except RegistrationError as exc:
            log.warning("agent: registration %s not restored: %s", key, exc.detail)


async def resume(
    bus: Bus, shard: Shard, fleet: Fleet, faults: FaultBook, fault_wiring: FaultWiring
) -> None:
    """Back to the last state this shard published: SOC, MW (and §10 temperature/MVAr),
    trip, latched alarms and the watchdog's timer from its last telemetry message, the
    dispatch in effect, open faults and the grid from the KV bucket; simulated time
    continues after the last published tick, so no (asset, tick) repeats."""
    grid = await bus.kv_get(wire.GRID_KEY)
    if grid is not None:
        fleet.grid = wire.decode_grid(grid)
    batch = await last_published(bus, shard)
    if batch is None:
        return
    last = {s.asset_id: s for s in batch.snapshots if fleet.has_asset(s.asset_id)}
    if not last:
        return
    last_ts = max(s.timestamp for s in last.values())
    fleet.resume_at(last_ts)
    active: dict[str, DispatchRecord] = {}
    open_faults: list[Fault] = []
    mine = wire.fault_key(shard.index, "")
    for key, value in (await bus.kv_items()).items():
        if key in last:
            active[key] = wire.decode_record(wire.loads(value))
        elif key.startswith(mine):
            open_faults.append(wire.decode_fault(wire.loads(value)))
    tripped = 0
    for aid, snap in last.items():
        rec = active.get(aid)
        remaining: float | None = None
        if rec is not None and rec.duration_s is not None:
            remaining = rec.duration_s - (last_ts - rec.submitted_at).total_seconds()
            if remaining <= 0:
                rec = None  # it ended while the agent was down
        timeout_s, age_s = batch.watchdog.get(aid, (None, 0.0))
        fleet.restore(
            aid,
            soc_mwhr=snap.soc_mwhr,
            current_mw=snap.current_mw,
            active=rec,
            remaining_s=remaining,
            temperature_c=snap.temperature_c,
            current_mvar=snap.current_mvar,
            heartbeat=snap.heartbeat,
            heartbeat_age_s=age_s,
            watchdog_timeout_s=timeout_s,
            watchdog_alarm=bool(snap.alarms & Alarm.WATCHDOG),
        )
        if snap.status == Status.FAULT:
            # Tripped stays tripped until reset (a trip interrupted its dispatch then, so
            # none is in the bucket for it).
            fleet.trip(aid, over_temperature=bool(snap.alarms & Alarm.OVER_TEMPERATURE))
            tripped += 1
    # After the assets (a freeze holds the restored snapshot); due ones start or end at the
    # first tick, as they would have.
    faults.restore([f for f in open_faults if f.asset_id is None or f.asset_id in last])
    fault_wiring.sync()
    log.info(
        "agent %d/%d: resumed %d assets (%d dispatches in effect, %d tripped, %d faults) from %s",
        shard.index,
        shard.count,
        len(last),
        len(active),
        tripped,
        len(open_faults),
        last_ts.isoformat(),
    )


async def last_published(bus: Bus, shard: Shard) -> wire.TelemetryBatch | None:
    """The newest published snapshot of each asset of this shard (every part of the last
    tick; a part the agent died before publishing leaves its assets one tick older), with
    the watchdog timers of the same messages."""
    s = bus.subjects
    batches: list[wire.TelemetryBatch] = []
    part, parts = 0, 1
    while part < parts:
        data = await bus.last_message(s.telemetry_stream, s.telemetry(shard.index, part))
        if data is None:
            break
        batch = wire.decode_snapshots(data)
        batches.append(batch)
        if part == 0:
            parts = batch.parts
        part += 1
    if not batches:
        return None
    newest: dict[str, Snapshot] = {}
    watchdog: dict[str, tuple[float, float]] = {}
    for batch in batches:
        for snap in batch.snapshots:
            seen = newest.get(snap.asset_id)
            if seen is None or snap.timestamp > seen.timestamp:
                newest[snap.asset_id] = snap
        watchdog.update(batch.watchdog)
    return dataclasses.replace(
        batches[0], snapshots=list(newest.values()), watchdog=watchdog, part=0, parts=1
    )
