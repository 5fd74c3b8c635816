"""The fleet's dispatch log: bounded, newest last, with listeners that can be held while a
tick computes in a worker thread."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from .dispatch import DispatchRecord, DispatchStatus

DispatchListener = Callable[[DispatchRecord], None]


class DispatchLog:
    """Every dispatch record by id (oldest evicted past ``size``) and who hears of changes."""

    def __init__(self, size: int) -> None:
        self._records: OrderedDict[str, DispatchRecord] = OrderedDict()
        self._size = size
        self._listeners: list[DispatchListener] = []
        self._held: list[DispatchRecord] | None = None  # see hold

    def get(self, dispatch_id: str) -> DispatchRecord | None:
        return self._records.get(dispatch_id)

    def query(
        self, asset_id: str | None, status: DispatchStatus | None, limit: int
    ) -> list[DispatchRecord]:
        """Newest first."""
        out: list[DispatchRecord] = []
        for rec in reversed(self._records.values()):
            if asset_id is not None and rec.asset_id != asset_id:
                continue
            if status is not None and rec.status is not status:
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    def add_listener(self, listener: DispatchListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: DispatchListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def load(self, records: Iterable[DispatchRecord]) -> None:
        """Seed (oldest first) without notifying listeners."""
        for rec in records:
            self._records[rec.id] = rec
        self._trim()

    def store(self, record: DispatchRecord) -> None:
        """A new record or a new status of a known one; listeners hear of it (or later, while
        held)."""
        self._records[record.id] = record
        self._trim()
        if self._held is not None:
            self._held.append(record)
            return
        for listener in self._listeners:
            listener(record)

    def hold(self) -> None:
        """Queue listener calls until :meth:`release`."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Call the listeners with every record queued since :meth:`hold`, in order."""
        held, self._held = self._held, None
        for record in held or ():
            for listener in self._listeners:
                listener(record)

    def _trim(self) -> None:
        while len(self._records) > self._size:
            self._records.popitem(last=False)
