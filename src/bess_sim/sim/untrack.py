"""Keep per-tick snapshots out of the cyclic garbage collector's sight.

A ``Snapshot`` is a NamedTuple, and CPython's collector only untracks *exact* tuples by itself
(``_PyTuple_MaybeUntrack``), so every tick's snapshots were tracked: allocated by the
thousand in the tick, they were promoted to generation 1 and traversed there again. Measured
with ``gc.callbacks`` (10,000 assets at 1 Hz, tick in its worker thread, 1,000 Modbus devices
polled at 1 Hz): generation-1 passes of 3–9 ms, about one per tick, each holding the GIL, so
the event loop answering Modbus waited that long; the objects in generation 1 at those passes
were ~99 % snapshots. Untracked at creation, the same passes take 0.1–1 ms.

Untracking is safe because a snapshot can never be part of a reference cycle: its fields are
str, int, float, None and a datetime (DESIGN §3.6), none of which can refer back to it. It is
freed by reference counting as before. ``PyObject_GC_UnTrack`` is public C API (the "Supporting
Cyclic Garbage Collection" page); on an interpreter without it (no ``ctypes.pythonapi``) this
does nothing. Cost: ~0.3 µs per snapshot (measured), ~3 ms per tick of 10,000 in the tick
thread, which gives the GIL away every switch interval, unlike a collection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _load() -> Callable[[Any], None]:
    try:
        import ctypes

        # Our own prototype: setting argtypes on ctypes.pythonapi's cached function object
        # would change it for every other user in the process.
        proto = ctypes.PYFUNCTYPE(None, ctypes.py_object)
        fn: Callable[[Any], None] = proto(("PyObject_GC_UnTrack", ctypes.pythonapi))
    except (ImportError, AttributeError, OSError):
        return _no_op
    return fn


def _no_op(obj: Any) -> None:
    """The fallback: the object stays tracked (correct, only slower to collect around)."""


#: ``untrack(snapshot)``: remove one atom-only object from the collector's lists. Bound once
#: at import (a read-only function pointer, not state).
untrack: Callable[[Any], None] = _load()
