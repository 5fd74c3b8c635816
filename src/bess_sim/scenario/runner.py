"""Runs a :class:`~.plan.Plan` against a simulator (DESIGN §12).

On the manual clock the runner steps simulated time itself, breakpoint to breakpoint, as fast
as the CPU allows; on the real-time clock it waits for the ticks to reach each breakpoint (a
step then runs at the first tick at or after its ``at``). Every tick's snapshots feed the
expectations and the scorecard through a telemetry sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..sim import DispatchRequest, DispatchSource, DispatchStatus, Snapshot, UnknownAssetError
from .expect import Evaluator
from .model import ScenarioError
from .plan import Plan, PlannedStep, check_fault_steps
from .scorecard import Event, ScorecardRecorder
from .target import FAULT_CHECKER, ScenarioTarget

log = logging.getLogger("bess_sim.scenario")

_T_EPS = 1e-6
# Largest manual step between checks of a stop request (simulated seconds).
_MAX_STEP_S = 3600.0

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _Ramp:
    f0: float
    f1: float
    t0: float
    t1: float

    def at(self, t: float) -> float:
        if t >= self.t1:
            return self.f1
        return self.f0 + (self.f1 - self.f0) * (t - self.t0) / (self.t1 - self.t0)


class ScenarioRun:
    """One run of a plan; ``status()`` can be read at any time (REST)."""

    def __init__(
        self,
        plan: Plan,
        target: ScenarioTarget,
        *,
        source: str = "",
        progress: Progress | None = None,
    ) -> None:
        self.plan = plan
        self.target = target
        self.source = source
        self._progress = progress
        fleet = target.fleet
        self._names = {s.id: s.name for s in fleet.specs}
        self.evaluator = Evaluator(plan.expectations, self._names)
        self.recorder = ScorecardRecorder(fleet.specs, fleet.now, fleet.snapshot, target.sim_time_s)
        self._origin_s = target.sim_time_s
        self._sampled_s = -math.inf  # scenario time of the last tick this runner sampled
        self._next_bp = 0.0
        self._reached = asyncio.Event()
        self._stop = False
        self._ramp: _Ramp | None = None
        self._fault_ids: dict[str, str] = {}
        self._fault_assets: dict[str, str | None] = {}
        self._decided: set[int] = set()
        self.state = "pending"  # running | passed | failed | stopped | error
        self.error: str | None = None
        self.steps_done = 0
        self.last_step = ""
        self.results: list[dict[str, Any]] | None = None
        self._attached = False

    # ------------------------------------------------------------ time
    @property
    def t_s(self) -> float:
        """Scenario time: simulated seconds since the run started."""
        return self.target.sim_time_s - self._origin_s

    def publish(self, snapshots: Sequence[Snapshot]) -> None:
        """Telemetry sink: called after every tick."""
        t = self.t_s
        self._sampled_s = t
        ramp = self._ramp
        if ramp is not None:
            # The next tick runs with the ramp's value at its end: the snapshot at T then
            # shows f(T), and the ramp lands exactly on its target at t0 + ramp_s.
            self.target.ramp_frequency(ramp.at(t + self.target.tick_dt_s))
            if t >= ramp.t1 - _T_EPS:
                self._ramp = None
        self.recorder.on_snapshots(snapshots)
        self.evaluator.sample(t, snapshots, self.recorder.figure)
        if t >= self._next_bp - _T_EPS:
            self._reached.set()

    async def _advance_to(self, bp: float) -> None:
        self._next_bp = bp
        if self.target.paced:
            # The time of the last sample this runner saw, not the fleet's: with the tick in a
            # worker thread, sim_time_s moves on before the sinks (this one included) are
            # called, and a run that ended then never evaluated its checks at that time
            # (seen in CI: "never evaluated: the run ended at 40 s before 40 s").
            while not self._stop and self._sampled_s < bp - _T_EPS:
                self._reached.clear()
                if self._sampled_s >= bp - _T_EPS:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reached.wait(), timeout=1.0)
                if self.target.failure is not None:
                    raise ScenarioError(f"the simulator stopped: {self.target.failure}")
            return
        while not self._stop:
            left = bp - self.t_s
            if left <= _T_EPS:
                return
            try:
                # While a ramp runs, its next value may have to reach the fleet between ticks.
                limit = _MAX_STEP_S if self._ramp is None else self.target.ramp_step_s
                await self.target.step(min(left, _MAX_STEP_S, limit))
            except Exception as exc:  # the tick loop failed (logged by the runtime)
                raise ScenarioError(f"simulated time cannot advance: {exc}") from None

    # ------------------------------------------------------------ running
    def stop(self) -> None:
        self._stop = True
        self._reached.set()

    def attach(self) -> None:
        """Start recording commands and comm events for the scorecard. ``run()`` does it too;
        call it earlier when the target's Modbus/REST come up before the run starts (a paced
        CLI run: an EMS may write as soon as the port is bound — a race seen in CI — and that
        command belongs to the scorecard)."""
        if self._attached:
            return
        self._attached = True
        self.target.fleet.add_dispatch_listener(self.recorder.on_dispatch)
        self.target.add_comm_listener(self.recorder.on_comm_event)

    async def run(self) -> str:
        """Run to the end (or a stop); returns the final state."""
        plan = self.plan
        fleet = self.target.fleet
        check_fault_steps(plan, self.source, FAULT_CHECKER)
        self.state = "running"
        self._origin_s = self.target.sim_time_s  # scenario time starts now, not at construction
        self._sampled_s = -math.inf
        self.attach()
        self.target.add_sink(self)
        try:
            if plan.frequency_hz is not None or plan.ambient_c is not None:
                async with self.target.between_ticks():
                    await self.target.set_grid(plan.frequency_hz, plan.ambient_c)
            self.publish(fleet.snapshots())  # the state at t = 0
            pending = list(plan.steps)
            for bp in plan.breakpoints:
                await self._advance_to(bp)
                if self._stop:
                    break
                self._report_verdicts()
                if pending and pending[0].at_s <= bp + _T_EPS:
                    async with self.target.between_ticks():
                        while pending and pending[0].at_s <= bp + _T_EPS:
                            await self._do(pending.pop(0))
            self._report_verdicts()
            end = self.t_s
            self.results = (
                self.evaluator.finish(end) if not self._stop else (self.evaluator.results(end))
            )
            self._report_verdicts(self.results)  # those never evaluated
            failed = any(r["status"] == "failed" for r in self.results)
            self.state = "stopped" if self._stop else "failed" if failed else "passed"
        except (ScenarioError, UnknownAssetError) as exc:
            self.state = "error"
            self.error = (
                str(exc)
                if not isinstance(exc, UnknownAssetError)
                else (f"asset {exc} is no longer in the fleet")
            )
            self.results = self.evaluator.results(self.t_s)
            raise ScenarioError(self.error) from None
        finally:
            self.recorder.active = False
            self._attached = False
            self.target.remove_sink(self)
            self.target.remove_comm_listener(self.recorder.on_comm_event)
            fleet.remove_dispatch_listener(self.recorder.on_dispatch)
        return self.state

    def _report_verdicts(self, results: list[dict[str, Any]] | None = None) -> None:
        """A progress line for each expectation decided since the last breakpoint."""
        n = len(self.plan.steps) + len(self.plan.expectations)
        for r in self.evaluator.results(self.t_s) if results is None else results:
            if r["status"] != "pending" and r["step"] not in self._decided:
                self._decided.add(r["step"])
                self.steps_done += 1
                self._say(
                    f"[{self.t_s:9.1f} s] step {r['step'] + 1}/{n} expect {r['name']}: "
                    f"{r['status'].upper()} ({r['message']})"
                )

    def _say(self, text: str) -> None:
        self.last_step = text
        if self._progress is not None:
            self._progress(text)
        log.debug("scenario %s: %s", self.plan.name, text)

    async def _do(self, step: PlannedStep) -> None:
        target = self.target
        a = step.args
        t = self.t_s
        n = len(self.plan.steps) + len(self.plan.expectations)
        head = f"[{t:9.1f} s] step {step.index + 1}/{n} {step.action}"
        match step.action:
            case "dispatch":
                rec = await target.dispatch(
                    DispatchRequest(
                        asset_id=a["asset_id"], mw=a["mw"], mvar=a["mvar"],
                        duration_s=a["duration_s"], source=DispatchSource.SCENARIO,
                        client=f"scenario:{self.plan.name}",
                    )
                )  # fmt: skip
                outcome = (
                    f"rejected: {rec.reason}" if rec.status is DispatchStatus.REJECTED else "ok"
                )
                self._say(f"{head} {self._names[a['asset_id']]} {a['mw']:g} MW: {outcome}")
            case "trip":
                await target.asset_command(a["asset_id"], "trip")
                self._event("fault_start", t, a["asset_id"], "trip")
                self._say(f"{head} {self._names[a['asset_id']]}")
            case "reset":
                await target.asset_command(a["asset_id"], "reset")
                self._event("fault_end", t, a["asset_id"], "reset")
                self._say(f"{head} {self._names[a['asset_id']]}")
            case "frequency":
                hz, ramp_s = a["hz"], a["ramp_s"]
                if ramp_s > 0:
                    self._ramp = _Ramp(target.fleet.grid.frequency_hz, hz, t, t + ramp_s)
                    await target.set_grid(self._ramp.at(t + target.tick_dt_s), None)
                else:
                    self._ramp = None
                    await target.set_grid(hz, None)
                self._event("frequency", t, None, f"{hz:g} Hz")
                self._say(f"{head} {hz:g} Hz" + (f" over {ramp_s:g} s" if ramp_s else ""))
            case "ambient":
                await target.set_grid(None, a["c"])
                self._say(f"{head} {a['c']:g} °C")
            case "speed":
                self.target.set_speed(a["x"])
                note = "" if self.target.paced else " (manual clock: runs as fast as possible)"
                self._say(f"{head} {a['x']:g}x{note}")
            case "fault":
                body = a["body"]
                try:
                    fid = await target.add_fault(body)
                except (ValueError, KeyError) as exc:
                    raise ScenarioError(
                        f"{self.source}: step {step.index} (at {step.at_s:g}): fault: {exc}"
                    ) from None
                if a["label"] is not None:
                    self._fault_ids[a["label"]] = fid
                    self._fault_assets[a["label"]] = body.get("asset_id")
                start = t + float(body.get("start_in_s", 0.0))
                label = a["label"] or body["kind"]
                self._event("fault_start", start, body.get("asset_id"), label)
                if body.get("duration_s") is not None:
                    end = start + body["duration_s"]
                    self._event("fault_end", end, body.get("asset_id"), label)
                self._say(f"{head} {body['kind']} → {fid}")
            case "clear_fault":
                fid = self._fault_ids.get(a["label"], a["label"])
                try:
                    await target.end_fault(fid)
                except (ValueError, KeyError) as exc:
                    raise ScenarioError(
                        f"{self.source}: step {step.index} (at {step.at_s:g}): clear_fault: {exc}"
                    ) from None
                # Cleared before its scheduled end: that end never happens.
                self.recorder.drop_events("fault_end", a["label"], after_s=t)
                self._event("fault_end", t, self._fault_assets.get(a["label"]), a["label"])
                self._say(f"{head} {a['label']}")
            case _:  # pragma: no cover - plan.py builds only the actions above
                raise AssertionError(step.action)
        self.steps_done += 1

    def _event(self, kind: str, at_s: float, asset_id: str | None, label: str) -> None:
        self.recorder.note_event(Event(kind, at_s, asset_id, label))

    # ------------------------------------------------------------ reading
    def status(self) -> dict[str, Any]:
        t = self.t_s
        results = self.results if self.results is not None else self.evaluator.results(t)
        return {
            "name": self.plan.name,
            "description": self.plan.description,
            "source": self.source,
            "state": self.state,
            "error": self.error,
            "sim_time_s": t,
            "end_s": self.plan.end_s,
            "steps_done": self.steps_done,
            "steps": len(self.plan.steps) + len(self.plan.expectations),
            "last_step": self.last_step,
            "expectations": results,
            "passed": sum(1 for r in results if r["status"] == "passed"),
            "failed": sum(1 for r in results if r["status"] == "failed"),
            "scorecard": self.recorder.result(),
        }
