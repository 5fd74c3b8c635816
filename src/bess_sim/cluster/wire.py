"""JSON message formats between headend and agents (docs/scale-out.md, "Messages").

Pure: no NATS here (``bus.py`` is the only nats-py import), so the codec is testable alone.
Subjects all start with a prefix (default ``bess``) so several clusters, or tests, can share
one NATS server without seeing each other's messages.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..faults import Fault, FaultKind, FaultState
from ..sim import DispatchRecord, DispatchRequest, DispatchSource, DispatchStatus, Snapshot
from ..sim.models import GridState
from ..sim.untrack import untrack

#: An agent silent this long has its assets shown ``offline`` and its commands answered 503:
#: 2.5 s of silence plus the 0.5 s heartbeat period keeps "offline within 3 s of the agent
#: stopping" (DESIGN §15) true even when it died just before a heartbeat was due.
OFFLINE_AFTER_S = 2.5
#: Agents send a heartbeat this often (a sixth of the offline limit: five may be lost).
HEARTBEAT_S = 0.5


@dataclass(frozen=True, slots=True)
class Subjects:
    prefix: str

    @property
    def telemetry_stream(self) -> str:
        return f"{self.prefix.upper()}_TELEMETRY"

    @property
    def dispatch_stream(self) -> str:
        return f"{self.prefix.upper()}_DISPATCH"

    @property
    def faults_stream(self) -> str:
        return f"{self.prefix.upper()}_FAULTS"

    @property
    def active_bucket(self) -> str:
        return f"{self.prefix.upper()}_ACTIVE"

    @property
    def ingest_consumer(self) -> str:
        """The headend's durable consumer of the telemetry stream (database ingest)."""
        return f"{self.prefix.upper()}_HEADEND_DB"

    @property
    def record_consumer(self) -> str:
        """The headend's durable consumer of the dispatch-record stream (with a database)."""
        return f"{self.prefix.upper()}_HEADEND_RECORDS"

    def telemetry(self, shard: int | str, part: int | str = "*") -> str:
        # One subject per part of a tick (see PART_ROWS): "last per subject" is then the
        # newest state of every asset.
        return f"{self.prefix}.telemetry.{shard}.{part}"

    def dispatch_records(self, shard: int | str) -> str:
        return f"{self.prefix}.dispatch.{shard}"

    def fault_records(self, shard: int | str, fault_id: str = "*") -> str:
        # One subject per fault: "last per subject" is then every fault's latest state.
        return f"{self.prefix}.faults.{shard}.{fault_id}"

    def heartbeat(self, shard: int | str) -> str:
        return f"{self.prefix}.heartbeat.{shard}"

    def command(self, shard: int | str, name: str) -> str:
        return f"{self.prefix}.cmd.{shard}.{name}"

    def comm(self, shard: int | str) -> str:
        return f"{self.prefix}.comm.{shard}"


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # K
    count: int  # N

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 0 ≤ K < N; ValueError with the reason otherwise."""
        k, sep, n = text.partition("/")
        if not sep or not k.strip().isdigit() or not n.strip().isdigit():
            raise ValueError(f"--shard must be K/N (e.g. 0/2), got {text!r}")
        shard = cls(int(k), int(n))
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard K/N needs 0 <= K < N, got {text!r}")
        return shard

    def owns(self, position: int) -> bool:
        return position % self.count == self.index


#: Snapshots per telemetry message: a tick of a shard is published in parts of at most this
#: many rows (~210 bytes each in JSON: ~420 kB), under NATS's default max_payload of 1 MB —
#: one message per tick stopped working past ~5,000 assets per agent (MaxPayloadError,
#: retried for ever). Each part has a subject and a message id of its own.
PART_ROWS = 2000


def parts_of(n: int) -> list[slice]:
    """The slices of a tick's ``n`` snapshots, one per message (one, empty, when n is 0)."""
    return [slice(i, i + PART_ROWS) for i in range(0, n, PART_ROWS)] or [slice(0, 0)]


#: Key of the fleet-wide grid conditions (DESIGN §10) in the KV bucket (asset ids are UUIDs).
GRID_KEY = "grid"


def encode_grid(grid: GridState) -> bytes:
    return dumps({"frequency_hz": grid.frequency_hz, "ambient_c": grid.ambient_c})


def decode_grid(data: bytes) -> GridState:
    d = loads(data)
    ambient = d.get("ambient_c")
    return GridState(float(d["frequency_hz"]), None if ambient is None else float(ambient))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()


def loads(data: bytes) -> Any:
    # orjson parses a 2,000-row telemetry message in 0.8 ms against json's 5.1 ms (whole
    # decode_snapshots 1.9 ms; best of 5 × 100 on the 2-core build machine, 2026-12-06) and
    # gives the same values; it refuses the NaN and Infinity that only view-fault rows carry
    # (DESIGN §11 value_override, ``rest``), so such a message is parsed again by json (as is
    # one it refuses for any other reason: bad input is json's ValueError as before).
    # Encoding stays json: orjson would write NaN as null. (An integer beyond 64 bits would
    # come back a float: none is sent, ticks and bit fields are far smaller.)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


_TS = Snapshot._fields.index("timestamp")


def _rows(snaps: Sequence[Snapshot]) -> list[list[Any]]:
    # A tick's snapshots share one timestamp: formatted once, not per row.
    stamps: dict[datetime, str] = {}
    rows = []
    for s in snaps:
        row = list(s)
        ts = s.timestamp
        text = stamps.get(ts)
        if text is None:
            text = stamps[ts] = ts.isoformat()
        row[_TS] = text
        rows.append(row)
    return rows


def encode_snapshots(
    shard: Shard,
    tick: int,
    sim_time_s: float,
    snaps: Sequence[Snapshot],
    *,
    watchdog: dict[str, tuple[float, float]] | None = None,
    rest: Sequence[Snapshot] = (),
    part: int = 0,
    parts: int = 1,
) -> bytes:
    return dumps(
        snapshots_msg(
            shard, tick, sim_time_s, snaps, watchdog=watchdog, rest=rest, part=part, parts=parts
        )
    )


def snapshots_msg(
    shard: Shard,
    tick: int,
    sim_time_s: float,
    snaps: Sequence[Snapshot],
    *,
    watchdog: dict[str, tuple[float, float]] | None = None,
    rest: Sequence[Snapshot] = (),
    part: int = 0,
    parts: int = 1,
) -> dict[str, Any]:
    """One telemetry message. ``watchdog``: ``asset id → (timeout_s, seconds since the
    heartbeat changed)`` for a restarted agent (``Fleet.watchdog_states``); ``rest``: the
    snapshots as the REST surface shows them where a §11 view fault makes that differ."""
    # Rows as positional lists (Snapshot field order, named once in "fields"): a third the
    # size of one object per asset.
    msg: dict[str, Any] = {
        "shard": shard.index,
        "of": shard.count,
        "tick": tick,
        "sim_time_s": sim_time_s,
        "part": part,  # this message is part ``part`` of ``parts`` of the tick
        "parts": parts,
        "fields": Snapshot._fields,
        "rows": _rows(snaps),
    }
    if watchdog:
        msg["watchdog"] = {aid: list(v) for aid, v in watchdog.items()}
    if rest:
        msg["rest"] = _rows(rest)
    return msg


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    shard: int
    tick: int
    sim_time_s: float
    snapshots: list[Snapshot]
    watchdog: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    rest: list[Snapshot] = dataclasses.field(default_factory=list)
    of: int = 0  # N, the agent's shard count
    part: int = 0
    parts: int = 1

    @property
    def last_part(self) -> bool:
        """The tick's last part: the agent publishes them in order, so every part is in."""
        return self.part >= self.parts - 1


def _snapshots(fields: list[str], rows: list[list[Any]]) -> list[Snapshot]:
    if tuple(fields) != Snapshot._fields:
        return [_by_name(fields, row) for row in rows]
    # The usual case (agent and headend of one version): rows are already in field order.
    # Measured on the 2-core build machine, a message of 2,000 rows: 8.5 ms decoded by name (a
    # dict and a keyword call per row; ~60 % of the headend's busy CPU at 40k assets, py-spy)
    # against 2.5 ms here, 1.6 ms of it json.loads (since replaced by orjson, see ``loads``);
    # a tick's rows share one timestamp, parsed once.
    make = Snapshot._make
    width = len(Snapshot._fields)
    stamps: dict[str, datetime] = {}
    snaps = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"telemetry row of {len(row)} fields, expected {width}")
        text = row[_TS]
        stamp = stamps.get(text)
        if stamp is None:
            stamp = stamps[text] = datetime.fromisoformat(text)
        row[_TS] = stamp
        snap = make(row)
        untrack(snap)  # as the tick does: never in a cycle (sim/untrack.py)
        snaps.append(snap)
    return snaps


def _by_name(fields: list[str], row: list[Any]) -> Snapshot:
    # Another version's field order (or a field this one lacks a default for: an error).
    d = dict(zip(fields, row, strict=True))
    d["timestamp"] = datetime.fromisoformat(d["timestamp"])
    return Snapshot(**d)


def decode_snapshots(data: bytes) -> TelemetryBatch:
    return batch_of(loads(data))


def batch_of(msg: dict[str, Any]) -> TelemetryBatch:
    fields = msg["fields"]
    watchdog = {str(aid): (float(v[0]), float(v[1])) for aid, v in msg.get("watchdog", {}).items()}
    return TelemetryBatch(
        int(msg["shard"]),
        int(msg["tick"]),
        float(msg["sim_time_s"]),
        _snapshots(fields, msg["rows"]),
        watchdog,
        _snapshots(fields, msg.get("rest", [])),
        int(msg.get("of", 0)),
        int(msg.get("part", 0)),
        int(msg.get("parts", 1)),
    )


def telemetry_msg_id(shard: Shard, snaps: Sequence[Snapshot], part: int = 0) -> str:
    """One id per shard, tick (the simulated timestamp of the tick) and part: a re-publish
    of the same part is stored once by JetStream's duplicate window. Every asset is in one
    shard and one part of it only, so this names each (asset, tick) row exactly once."""
    ts = snaps[0].timestamp.isoformat() if snaps else "empty"
    return f"t:{shard.index}/{shard.count}:{ts}:{part}"


def encode_record(rec: DispatchRecord) -> dict[str, Any]:
    d = dataclasses.asdict(rec)
    d["status"] = rec.status.value
    d["source"] = rec.source.value
    d["submitted_at"] = rec.submitted_at.isoformat()
    d["ended_at"] = rec.ended_at.isoformat() if rec.ended_at is not None else None
    return d


def decode_record(d: dict[str, Any]) -> DispatchRecord:
    return DispatchRecord(
        id=d["id"],
        asset_id=d["asset_id"],
        mw=float(d["mw"]),
        duration_s=d["duration_s"],
        status=DispatchStatus(d["status"]),
        reason=d["reason"],
        source=DispatchSource(d["source"]),
        client=d["client"],
        submitted_at=datetime.fromisoformat(d["submitted_at"]),
        ended_at=datetime.fromisoformat(d["ended_at"]) if d["ended_at"] else None,
        mvar=d.get("mvar"),
    )


def record_msg_id(rec: DispatchRecord) -> str:
    # A record changes status over its life (accepted → completed ...): one message per state.
    return f"d:{rec.id}:{rec.status.value}"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def encode_fault(f: Fault) -> dict[str, Any]:
    d = dataclasses.asdict(f)
    d["kind"] = f.kind.value
    d["state"] = f.state.value
    for key in ("created_at", "starts_at", "ends_at", "started_at", "ended_at"):
        d[key] = _iso(getattr(f, key))
    return d


def decode_fault(d: dict[str, Any]) -> Fault:
    created, starts = _dt(d["created_at"]), _dt(d["starts_at"])
    assert created is not None and starts is not None
    return Fault(
        id=str(d["id"]),
        kind=FaultKind(d["kind"]),
        asset_id=d["asset_id"],
        port=d["port"],
        params=dict(d["params"]),
        state=FaultState(d["state"]),
        created_at=created,
        starts_at=starts,
        ends_at=_dt(d["ends_at"]),
        started_at=_dt(d["started_at"]),
        ended_at=_dt(d["ended_at"]),
        start_s=float(d["start_s"]),
        end_s=None if d["end_s"] is None else float(d["end_s"]),
        end_reason=d["end_reason"],
        duration_s=d["duration_s"],
    )


def fault_key(shard: int, fault_id: str) -> str:
    """KV key of an open fault of agent ``shard`` (one port-wide fault may be on two)."""
    return f"fault.{shard}.{fault_id}"


def fault_msg_id(shard: int, f: Fault) -> str:
    # Scheduled → active → ended, once each; a port-wide fault on two agents has one id.
    return f"f:{shard}:{f.id}:{f.state.value}"


def encode_request(req: DispatchRequest) -> bytes:
    d = dataclasses.asdict(req)
    d["source"] = req.source.value
    return dumps(d)


def decode_request(data: bytes) -> DispatchRequest:
    d = loads(data)
    return DispatchRequest(
        asset_id=str(d["asset_id"]),
        mw=float(d["mw"]),
        duration_s=d["duration_s"],
        mode=d["mode"],
        source=DispatchSource(d["source"]),
        client=d["client"],
        mvar=d["mvar"],
    )
