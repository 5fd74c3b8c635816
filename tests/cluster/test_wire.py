"""The scale-out message codec (cluster/wire.py): what an agent sends is what the headend
reads back, field for field."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bess_sim.cluster import wire
from bess_sim.cluster.agent import shard_config
from bess_sim.cluster.wire import Shard
from bess_sim.config import load_assets
from bess_sim.faults import FaultBook, FaultRequest, FaultState
from bess_sim.sim import DispatchRequest, DispatchSource, Fleet

ASSETS = Path(__file__).parents[2] / "assets.yaml"


def test_snapshots_round_trip() -> None:
    fleet = Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    snaps = fleet.advance(1.0)
    batch = wire.decode_snapshots(wire.encode_snapshots(Shard(0, 1), 1, 1.0, snaps))
    assert batch.snapshots == snaps
    assert (batch.shard, batch.tick, batch.sim_time_s) == (0, 1, 1.0)


def test_rows_of_another_field_order_decode_by_name_and_a_short_row_is_refused() -> None:
    import gc

    fleet = Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    snaps = fleet.advance(1.0)
    msg = wire.loads(wire.encode_snapshots(Shard(0, 1), 1, 1.0, snaps))
    batch = wire.batch_of(wire.loads(wire.dumps(msg)))
    assert batch.snapshots == snaps  # the positional fast path
    assert not any(gc.is_tracked(s) for s in batch.snapshots)  # as the tick's (sim/untrack.py)
    # Another version's field order: matched by name.
    order = list(reversed(range(len(msg["fields"]))))
    other = {
        **msg,
        "fields": [msg["fields"][i] for i in order],
        "rows": [[row[i] for i in order] for row in msg["rows"]],
    }
    assert wire.batch_of(other).snapshots == snaps
    msg["rows"][0] = msg["rows"][0][:-1]
    with pytest.raises(ValueError, match="fields"):
        wire.batch_of(msg)


def test_records_and_requests_round_trip() -> None:
    fleet = Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    aid = fleet.specs[0].id
    req = DispatchRequest(aid, 2.5, 60.0, "discharge", DispatchSource.MODBUS, "1.2.3.4:5")
    assert wire.decode_request(wire.encode_request(req)) == req
    rec = fleet.dispatch(req)
    assert wire.decode_record(wire.loads(wire.dumps(wire.encode_record(rec)))) == rec
    bad = fleet.dispatch(DispatchRequest(aid, 1e9))
    assert wire.decode_record(wire.encode_record(bad)) == bad


def test_message_ids_name_shard_and_tick() -> None:
    fleet = Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    first = wire.telemetry_msg_id(Shard(1, 2), fleet.advance(1.0))
    again = wire.telemetry_msg_id(Shard(1, 2), fleet.snapshots())
    assert first == again  # a re-publish of the same tick: stored once
    assert first != wire.telemetry_msg_id(Shard(1, 2), fleet.advance(1.0))


def test_shard_parse_and_split() -> None:
    assert Shard.parse("1/3") == Shard(1, 3)
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="K/N"):
            Shard.parse(bad)
    cfg = load_assets(ASSETS)
    parts = [shard_config(cfg, Shard(k, 3)).assets for k in range(3)]
    assert sorted(a.id for p in parts for a in p) == sorted(a.id for a in cfg.assets)
    assert parts[0][0] == cfg.assets[0] and parts[1][0] == cfg.assets[1]


def test_watchdog_rest_and_faults_round_trip() -> None:
    fleet = Fleet(load_assets(ASSETS), datetime(2026, 1, 1, tzinfo=UTC))
    a, b = fleet.specs[0].id, fleet.specs[1].id
    fleet.set_watchdog_timeout(a, 7)
    book = FaultBook(fleet)
    fault = book.add(
        FaultRequest.model_validate(
            {
                "kind": "value_override",
                "asset_id": b,
                "params": {"field": "soc_pct", "value": "NaN"},
            }
        )
    )
    snaps = fleet.advance(1.0)
    shown = book.present(snaps, "rest")
    rest = [p for p, s in zip(shown, snaps, strict=True) if p is not s]
    assert [s.asset_id for s in rest] == [b]
    data = wire.encode_snapshots(
        Shard(1, 2), 1, 1.0, snaps, watchdog=fleet.watchdog_states(), rest=rest
    )
    batch = wire.decode_snapshots(data)
    assert batch.watchdog == {a: (7.0, 1.0)}
    assert batch.of == 2
    assert len(batch.rest) == 1 and batch.rest[0].asset_id == b
    assert batch.rest[0].soc_pct != batch.rest[0].soc_pct  # NaN survives the wire
    assert wire.decode_fault(wire.loads(wire.dumps(wire.encode_fault(fault)))) == fault
    assert wire.decode_grid(wire.encode_grid(fleet.grid)) == fleet.grid


def test_fault_book_restore_on_a_resumed_time_base() -> None:
    """A restarted agent's book takes back a fault with its id and absolute times; a comm
    fault acts on the port again and a scheduled one starts when due."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fleet = Fleet(load_assets(ASSETS), start)
    spec = fleet.specs[0]
    book = FaultBook(fleet)
    comm = book.add(
        FaultRequest.model_validate(
            {"kind": "modbus_offline", "asset_id": spec.id, "duration_s": 100}
        )
    )
    later = book.add(
        FaultRequest.model_validate({"kind": "stuck", "asset_id": spec.id, "start_in_s": 50})
    )
    # A new process resumed 30 s later (simulated time 0 = start + 30 s).
    fleet2 = Fleet(load_assets(ASSETS), start)
    fleet2.resume_at(start + timedelta(seconds=30))
    book2 = FaultBook(fleet2)
    book2.restore([comm, later, replace(comm, id="x", state=FaultState.ENDED)])
    assert book2.get("x") is None
    assert book2.comm_for(spec.modbus.port) is not None
    assert book2.get(comm.id).end_s == 70.0  # type: ignore[union-attr]
    fleet2.advance(20.0)
    assert book2.advance()
    assert book2.get(later.id).state is FaultState.ACTIVE  # type: ignore[union-attr]
    fleet2.advance(50.0)
    book2.advance()
    assert book2.get(comm.id).state is FaultState.ENDED  # type: ignore[union-attr]
    assert book2.comm_for(spec.modbus.port) is None


def test_a_tick_is_cut_into_parts_under_the_nats_payload_limit() -> None:
    from bess_sim.cluster.wire import PART_ROWS, parts_of

    assert parts_of(0) == [slice(0, 0)]  # an empty shard still says "tick done"
    assert parts_of(PART_ROWS) == [slice(0, PART_ROWS)]
    rows = list(range(2 * PART_ROWS + 1))
    cuts = parts_of(len(rows))
    assert [len(rows[c]) for c in cuts] == [PART_ROWS, PART_ROWS, 1]
    assert [r for c in cuts for r in rows[c]] == rows
    # A full part of typical rows stays well under NATS's default max_payload (1 MB).
    assert PART_ROWS * 260 < 1_000_000


def test_loads_reads_what_json_reads_and_refuses_what_it_refuses() -> None:
    """orjson first, json for what orjson refuses (NaN, Infinity): the values are json's
    either way, and bad input is a ValueError as before."""
    for text in (
        b'{"a":[1,2.5,null,"x",true],"b":-0.0,"c":1e-300,"d":"\\u00e9"}',
        b"[NaN,Infinity,-Infinity]",
        b'{"tick":9223372036854775807,"alarms":65535}',
    ):
        assert repr(wire.loads(text)) == repr(json.loads(text))
    for bad in (b"", b"{", b"[1,]", b"\xff", b"{'a': 1}"):
        with pytest.raises(ValueError):
            wire.loads(bad)
