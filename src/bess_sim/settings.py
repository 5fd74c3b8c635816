"""Runtime settings: built once by the CLI from env + flags and passed down (no globals)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything ``bess-sim run`` can be told. Env names are given per field; CLI flags win."""

    model_config = SettingsConfigDict(
        env_prefix="BESS_", extra="ignore", populate_by_name=True, frozen=True
    )

    assets: Path = Field(Path("assets.yaml"), description="assets.yaml path (env BESS_ASSETS)")
    register_map: Path = Field(Path("register_map.yaml"), description="register map path")
    http_host: str = "127.0.0.1"
    http_port: int = Field(3001, ge=0, le=65535)
    modbus_host: str = "127.0.0.1"
    modbus_enabled: bool = True
    # Modbus connection hygiene (docs/modbus.md "Connections"); env BESS_MODBUS_*.
    modbus_max_connections: int = Field(100, ge=1, le=100_000, description="per port")
    modbus_idle_timeout_s: float = Field(
        300.0, ge=0, le=86_400, description="close a connection silent this long; 0 = off"
    )
    modbus_frame_timeout_s: float = Field(
        10.0, ge=0, le=86_400, description="close a request frame left incomplete; 0 = off"
    )
    modbus_backlog: int = Field(1024, ge=1, le=65_535, description="listen(2) backlog")
    tick_interval_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=AliasChoices("tick_interval_s", "BESS_TICK_INTERVAL"),
    )
    speed: float = Field(1.0, gt=0, le=1_000_000, allow_inf_nan=False)
    tick_thread: bool = Field(
        True,
        description="real-time clock: compute each tick in a worker thread, so it never holds "
        "the event loop (tickgate.py); false ticks on the loop (bench comparison)",
    )
    clock: Literal["realtime", "manual"] = "realtime"
    start_time: datetime | None = Field(
        None, description="simulated UTC time at start (default: now, whole seconds)"
    )
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("database_url", "DATABASE_URL")
    )
    reset_db: bool = Field(False, validation_alias=AliasChoices("reset_db", "RESET_DB"))
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias=AliasChoices("log_level", "LOG_LEVEL")
    )
    api_token: str | None = Field(
        None, validation_alias=AliasChoices("api_token", "BESS_API_TOKEN")
    )
    seed: int = Field(
        1,
        ge=0,
        le=2**63 - 1,
        description="seed of the random comm faults (DESIGN §11): same seed, same drops "
        "(env BESS_SEED)",
    )
    history_size: int = Field(3600, ge=1, le=1_000_000, description="ring buffer per asset")
    db_buffer_rows: int = Field(
        1_000_000, ge=1, description="telemetry rows held while the database is down"
    )
    http_max_body_bytes: int = Field(
        1_048_576, ge=1, le=1_073_741_824, description="largest HTTP request body (413 above)"
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="an HTTP connection whose request headers are not complete after this "
        "many seconds is closed",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("reset_db", mode="before")
    @classmethod
    def _empty_is_false(cls, value: object) -> object:
        # `RESET_DB=` (set but empty), as docker-compose files often leave it, means off.
        return False if value == "" else value

    @field_validator("database_url", "api_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("start_time")
    @classmethod
    def _sane_start(cls, value: datetime | None) -> datetime | None:
        # The simulated clock must be able to run for years from the start (datetime ends at
        # 9999-12-31): a start it cannot advance from would kill the tick loop at the first
        # tick. Year 9000 leaves ~1000 years of headroom and refuses nothing a test needs.
        if value is None:
            return None
        try:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError("start time out of range") from None
        if utc.year >= MAX_START_YEAR:
            raise ValueError(f"start time must be before the year {MAX_START_YEAR}, got {utc.year}")
        return utc

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_database_url(value)
        return value


#: Simulated start times from this year on are refused (see ``Settings._sane_start``).
MAX_START_YEAR = 9000


def check_database_url(url: str) -> None:
    """Raise ValueError (naming DATABASE_URL, without the password) unless ``url`` is a
    PostgreSQL URL asyncpg can use: ``postgres[ql]://[user[:pw]@][host][:port][/db][?...]``.
    A malformed URL is a configuration error (exit 2), not an outage to retry forever."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not an integer in 0..65535
    except ValueError as exc:
        raise ValueError(f"DATABASE_URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("postgres", "postgresql"):
        shown = parts.scheme or "none"
        raise ValueError(
            f"DATABASE_URL must start with postgresql:// or postgres:// (scheme {shown!r})"
        )
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"DATABASE_URL port must be 1-65535, got {port}")
