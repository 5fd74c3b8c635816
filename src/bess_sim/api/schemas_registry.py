"""Request/response models of run-time registration (DESIGN §14).

The models only fix the JSON types (so OpenAPI documents the body); the value rules are those
of assets.yaml, applied by ``config.parse_asset``/``parse_site`` (one rule set, not two):
a bad value answers 422 with ``loc = ["body", <field>]`` and the same message the file check
prints.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ..sim import AssetSpec, Site
from .schemas import AssetOut, SiteOut

_SITE_ID = "0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e01"


class ModbusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(
        None, description="TCP port, 1-65535 (default 5020 + the asset's index in the fleet)."
    )
    unit_id: int | None = Field(None, description="Unit id, 1-247 (default 1).")


class SiteIn(BaseModel):
    """A site, as a `sites:` entry of assets.yaml."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Harbour Substation", "location": "Harbour"}]},
    )

    id: UUID | None = Field(None, description="Omitted → a new uuid4.")
    name: str = Field(description="Non-empty.")
    location: str | None = None


class AssetIn(BaseModel):
    """An asset, as an `assets:` entry of assets.yaml. +MW = discharge, -MW = charge."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "site_id": _SITE_ID,
                    "name": "HARB-BESS-9",
                    "location": "Harbour bay 9",
                    "capacity_mwhr": 20.0,
                    "max_mw": 10.0,
                    "min_mw": -10.0,
                    "ramp_rate_mw_per_min": 30.0,
                    "efficiency": 0.94,
                    "modbus": {"port": 5030, "unit_id": 1},
                }
            ]
        },
    )

    id: UUID | None = Field(None, description="Omitted → a new uuid4 (PUT: the path id).")
    site_id: UUID = Field(description="An existing site.")
    name: str = Field(description="Non-empty.")
    location: str | None = None
    capacity_mwhr: float = Field(description="> 0, MWh.")
    max_mw: float = Field(description=">= 0, MW (discharge).")
    min_mw: float = Field(description="<= 0, MW (charge).")
    ramp_rate_mw_per_min: float = Field(description="> 0.")
    efficiency: float = Field(description="One-way, in (0, 1].")
    initial_soc_pct: float | None = Field(None, description="Within [soc_min, soc_max]; 50.")
    soc_min_pct: float | None = Field(None, description="[0, 100); default 0.")
    soc_max_pct: float | None = Field(None, description="(soc_min, 100]; default 100.")
    watchdog_timeout_s: float | None = Field(None, description="[0, 65535]; 0 = off.")
    modbus: ModbusIn | None = Field(None, description="Omitted → port 5020 + index, unit 1.")

    def as_yaml_mapping(self) -> dict[str, Any]:
        """The body as the assets.yaml mapping it stands for (omitted fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def site_yaml_mapping(body: SiteIn) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=True)


Origin = Literal["config", "api"]


class RegisteredSiteOut(SiteOut):
    origin: Origin = Field(description="`config` = from assets.yaml; `api` = registered.")

    @classmethod
    def with_origin(cls, site: Site, origin: Origin) -> RegisteredSiteOut:
        return cls(id=UUID(site.id), name=site.name, location=site.location, origin=origin)


class RegisteredAssetOut(AssetOut):
    origin: Origin = Field(description="`config` = from assets.yaml; `api` = registered.")

    @classmethod
    def with_origin(cls, spec: AssetSpec, origin: Origin) -> RegisteredAssetOut:
        return cls(**AssetOut.of(spec).model_dump(), origin=origin)
