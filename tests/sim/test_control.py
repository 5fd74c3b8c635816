"""The command-state echo read while a tick runs in another thread (sim/control.py)."""

from __future__ import annotations

import sys
import threading

import pytest

from bess_sim.sim import DispatchRequest
from bess_sim.sim.cell import AssetCell
from bess_sim.sim.control import ControlBoard
from tests.sim.test_fleet import SPEC, make_fleet


def test_a_read_during_a_tick_sees_the_state_before_the_change_then_after() -> None:
    board, cell = ControlBoard(), AssetCell(SPEC)
    cell.setpoint_mw, cell.setpoint_mvar = 20.0, 5.0
    board.begin_tick()
    assert board.read(cell).setpoint_mw == 20.0  # live: the tick has not changed it
    board.before_change(cell)
    cell.setpoint_mw = 0.0  # the tick is half-way through ending the dispatch
    seen = board.read(cell)
    assert (seen.setpoint_mw, seen.setpoint_mvar) == (20.0, 5.0)
    cell.setpoint_mvar = 0.0
    board.before_change(cell)  # a second change in the same tick keeps the first copy
    assert board.read(cell).setpoint_mw == 20.0
    board.end_tick()
    after = board.read(cell)
    assert (after.setpoint_mw, after.setpoint_mvar) == (0.0, 0.0)
    board.begin_tick()  # the next tick starts from nothing kept
    assert board.read(cell).setpoint_mw == 0.0


def test_the_fleet_keeps_the_pre_tick_echo_when_a_dispatch_ends_in_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = make_fleet()
    fleet.dispatch(DispatchRequest("a1", 10.0, duration_s=0.5))
    echoes = []
    original = ControlBoard.before_change

    def spy(board: ControlBoard, cell: AssetCell) -> None:
        original(board, cell)
        cell.setpoint_mw = -99.0  # as if the tick were half-way: must not be visible
        echoes.append(fleet.control("a1"))
        cell.setpoint_mw = 10.0

    monkeypatch.setattr(ControlBoard, "before_change", spy)
    fleet.advance(1.0)
    assert [e.setpoint_mw for e in echoes] == [10.0]
    assert fleet.control("a1").setpoint_mw == 0.0  # ended within the tick


def _record_something() -> None:
    """Stands for ``Fleet._end_active`` between two field writes of a real tick."""


def test_reads_from_another_thread_never_mix_two_states() -> None:
    """A writer thread plays ticks that change both setpoints field by field; a reader on
    this thread must only ever see them equal. Fails if ``read`` drops the re-check."""
    board, cell = ControlBoard(), AssetCell(SPEC)
    stop = threading.Event()

    def ticks() -> None:
        value = 0.0
        while not stop.is_set():
            board.begin_tick()
            for _ in range(50):
                value += 1.0
                board.before_change(cell)
                cell.setpoint_mw = value
                for _ in range(3):  # calls: CPython may switch threads here, as in a tick
                    _record_something()
                cell.setpoint_mvar = value
            board.end_tick()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    writer = threading.Thread(target=ticks)
    writer.start()
    mixed = 0
    try:
        for _ in range(200_000):
            ctl = board.read(cell)
            mixed += ctl.setpoint_mw != ctl.setpoint_mvar
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(switch)
    assert mixed == 0
    assert cell.setpoint_mw > 100  # the writer did run concurrently
