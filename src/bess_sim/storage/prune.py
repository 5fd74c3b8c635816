"""Background prune of what left assets.yaml (DESIGN §7 "prune rows of assets no longer in
YAML"), kept off the start-up path.

On TimescaleDB the rows of a removed asset may sit in compressed chunks; deleting them
decompresses, which can be slow or fail (Timescale's per-transaction decompression limit). A
failing prune must not hold up restore and writing, so it runs in its own task, one asset per
transaction, and is retried with exponential backoff until done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .db import Database, Mode, Reconciled

log = logging.getLogger("bess_sim.storage")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def prune_until_done(
    db: Database,
    mode: Mode,
    reconciled: Reconciled,
    site_ids: Sequence[str],
    *,
    source: str,
    retry_initial_s: float,
    retry_max_s: float,
) -> None:
    """Delete each stale asset with its telemetry and dispatches, then the sites left empty;
    log the counts once done. A failure is logged with the next retry delay (the delay
    doubles up to ``retry_max_s``, so a prune that keeps failing logs rarely)."""
    stale = reconciled.stale_assets
    remaining = list(stale)
    sites = reconciled.sites_removed
    telemetry = dispatches = 0
    delay = retry_initial_s
    while True:
        try:
            while remaining:
                t, d = await db.prune_asset(remaining[0], mode)
                telemetry, dispatches = telemetry + t, dispatches + d
                remaining.pop(0)
            sites += await db.prune_sites(site_ids)
            break
        except Exception as exc:
            log.warning(
                "database: pruning %d assets no longer in %s failed (%s); retrying in %.0f s "
                "(restore and writing are not affected)",
                len(remaining),
                source,
                _reason(exc),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2.0, retry_max_s)
    log.warning(
        "database: pruned %d assets no longer in %s (%d telemetry rows, %d dispatches) "
        "and %d sites",
        len(stale),
        source,
        telemetry,
        dispatches,
        sites,
    )
