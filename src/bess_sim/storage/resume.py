"""Apply a restore plan (``restore.py``, pure) to a fleet from the database's latest rows."""

from __future__ import annotations

import logging

from ..sim import Fleet
from . import rows
from .db import Database
from .restore import plan_restore

log = logging.getLogger("bess_sim.storage")


async def restore_from(
    db: Database, fleet: Fleet, recent_dispatches: int
) -> tuple[bool, list[tuple[str, bool]]]:
    """Restore SOC / MW / §10 state / dispatch in effect; returns (anything restored, the
    tripped assets as (id, over_temperature)). The only database write (closing dispatches
    whose time passed) comes before any in-memory change, so a failure leaves the fleet
    untouched."""
    ids = [a.id for a in fleet.specs]
    latest = {str(r["asset_id"]): r for r in await db.latest_telemetry(ids)}
    in_effect = [rows.dispatch_record(r) for r in await db.dispatches_in_effect(ids)]
    recent = [rows.dispatch_record(r) for r in await db.recent_dispatches(
        recent_dispatches
    )]  # fmt: skip
    plan = plan_restore(fleet.start_time, ids, latest, in_effect)
    await db.end_dispatches(
        (r.id, r.status.value, r.ended_at) for r in plan.ended if r.ended_at is not None
    )
    # From here on only in-memory changes: nothing below can fail half-way.
    ended = {r.id: r for r in plan.ended}
    fleet.load_records(ended.get(r.id, r) for r in recent)
    if plan.resume_at is not None:
        fleet.resume_at(plan.resume_at)
    for a in plan.assets:
        soc = a.soc_mwhr if a.soc_mwhr is not None else fleet.snapshot(a.asset_id).soc_mwhr
        fleet.restore(
            a.asset_id,
            soc_mwhr=soc,
            current_mw=a.current_mw,
            active=a.active,
            remaining_s=a.remaining_s,
            temperature_c=a.temperature_c,
            current_mvar=a.current_mvar,
        )
    if plan.resume_at is not None:
        log.info(
            "database: restored %d assets from their latest telemetry (%d dispatches "
            "re-applied, %d closed); simulated time resumes at %s",
            len(plan.assets),
            sum(a.active is not None for a in plan.assets),
            len(plan.ended),
            fleet.start_time.isoformat(),
        )
    else:
        log.info("database: no telemetry persisted yet; fresh start")
    return bool(plan.assets), [(a.asset_id, a.over_temperature) for a in plan.assets if a.tripped]
