"""Battery model v2 (DESIGN §10): one small module per physical effect, composed by
:mod:`.asset`. Pure like the rest of ``sim``: no clock, no I/O; everything takes ``dt_s``."""

from .asset import AssetModel, GridState, ModelStep
from .params import (
    FrequencyParams,
    ModelParams,
    ReactiveParams,
    ThermalParams,
)

__all__ = [
    "AssetModel",
    "FrequencyParams",
    "GridState",
    "ModelParams",
    "ModelStep",
    "ReactiveParams",
    "ThermalParams",
]
