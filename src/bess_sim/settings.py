"""Runtime settings: built once by the CLI from env + flags and passed down (no globals)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

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
        1.0, gt=0, le=3600, validation_alias=AliasChoices("tick_interval_s", "BESS_TICK_INTERVAL")
    )
    speed: float = Field(1.0, gt=0, le=1_000_000)
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
    history_size: int = Field(3600, ge=1, le=1_000_000, description="ring buffer per asset")
    db_buffer_rows: int = Field(
        1_000_000, ge=1, description="telemetry rows held while the database is down"
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
