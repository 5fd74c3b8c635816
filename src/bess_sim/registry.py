"""Run-time registration of sites and assets (DESIGN §14): the one coordinator of a change.

A change is validated first with the rules of assets.yaml (``config.parse_asset`` /
``parse_site`` / ``check_asset_clash``: one rule set), then applied in the order that lets
every fallible step come before anything visible changes:

1. Modbus: bind the asset's port if it is new (address in use → 409, nothing changed);
2. database (when configured): store the row (down → 503, the port bound in 1 is released);
3. fleet, history ring and Modbus device: synchronous, cannot fail, so a tick or a Modbus
   request sees the asset wholly or not at all.

One ``asyncio.Lock`` serialises changes, so two concurrent registrations of the same id or
``(port, unit_id)`` cannot both pass validation: exactly one wins, the other gets 409.
Assets from assets.yaml (origin ``config``) are managed by the file: changing or removing them
here is refused (409 naming the file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import yaml

from .config import ConfigError, check_asset_clash, parse_asset, parse_site
from .config_model import model_mapping
from .modbus import hotplug
from .modbus.server import ModbusBindError, ModbusService
from .sim import AssetSpec, Fleet, HistoryBuffer, Site, UnknownAssetError

if TYPE_CHECKING:
    from .storage.db import PruneCounts

log = logging.getLogger("bess_sim.registry")
_T = TypeVar("_T")

Origin = Literal["config", "api"]
#: Name used in validation messages of API requests (where assets.yaml names its file).
REQUEST = "request body"


class RegistrationError(Exception):
    """A refused change: ``status`` is the HTTP status (404, 409, 422, 503); ``field`` names
    the bad field for 422/409 when there is one."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


class RegistrationStore(Protocol):
    """What the registry needs of the database (``storage.Storage``)."""

    def check_available(self) -> None: ...

    async def save_site(self, site: Site) -> None: ...

    async def save_asset(self, spec: AssetSpec, spec_json: str) -> None: ...

    async def delete_asset(self, asset_id: str) -> PruneCounts: ...

    async def delete_site(self, site_id: str) -> None: ...


def spec_mapping(spec: AssetSpec) -> dict[str, Any]:
    """The asset as an assets.yaml mapping (every field explicit, modbus included; the
    DESIGN §10 model as its own assets.yaml fields)."""
    out = dataclasses.asdict(spec)
    out["modbus"]["profile"] = spec.modbus.profile.value  # plain str for YAML/JSON
    out.pop("model", None)
    out.update(model_mapping(spec.model))
    return out


class Registry:
    """Adds, changes and removes sites and assets of a running simulator."""

    def __init__(
        self,
        fleet: Fleet,
        history: HistoryBuffer,
        *,
        modbus: Callable[[], ModbusService | None],
        storage: Callable[[], RegistrationStore | None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.history = history
        self._modbus = modbus
        self._storage = storage
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self._asset_origin: dict[str, Origin] = {a.id: "config" for a in fleet.specs}
        self._site_origin: dict[str, Origin] = {s.id: "config" for s in fleet.sites}

    # ------------------------------------------------------------ read side
    def asset_origin(self, asset_id: str) -> Origin:
        return self._asset_origin.get(asset_id, "config")

    def site_origin(self, site_id: str) -> Origin:
        return self._site_origin.get(site_id, "config")

    @property
    def persistent(self) -> bool:
        return self._storage() is not None

    def export_yaml(self) -> str:
        """The whole current fleet as an assets.yaml (loadable by ``bess-sim run`` and
        ``check-config``; it reproduces the same fleet, registered assets included)."""
        fleet = self.fleet
        api = [a.name for a in fleet.specs if self.asset_origin(a.id) == "api"]
        header = (
            "# assets.yaml exported by bess-sim (GET /fleet.yaml) at simulated time "
            f"{fleet.now.isoformat()}\n# from {fleet.config.source}"
            + (f"; registered over the API: {', '.join(api)}" if api else "")
            + "\n"
        )
        data = {
            "sites": [dataclasses.asdict(s) for s in fleet.sites],
            "assets": [spec_mapping(a) for a in fleet.specs],
        }
        return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    # ------------------------------------------------------------ start-up
    def load_registered(
        self, site_rows: Sequence[Mapping[str, Any]], asset_rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Put the persisted registrations back (storage calls this before its restore).
        One that no longer fits the file's fleet (its site is gone, its port/unit is now used
        by the file) is left out with a warning and stays in the database untouched."""
        for row in site_rows:
            site = Site(str(row["id"]), str(row["name"]), str(row["location"] or ""))
            if site.id not in self._site_origin:
                self.fleet.add_site(site)
                self._site_origin[site.id] = "api"
        restored = 0
        for row in asset_rows:
            asset_id = str(row["id"])
            try:
                raw = json.loads(row["spec"]) if row["spec"] is not None else None
                spec = self._validate_asset(raw, f"database (registered asset {asset_id})")
            except (RegistrationError, ValueError) as exc:
                log.warning("registration: asset %s not restored: %s", asset_id, exc)
                continue
            self._apply_add(spec, None)
            restored += 1
        if restored or site_rows:
            log.info(
                "registration: restored %d registered assets and %d registered sites from the "
                "database",
                restored,
                len(site_rows),
            )

    # ------------------------------------------------------------ sites
    async def add_site(self, raw: Mapping[str, Any]) -> Site:
        async with self._lock:
            body = dict(raw)
            body.setdefault("id", str(uuid.uuid4()))
            site = self._check_new_site(body)
            store = self._store_ready()
            if store is not None:
                await self._stored(store.save_site(site))
            self._add_site_here(site)
            return site

    async def remove_site(self, site_id: str) -> Site:
        async with self._lock:
            self._check_remove_site(site_id)
            store = self._store_ready()
            if store is not None:
                await self._stored(store.delete_site(site_id))
            return self._remove_site_here(site_id)

    def _check_new_site(self, body: Mapping[str, Any]) -> Site:
        site = self._guard(lambda: parse_site(body, REQUEST))
        if site.id in self._site_origin:
            raise RegistrationError(409, f"site id {site.id} already exists", "id")
        return site

    def _add_site_here(self, site: Site) -> None:
        self.fleet.add_site(site)
        self._site_origin[site.id] = "api"
        self._log("added site", site.name, site.id)

    def _check_remove_site(self, site_id: str) -> None:
        if site_id not in self._site_origin:
            raise RegistrationError(404, f"unknown site {site_id}")
        self._refuse_file_managed(self._site_origin[site_id], f"site {site_id}")
        users = [a.name for a in self.fleet.specs if a.site_id == site_id]
        if users:
            raise RegistrationError(
                409, f"site {site_id} still has assets: {', '.join(users)}; delete them first"
            )

    def _remove_site_here(self, site_id: str) -> Site:
        site = self.fleet.remove_site(site_id)
        del self._site_origin[site_id]
        self._log("removed site", site.name, site.id)
        return site

    # ------------------------------------------------------------ assets
    async def add_asset(self, raw: Mapping[str, Any]) -> AssetSpec:
        async with self._lock:
            body = dict(raw)
            body.setdefault("id", str(uuid.uuid4()))
            spec = self._validate_asset(body, REQUEST)
            store = self._store_ready()
            svc = self._modbus()
            bound = await self._bind(svc, spec)
            if store is not None:
                try:
                    await self._stored(store.save_asset(spec, json.dumps(spec_mapping(spec))))
                except RegistrationError:
                    if bound and svc is not None:
                        await hotplug.release_idle_ports(svc)
                    raise
            self._apply_add(spec, svc)
            self._log("added asset", spec.name, spec.id, spec)
            return spec

    async def replace_asset(self, asset_id: str, raw: Mapping[str, Any]) -> AssetSpec:
        async with self._lock:
            current = self._registered(asset_id)
            body = dict(raw)
            if "id" in body and body["id"] is not None and str(body["id"]) != asset_id:
                raise RegistrationError(
                    422, f"id {body['id']} differs from the asset id in the path", "id"
                )
            body["id"] = asset_id
            index = [a.id for a in self.fleet.specs].index(asset_id)
            spec = self._validate_asset(body, REQUEST, index=index, replacing=asset_id)
            store = self._store_ready()
            svc = self._modbus()
            bound = await self._bind(svc, spec) if spec.modbus != current.modbus else False
            if store is not None:
                try:
                    await self._stored(store.save_asset(spec, json.dumps(spec_mapping(spec))))
                except RegistrationError:
                    if bound and svc is not None:
                        await hotplug.release_idle_ports(svc)
                    raise
            snap = self.fleet.replace_asset(spec)
            self.history.set_assets([a.id for a in self.fleet.specs], changed=[asset_id])
            if svc is not None:
                hotplug.detach(svc, asset_id)
                hotplug.attach(svc, spec, snap)
                await hotplug.release_idle_ports(svc)
            self._changed()
            self._log("changed asset", spec.name, spec.id, spec)
            return spec

    async def remove_asset(self, asset_id: str) -> AssetSpec:
        async with self._lock:
            self._registered(asset_id)
            store = self._store_ready()
            spec = self.fleet.remove_asset(asset_id)  # dispatch in effect → interrupted
            self.history.set_assets([a.id for a in self.fleet.specs])
            svc = self._modbus()
            if svc is not None:
                hotplug.detach(svc, asset_id)
                await hotplug.release_idle_ports(svc)
            del self._asset_origin[asset_id]
            self._changed()
            self._log("removed asset", spec.name, spec.id)
            if store is not None:
                try:
                    counts = await store.delete_asset(asset_id)
                except Exception as exc:
                    log.warning(
                        "registration: asset %s left the running simulator but its rows could "
                        "not be deleted (%s); it returns at the next start unless deleted again",
                        spec.name,
                        exc,
                    )
                    raise RegistrationError(
                        503,
                        f"asset {asset_id} was removed from the running simulator, but the "
                        f"database could not delete it ({exc}); it will be restored at the "
                        "next start",
                    ) from None
                log.info(
                    "registration: deleted %s from the database (%d telemetry rows, %d dispatches)",
                    spec.name,
                    counts.telemetry,
                    counts.dispatches,
                )
            return spec

    # ------------------------------------------------------------ helpers
    def _validate_asset(
        self,
        raw: Any,
        file: str,
        *,
        index: int | None = None,
        replacing: str | None = None,
    ) -> AssetSpec:
        specs = self.fleet.specs
        position = len(specs) if index is None else index
        site_ids = set(self._site_origin)
        spec = self._guard(lambda: parse_asset(raw, file, position, site_ids))
        try:
            check_asset_clash(spec, specs, file, replacing=replacing)
        except ConfigError as exc:
            raise RegistrationError(409, str(exc), exc.field) from None
        return spec

    @staticmethod
    def _guard(parse: Callable[[], _T]) -> _T:
        try:
            return parse()
        except ConfigError as exc:
            raise RegistrationError(422, str(exc), exc.field) from None

    def _registered(self, asset_id: str) -> AssetSpec:
        try:
            spec = self.fleet.spec(asset_id)
        except UnknownAssetError:
            raise RegistrationError(404, f"unknown asset {asset_id}") from None
        self._refuse_file_managed(self.asset_origin(asset_id), f"asset '{spec.name}'")
        return spec

    def _refuse_file_managed(self, origin: Origin, what: str) -> None:
        if origin == "config":
            source = self.fleet.config.source
            raise RegistrationError(
                409,
                f"{what} is managed by {source} (edit that file and restart); only sites and "
                "assets registered over the API can be changed or deleted here",
            )

    def _store_ready(self) -> RegistrationStore | None:
        store = self._storage()
        if store is not None:
            try:
                store.check_available()
            except Exception as exc:
                raise RegistrationError(503, f"not changed: {exc}") from None
        return store

    @staticmethod
    async def _stored(op: Any) -> None:
        try:
            await op
        except Exception as exc:
            raise RegistrationError(503, f"not changed: {exc}") from None

    async def _bind(self, svc: ModbusService | None, spec: AssetSpec) -> bool:
        if svc is None:
            return False
        try:
            return await hotplug.ensure_port(svc, spec.modbus.port)
        except ModbusBindError as exc:
            raise RegistrationError(409, str(exc), "modbus.port") from None

    def _apply_add(self, spec: AssetSpec, svc: ModbusService | None) -> None:
        snap = self.fleet.add_asset(spec)
        self.history.set_assets([a.id for a in self.fleet.specs])
        if svc is not None:
            hotplug.attach(svc, spec, snap)
        self._asset_origin[spec.id] = "api"
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _log(self, what: str, name: str, item_id: str, spec: AssetSpec | None = None) -> None:
        where = f" (Modbus port {spec.modbus.port} unit {spec.modbus.unit_id})" if spec else ""
        keep = "stored in the database" if self.persistent else "in memory only, lost at exit"
        log.info("registration: %s %s %s%s; %s", what, name, item_id, where, keep)
