"""The headend's fault book (DESIGN §11 over §15): the faults its agents hold, as they report
them, never scheduled or applied here.

Agents own the faults of their assets (their own ``FaultBook`` and wiring, the code
``bess-sim run`` uses); every change is published per fault on the faults stream and the
command answers carry the fault too. This mirror keeps them in the order they last changed,
as a single process does, so ``GET /faults`` filters and orders the same way, and the fault
records reach the headend's database through the same listener. What the REST surface shows
under a view fault (``soc_bias``, ``frozen_telemetry``, ``value_override``) is computed by
the agent and sent with its telemetry (``rest`` rows): the headend shows those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..faults import Fault, FaultBook, FaultState
from ..sim import Fleet, Snapshot
from .wire import TelemetryBatch

_RANK = {FaultState.SCHEDULED: 0, FaultState.ACTIVE: 1, FaultState.ENDED: 2}


class MirrorFaultBook(FaultBook):
    def __init__(self, fleet: Fleet, *, seed: int) -> None:
        super().__init__(fleet, seed=seed)
        self._rest: dict[str, Snapshot] = {}  # asset id → what REST shows, when it differs

    def record(self, fault: Fault) -> None:
        """A fault as an agent reports it (command answer or stream). A state older than
        the one known (the stream trailing an answer) is ignored."""
        known = self._log.get(fault.id)
        if known == fault:
            return
        if known is not None and _RANK[fault.state] < _RANK[known.state]:
            return
        if fault.state is FaultState.ENDED:
            self._open.pop(fault.id, None)
        else:
            self._open[fault.id] = fault
        self._store(fault)
        self._flush()

    def end_lost(self, fault_id: str) -> Fault:
        """A fault its agent no longer has (it restarted before the fault was in the KV
        bucket), ended here now in the agents' simulated time."""
        fault = self._log[fault_id]
        ended = replace(
            fault,
            state=FaultState.ENDED,
            ended_at=self.fleet.now,
            end_reason="deleted (its agent had restarted)",
        )
        self.record(ended)
        return ended

    def apply_views(self, batch: TelemetryBatch) -> None:
        """The batch's assets are shown as the agent says (its ``rest`` rows), or as is."""
        if not self._rest and not batch.rest:
            return
        self.drop_views(s.asset_id for s in batch.snapshots)
        for snap in batch.rest:
            self._rest[snap.asset_id] = snap

    def drop_views(self, asset_ids: Iterable[str]) -> None:
        for aid in asset_ids:
            self._rest.pop(aid, None)

    # ------------------------------------------------------------ FaultBook
    def present(self, snapshots: Sequence[Snapshot], surface: str) -> Sequence[Snapshot]:
        rest = self._rest
        if surface != "rest" or not rest:
            return snapshots
        return [rest.get(s.asset_id, s) for s in snapshots]

    def present_one(self, snap: Snapshot, surface: str) -> Snapshot:
        if surface != "rest":
            return snap
        return self._rest.get(snap.asset_id, snap)

    def advance(self) -> bool:
        # Faults start and end at the agents' ticks; their records say so.
        return False

    def _rebuild(self) -> None:
        # No effects here: the agents apply them (a device fault on this mirror's fleet
        # would overwrite the mirrored snapshot with a locally computed one).
        return
