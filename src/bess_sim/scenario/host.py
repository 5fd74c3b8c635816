"""One scenario at a time in a live simulator (``POST /scenarios``, ``run --scenario``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .model import ScenarioError, parse_scenario, parse_text
from .plan import build_plan, check_fault_steps
from .runner import ScenarioRun
from .target import FAULT_CHECKER, ScenarioTarget

log = logging.getLogger("bess_sim.scenario")


class ScenarioBusyError(Exception):
    """A scenario is already running (409)."""


class ScenarioHost:
    def __init__(self, target: ScenarioTarget) -> None:
        self.target = target
        self._run: ScenarioRun | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> ScenarioRun | None:
        return self._run

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, body: str | dict[str, Any], source: str) -> ScenarioRun:
        """Validate and start a scenario (YAML text or decoded JSON). Raises
        :class:`ScenarioError` (bad input) or :class:`ScenarioBusyError`."""
        if self.running:
            assert self._run is not None
            raise ScenarioBusyError(
                f"scenario {self._run.plan.name!r} is running; stop it first "
                "(POST /scenarios/current/stop)"
            )
        scenario = (
            parse_text(body, source) if isinstance(body, str) else (parse_scenario(body, source))
        )
        plan = build_plan(scenario, self.target.fleet.specs, source)
        check_fault_steps(plan, source, FAULT_CHECKER)
        if plan.start_time is not None or plan.tick_interval_s is not None:
            log.info(
                "scenario %s: start_time/tick_interval_s apply to `bess-sim scenario run`; "
                "a live run starts now with the running clock",
                plan.name,
            )
        run = ScenarioRun(plan, self.target, source=source, progress=self._progress)
        run.state = "running"
        self._run = run
        self._task = asyncio.create_task(self._drive(run), name="bess-scenario")
        log.info("scenario %s: started (%d steps, %g s)", plan.name, len(plan.steps), plan.end_s)
        return run

    @staticmethod
    def _progress(line: str) -> None:
        log.info("scenario: %s", line)

    async def _drive(self, run: ScenarioRun) -> None:
        try:
            state = await run.run()
        except ScenarioError as exc:
            log.warning("scenario %s: error: %s", run.plan.name, exc)
            return
        status = run.status()
        log.info(
            "scenario %s: %s (%d passed, %d failed)",
            run.plan.name,
            state,
            status["passed"],
            status["failed"],
        )

    def stop(self) -> ScenarioRun | None:
        run = self._run
        if run is not None and self.running:
            run.stop()
        return run

    async def wait(self) -> None:
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        """Shutdown: stop the run in progress and wait for it."""
        self.stop()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
