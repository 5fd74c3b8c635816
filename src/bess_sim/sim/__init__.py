"""Pure simulation core: stdlib and numpy only, no clock, no asyncio, no I/O (DESIGN §8)."""

from .dispatch import DispatchRecord, DispatchRequest, DispatchSource, DispatchStatus
from .fleet import AssetControl, Fleet, UnknownAssetError
from .history import HistoryBuffer, HistoryQuery
from .model import Alarm, AssetSpec, FleetConfig, ModbusAddress, Site, Snapshot, Status

__all__ = [
    "Alarm",
    "AssetControl",
    "AssetSpec",
    "DispatchRecord",
    "DispatchRequest",
    "DispatchSource",
    "DispatchStatus",
    "Fleet",
    "FleetConfig",
    "HistoryBuffer",
    "HistoryQuery",
    "ModbusAddress",
    "Site",
    "Snapshot",
    "Status",
    "UnknownAssetError",
]
