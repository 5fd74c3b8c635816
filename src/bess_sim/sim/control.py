"""The command state of an asset as the Modbus holding and SunSpec reads echo it, readable
while a tick runs in another thread.

With the tick in a worker thread (tickgate.py), Modbus reads are answered on the event loop
while ``Fleet.advance`` runs. Input reads are safe by construction (one immutable snapshot per
asset, swapped by one assignment); holding and SunSpec reads echo the command state
(setpoint, heartbeat, watchdog timeout, trip, MVAr setpoint) that a tick changes when a
dispatch ends, the watchdog expires or an over-temperature trip fires — several fields, one
after the other. Those reads used to wait for the whole tick (tens of ms at 10,000 assets: a
flaky device to a master polling every 100 ms). Now:

- the tick (the only writer off the loop) calls :meth:`ControlBoard.before_change` before it
  changes an asset's command state, which keeps the state as it was before the tick;
- a read during the tick gets that pre-tick state for an asset the tick has changed and the
  live state otherwise, re-checking after reading the fields (a seqlock: the tick's sequence
  number is odd while it runs), so it never returns a mix of two states.

Every answer is one the asset had as a whole: before this tick, or after. Under the GIL each
attribute access and dict operation is atomic and the two threads' steps interleave in one
order, which is what the re-check relies on. Commands never run during a tick (they wait for
it: tickgate.TickGate), so the tick is the only concurrent writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cell import AssetCell


@dataclass(frozen=True, slots=True)
class AssetControl:
    """Command-side state of an asset, for the Modbus holding-register echo."""

    setpoint_mw: float
    heartbeat: int
    watchdog_timeout_s: float
    tripped: bool
    setpoint_mvar: float = 0.0


def control_of(cell: AssetCell) -> AssetControl:
    return AssetControl(
        cell.setpoint_mw,
        cell.heartbeat,
        cell.watchdog_timeout_s,
        cell.tripped,
        cell.setpoint_mvar,
    )


class ControlBoard:
    """One per fleet: the tick's sequence number and the pre-tick state of what it changed."""

    __slots__ = ("_before", "_seq")

    def __init__(self) -> None:
        self._seq = 0  # odd while a tick runs
        self._before: dict[str, AssetControl] = {}

    def begin_tick(self) -> None:
        # A new dict, not cleared in place: a reader that took the previous one keeps it.
        self._before = {}
        self._seq += 1

    def end_tick(self) -> None:
        self._seq += 1

    def before_change(self, cell: AssetCell) -> None:
        """Call before the tick changes ``cell``'s command state (first call per tick wins)."""
        if self._seq & 1 and cell.spec.id not in self._before:
            self._before[cell.spec.id] = control_of(cell)

    def read(self, cell: AssetCell) -> AssetControl:
        """The asset's command state, whole, even while a tick runs in another thread."""
        aid = cell.spec.id
        while True:
            seq = self._seq
            before = self._before
            if seq & 1:
                kept = before.get(aid)
                if kept is not None:
                    return kept
            ctl = control_of(cell)
            if seq & 1:
                kept = before.get(aid)  # the tick began changing it while we read
                if kept is not None:
                    return kept
            if self._seq == seq:
                return ctl
            # A tick began or ended while we read: read again (at most once per tick).
