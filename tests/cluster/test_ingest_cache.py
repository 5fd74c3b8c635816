"""Pure parts of the headend's durable ingest (cluster/ingest.py): the decode cache shares a
message between the two readers, and the dispatch queue tells a written record version from
a pending one (what the record consumer acknowledges on)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from bess_sim.cluster import wire
from bess_sim.cluster.ingest import DecodeCache
from bess_sim.cluster.wire import Shard
from bess_sim.config import load_assets
from bess_sim.sim import DispatchRequest, Fleet
from bess_sim.sim.dispatch import DispatchStatus
from bess_sim.storage.writer import DispatchQueue
from tests.cluster.test_wire import ASSETS


def _fleet() -> Fleet:
    return Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))


def test_a_message_read_twice_is_decoded_once() -> None:
    fleet = _fleet()
    first = wire.encode_snapshots(Shard(0, 1), 1, 1.0, fleet.advance(1.0))
    second = wire.encode_snapshots(Shard(0, 1), 2, 2.0, fleet.advance(1.0))
    cache = DecodeCache(size=2)
    a = cache.decode(first)
    b = cache.decode(bytes(bytearray(second)))
    assert cache.decode(bytes(bytearray(first))) is a  # equal bytes, another object
    assert cache.decode(second) is b
    assert (cache.hits, cache.misses) == (2, 2)
    # Taken by both readers: not kept for a third.
    assert cache.decode(first) is not a and cache.decode(first).snapshots == a.snapshots


def test_the_cache_keeps_only_the_newest_messages() -> None:
    fleet = _fleet()
    msgs = [
        wire.encode_snapshots(Shard(0, 1), i, float(i), fleet.advance(1.0)) for i in range(1, 5)
    ]
    cache = DecodeCache(size=2)
    for m in msgs:
        cache.decode(m)
    cache.decode(msgs[0])  # evicted: decoded again
    cache.decode(msgs[3])  # kept
    assert (cache.hits, cache.misses) == (1, 5)


def test_dispatch_queue_holds_a_version_until_written_or_replaced() -> None:
    fleet = _fleet()
    rec = fleet.dispatch(DispatchRequest(fleet.specs[0].id, 1.0))
    q = DispatchQueue()
    q.put(rec)
    assert q.holds(rec) and q.holds(dataclasses.replace(rec))  # an equal copy too
    done = dataclasses.replace(rec, status=DispatchStatus.COMPLETED)
    q.put(done)
    assert not q.holds(rec) and q.holds(done)  # the upsert writes the newer state
    q.ack(q.peek())
    assert not q.holds(done)


def test_mirror_keeps_the_newer_version_of_a_redelivered_record() -> None:
    from bess_sim.cluster.mirror import MirrorFleet

    rec = _fleet().dispatch(DispatchRequest(load_assets(ASSETS).assets[0].id, 1.0))
    mirror = MirrorFleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    seen = []
    mirror.add_dispatch_listener(seen.append)
    done = dataclasses.replace(rec, status=DispatchStatus.COMPLETED)
    mirror.record(rec)
    mirror.record(done)
    mirror.record(rec)  # redelivered after the newer version: ignored
    assert mirror.dispatch_record(rec.id) == done
    assert seen == [rec, done]


def test_the_cache_is_bounded_by_rows_as_well() -> None:
    fleet = _fleet()
    msgs = [
        wire.encode_snapshots(Shard(0, 1), i, float(i), fleet.advance(1.0)) for i in range(1, 5)
    ]
    rows = len(wire.decode_snapshots(msgs[0]).snapshots)
    assert rows > 1
    cache = DecodeCache(size=100, max_rows=2 * rows)  # room for two messages
    for m in msgs:
        cache.decode(m)
    cache.decode(msgs[1])  # evicted by the row bound: decoded again
    assert (cache.hits, cache.misses) == (0, 5)
    cache.decode(msgs[3])  # kept
    assert cache.hits == 1
