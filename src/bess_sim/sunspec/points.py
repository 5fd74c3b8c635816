"""The SunSpec points list per asset (``bess-sim points``) and the check that the native
register map leaves the SunSpec block free (DESIGN §13)."""

from __future__ import annotations

from datetime import UTC, datetime

from ..config import ConfigError
from ..sim import AssetSpec, Fleet, FleetConfig, Site
from ..sim.model import ModbusProfile
from .image import SunSpecDevice
from .layout import BASE_ADDRESS, Layout, load_layout
from .live import ControlEcho, live_values


def check_no_clash(
    fleet: FleetConfig, holding_points: list[tuple[str, int, int]], file: str
) -> None:
    """Refuse a native holding point (name, address, end) inside the SunSpec block when any
    asset serves both maps: one address cannot mean two things."""
    if not any(a.modbus.profile is ModbusProfile.BOTH for a in fleet.assets):
        return
    lay = load_layout()
    last = BASE_ADDRESS + lay.size - 1
    for name, address, end in holding_points:
        if address <= last and end > BASE_ADDRESS:
            raise ConfigError(
                file,
                f"holding registers {address}..{end - 1} overlap the SunSpec block "
                f"{BASE_ADDRESS}..{last} served by assets with modbus.profile 'both' "
                "(move the point, or set those assets' profile to native or sunspec)",
                f"point '{name}'",
                "address",
            )


def sunspec_rows(asset: AssetSpec, layout: Layout | None = None) -> list[dict[str, str]]:
    """One row per SunSpec point of ``asset`` in the columns of the native points list."""
    if asset.modbus.profile is ModbusProfile.NATIVE:
        return []
    dev = SunSpecDevice(asset, layout)
    # A point is implemented when the mapping gives it a value (None = not implemented); the
    # initial snapshot of a one-asset fleet has whatever fields the snapshot has.
    one = FleetConfig((Site(asset.site_id, "", ""),), (asset,), "points")
    idle = Fleet(one, datetime(2000, 1, 1, tzinfo=UTC)).snapshot(asset.id)
    implemented_keys = dev.static | live_values(asset, idle, ControlEcho(0, 0.0, 0.0, 0))
    rows = [_row(asset, BASE_ADDRESS, 2, "SunS", "string", "", "", "R", "SunSpec marker 'SunS'")]
    for p in dev.layout.points:
        exp = dev.scale_exponent(p.model_id, p.name)
        implemented = p.name in ("ID", "L") or implemented_keys.get(p.key) is not None
        desc = p.label + ("" if implemented else " (not implemented)")
        rows.append(
            _row(
                asset,
                p.address,
                p.size,
                f"{p.model_id}.{p.name}",
                p.type,
                "" if exp is None else f"{10.0**exp:g}",
                p.units,
                p.access,
                desc,
            )
        )
    end = dev.layout.end_address
    rows.append(_row(asset, end, 2, "end", "uint16", "", "", "R", "end model 0xFFFF, L 0"))
    return rows


def _row(asset: AssetSpec, address: int, size: int, name: str, ptype: str, scale: str,
         unit: str, access: str, description: str) -> dict[str, str]:  # fmt: skip
    return {
        "asset": asset.name,
        "asset_id": asset.id,
        "port": str(asset.modbus.port),
        "unit_id": str(asset.modbus.unit_id),
        "table": "holding",
        "address": str(address),
        "registers": str(size),
        "name": name,
        "type": ptype,
        "word_order": "big" if size >= 2 and ptype != "string" else "",
        "scale": scale,
        "unit": unit,
        "access": access,
        "description": description,
    }
