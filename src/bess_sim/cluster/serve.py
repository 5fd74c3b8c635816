"""Entry points of ``bess-sim agent`` and ``bess-sim headend``: ``runtime.serve`` (signals,
clean shutdown) with the scale-out runtime in place of the single-process one."""

from __future__ import annotations

from ..modbus.points import RegisterMap
from ..runtime import Runtime, serve
from ..settings import Settings
from ..sim import FleetConfig
from .agent import Agent
from .headend import Headend
from .wire import Shard


async def serve_agent(
    settings: Settings,
    fleet: FleetConfig,
    regmap: RegisterMap,
    nats_url: str,
    prefix: str,
    shard: Shard,
) -> None:
    def factory(s: Settings, f: FleetConfig, r: RegisterMap) -> Runtime:
        # The headend owns the database (DESIGN §15): an agent never connects to it.
        return Agent(
            s.model_copy(update={"database_url": None}),
            f,
            r,
            nats_url=nats_url,
            shard=shard,
            prefix=prefix,
        )

    await serve(settings, fleet, regmap, factory=factory)


async def serve_headend(
    settings: Settings,
    fleet: FleetConfig,
    regmap: RegisterMap,
    nats_url: str,
    prefix: str,
    *,
    scenario: tuple[str, str] | None = None,
) -> None:
    """``scenario`` (text, source), validated by the CLI, starts once every agent of the
    fleet has reported (``runtime.serve`` would start it before any had)."""

    def factory(s: Settings, f: FleetConfig, r: RegisterMap) -> Runtime:
        return Headend(s, f, r, nats_url=nats_url, prefix=prefix, scenario=scenario)

    await serve(settings, fleet, regmap, factory=factory)
