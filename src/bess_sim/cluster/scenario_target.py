"""Scenarios (DESIGN §12) on the scale-out headend: the runner's target over a ``Headend``.

The runner's steps already go through the runtime's command methods, which the headend
forwards to the agents (dispatch, trip/reset, grid, faults). What differs from one process:

- **Samples.** The headend's sinks get one batch per shard and tick, and in a multi-tick
  manual step shard 0 may send tick n+1 before shard 1 sends tick n. The runner needs one
  whole-fleet sample per tick (a point check on a shard-1 asset must not be decided on shard
  0's half), so its sink is wrapped: on the manual clock the batches are grouped by tick
  timestamp (the agents step in lockstep) and a tick goes to the runner, in order, once every
  reported asset is in it, with the agents' own simulated time (``MirrorFleet.sim_time_at``),
  so times and verdicts are those of ``bess-sim run``. On the real-time clock the agents
  tick independently (their timestamps need not align): a sample is the mirror's whole fleet
  once every online agent has sent a batch since the previous sample.
- **Frequency ramps.** In one process the runner's sink sets the next tick's frequency
  before that tick runs. Here the agents tick by themselves, so the value is sent with
  ``set_grid`` between ticks: on the manual clock the runner steps one tick at a time while a
  ramp runs (``ramp_step_s``) and the value goes out before the next step; on the real-time
  clock it is sent as soon as the sample arrives (best effort: an agent may tick once more
  with the previous value).
- **Comm events** (Modbus exceptions, drops, … for the scorecard) happen on the agents:
  they publish each on ``P.comm.K`` (core NATS) and the headend calls its comm listeners, so
  the runner's scorecard hears them as in one process (best effort: an event sent while the
  headend is disconnected from NATS is lost).
- **Speed** steps change the agents' clocks, which the headend cannot: refused on the
  real-time clock (a no-op on the manual clock, as in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..api.ports import AssetUnavailableError
from ..clock import ManualClock
from ..scenario.model import ScenarioError
from ..scenario.target import RuntimeTarget
from ..sim import Snapshot
from ..sim.model import TelemetrySink

if TYPE_CHECKING:
    from .headend import Headend
    from .mirror import MirrorFleet

log = logging.getLogger("bess_sim.cluster")

#: Ticks kept waiting for their missing shards before the oldest is given up (an agent that
#: stopped mid-step never sends them; the step itself then fails with 503).
_MAX_PENDING_TICKS = 256


class HeadendTarget(RuntimeTarget):
    """:class:`~bess_sim.scenario.target.ScenarioTarget` over a scale-out headend."""

    def __init__(self, headend: Headend) -> None:
        super().__init__(headend)
        self._headend = headend
        self._wrapped: dict[int, _Sampler] = {}  # id(sink) → its sampler
        self._sampled_s: float | None = None  # simulated time of the last sample delivered
        self._pending_hz: float | None = None  # a ramp value not sent to the agents yet
        self._sender: asyncio.Task[None] | None = None

    @property
    def mirror(self) -> MirrorFleet:
        return self._headend.mirror

    @property
    def sim_time_s(self) -> float:
        return self.mirror.sim_time_s if self._sampled_s is None else self._sampled_s

    @property
    def ramp_step_s(self) -> float:
        return self.tick_dt_s

    @property
    def failure(self) -> str | None:
        offline = self._headend.offline_agents
        if offline:
            return f"agent(s) {offline} offline"
        return self._headend.failure

    # ------------------------------------------------------------ samples
    def add_sink(self, sink: TelemetrySink) -> None:
        manual = isinstance(self._headend.clock, ManualClock)
        sampler: _Sampler = _ByTimestamp(self, sink) if manual else _ByRound(self, sink)
        self._wrapped[id(sink)] = sampler
        self._sampled_s = None
        self._headend.add_sink(sampler)

    def remove_sink(self, sink: TelemetrySink) -> None:
        sampler = self._wrapped.pop(id(sink), None)
        if sampler is not None:
            self._headend.remove_sink(sampler)
        if not self._wrapped:
            self._sampled_s = None

    def deliver(self, sink: TelemetrySink, sim_time_s: float, snaps: list[Snapshot]) -> None:
        self._sampled_s = sim_time_s
        sink.publish(snaps)

    # ------------------------------------------------------------ clock and grid
    async def step(self, seconds: float) -> int:
        await self._send_pending()
        return await self._headend.step(seconds)

    def set_speed(self, x: float) -> None:
        if not isinstance(self._headend.clock, ManualClock):
            raise ScenarioError(
                "speed steps are not forwarded to the shard agents (their clocks pace the "
                "fleet): run this scenario with bess-sim run, or without the speed step"
            )

    def ramp_frequency(self, frequency_hz: float) -> None:
        self._pending_hz = frequency_hz
        if isinstance(self._headend.clock, ManualClock):
            return  # sent before the next step (the runner steps one tick at a time)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending(), name="bess-scenario-ramp")

    async def _send_pending(self) -> None:
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task() and not sender.done():
            with contextlib.suppress(Exception):
                await sender
        while self._pending_hz is not None:
            hz, self._pending_hz = self._pending_hz, None
            try:
                await self._headend.set_grid(hz, None)
            except Exception as exc:
                if isinstance(self._headend.clock, ManualClock):
                    raise ScenarioError(f"frequency ramp not applied: {exc}") from None
                log.warning("scenario: frequency ramp value %g Hz not applied: %s", hz, exc)


class _Sampler:
    """A sink on the headend turning per-shard batches into whole-fleet samples."""

    def __init__(self, target: HeadendTarget, sink: TelemetrySink) -> None:
        self._target = target
        self._sink = sink

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        raise NotImplementedError


class _ByTimestamp(_Sampler):
    """Manual clock: one sample per tick timestamp, once every reported asset is in it."""

    def __init__(self, target: HeadendTarget, sink: TelemetrySink) -> None:
        super().__init__(target, sink)
        self._parts: dict[datetime, dict[str, Snapshot]] = {}

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        for snap in snapshots:
            self._parts.setdefault(snap.timestamp, {})[snap.asset_id] = snap
        mirror = self._target.mirror
        reported = [s.id for s in mirror.specs if s.id in mirror.owner]
        while self._parts:
            ts = min(self._parts)
            part = self._parts[ts]
            if any(a not in part for a in reported):
                if len(self._parts) <= _MAX_PENDING_TICKS:
                    return
                log.warning("scenario: tick %s never completed; skipped", ts.isoformat())
                del self._parts[ts]
                continue
            del self._parts[ts]
            sim_time_s = mirror.sim_time_at.get(ts)
            if sim_time_s is None:
                sim_time_s = (ts - mirror.start_time).total_seconds()
            self._target.deliver(self._sink, sim_time_s, [part[a] for a in reported])


class _ByRound(_Sampler):
    """Real-time clock: a sample of the whole mirror once every online agent has sent a batch
    since the previous one."""

    def __init__(self, target: HeadendTarget, sink: TelemetrySink) -> None:
        super().__init__(target, sink)
        self._heard: set[int] = set()

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        mirror = self._target.mirror
        for snap in snapshots[:1]:
            shard = mirror.owner.get(snap.asset_id)
            if shard is not None:
                self._heard.add(shard)
        online = set(mirror.owner.values()) - set(self._target._headend.offline_agents)
        if online and online <= self._heard:
            self._heard.clear()
            self._target.deliver(self._sink, mirror.sim_time_s, mirror.snapshots())


async def start_when_ready(headend: Headend, text: str, source: str) -> None:
    """``bess-sim headend --scenario``: started once every agent is online and every asset of
    the fleet has reported (the state at t = 0 is then the agents', not the unreported
    mirror's)."""
    mirror = headend.mirror
    while True:
        try:
            headend._all_agents("start the scenario")  # N known, none offline
        except AssetUnavailableError:
            pass
        else:
            if all(s.id in mirror.owner for s in mirror.specs):
                break
        await asyncio.sleep(0.1)
    log.info("headend: every agent has reported; starting scenario %s", source)
    try:
        headend.scenarios.start(text, source)
    except Exception as exc:  # validated by the CLI; the fleet may have changed since
        log.error("scenario %s not started: %s", source, exc)
