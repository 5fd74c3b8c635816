"""Run-time registration (DESIGN §14) on a scale-out fleet (§15).

The headend's ``ClusterRegistry`` validates a change exactly as ``bess-sim run`` does (the
same ``Registry`` rules on the whole fleet, so the same 404/409/422 and messages), then has
the agent(s) apply it with their own ``Registry`` (an asset's Modbus port is bound there: a
bind failure is the agent's 409), then applies it to its mirror and database.

- Sites: every agent (an asset of any shard may name the site).
- A new asset goes to the agent already serving a unit on its Modbus port (units of one
  port stay on one agent: they share its TCP listener); else to the agent with the fewest
  assets (lowest K on a tie). Changing or deleting an asset goes to its owner.
- Agents keep the registrations in the KV bucket (``site.<id>``, ``asset.K.<id>``: the
  request body), so a restarted agent re-adds them before it resumes; a headend adds the
  ones its database (or assets.yaml) does not have at start.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..api.ports import AssetUnavailableError
from ..registry import REQUEST, RegistrationError, Registry, spec_mapping
from ..sim import AssetSpec, Site
from . import wire

if TYPE_CHECKING:
    from .headend import Headend


class ClusterRegistry(Registry):
    _headend: Headend

    def bind_headend(self, headend: Headend) -> None:
        self._headend = headend

    # ------------------------------------------------------------ forwarding
    async def _send(self, shards: list[int], body: dict[str, Any]) -> list[dict[str, Any]]:
        """``body`` to each shard's agent; their answers, or the first refusal raised as
        the agent's RegistrationError (503 if one is offline or silent)."""
        h = self._headend
        answers = []
        for k in shards:
            if k in h._offline:
                raise RegistrationError(503, f"agent {k} is offline: nothing changed")
            try:
                data = await h.bus_request(k, "registry", wire.dumps(body))
            except AssetUnavailableError as exc:
                raise RegistrationError(503, str(exc)) from None
            msg = wire.loads(data)
            if "error" in msg:
                raise RegistrationError(
                    int(msg.get("status", 503)), str(msg["detail"]), msg.get("field")
                )
            answers.append(msg)
        return answers

    def _all(self) -> list[int]:
        try:
            return list(range(self._headend._all_agents("change the fleet")))
        except AssetUnavailableError as exc:
            raise RegistrationError(503, str(exc)) from None

    def _owner(self, asset_id: str) -> int:
        shard = self._headend.mirror.owner.get(asset_id)
        if shard is None:
            raise RegistrationError(503, f"asset {asset_id}: no agent has reported it yet")
        return shard

    def pick_shard(self, spec: AssetSpec) -> int:
        """The agent serving a unit on the asset's port, else the one with fewest assets."""
        shards = self._all()
        owner = self._headend.mirror.owner
        on_port = sorted(
            owner[a.id]
            for a in self.fleet.specs
            if a.modbus.port == spec.modbus.port and a.id in owner
        )
        if on_port:
            return on_port[0]
        load = dict.fromkeys(shards, 0)
        for k in owner.values():
            if k in load:
                load[k] += 1
        return min(shards, key=lambda k: (load[k], k))

    def _apply_telemetry(self, answers: list[dict[str, Any]]) -> None:
        for msg in answers:
            if msg.get("telemetry"):
                batch = wire.batch_of(msg["telemetry"])
                self._headend.mirror.apply(batch)

    # ------------------------------------------------------------ sites
    async def add_site(self, raw: Mapping[str, Any]) -> Site:
        async with self._lock:
            body = dict(raw)
            body.setdefault("id", str(uuid.uuid4()))
            site = self._check_new_site(body)
            store = self._store_ready()
            await self._send(self._all(), {"op": "add_site", "body": body})
            if store is not None:
                await self._stored(store.save_site(site))
            self._add_site_here(site)
            return site

    async def remove_site(self, site_id: str) -> Site:
        async with self._lock:
            self._check_remove_site(site_id)
            store = self._store_ready()
            await self._send(self._all(), {"op": "remove_site", "id": site_id})
            if store is not None:
                await self._stored(store.delete_site(site_id))
            return self._remove_site_here(site_id)

    # ------------------------------------------------------------ assets
    async def add_asset(self, raw: Mapping[str, Any]) -> AssetSpec:
        async with self._lock:
            body = dict(raw)
            body.setdefault("id", str(uuid.uuid4()))
            spec = self._validate_asset(body, REQUEST)
            store = self._store_ready()
            shard = self.pick_shard(spec)
            answers = await self._send([shard], {"op": "add_asset", "body": body})
            if store is not None:
                try:
                    await self._stored(store.save_asset(spec, json.dumps(spec_mapping(spec))))
                except RegistrationError:
                    await self._send([shard], {"op": "remove_asset", "id": spec.id})
                    raise
            self._apply_add(spec, None)
            self._headend.mirror.owner[spec.id] = shard
            self._apply_telemetry(answers)
            self._log("added asset", spec.name, spec.id, spec)
            return spec

    async def replace_asset(self, asset_id: str, raw: Mapping[str, Any]) -> AssetSpec:
        async with self._lock:
            self._registered(asset_id)
            body = dict(raw)
            if "id" in body and body["id"] is not None and str(body["id"]) != asset_id:
                raise RegistrationError(
                    422, f"id {body['id']} differs from the asset id in the path", "id"
                )
            body["id"] = asset_id
            index = [a.id for a in self.fleet.specs].index(asset_id)
            spec = self._validate_asset(body, REQUEST, index=index, replacing=asset_id)
            store = self._store_ready()
            shard = self._owner(asset_id)
            answers = await self._send([shard], {"op": "replace_asset", "body": body})
            if store is not None:
                await self._stored(store.save_asset(spec, json.dumps(spec_mapping(spec))))
            self.fleet.replace_asset(spec)
            self.history.set_assets([a.id for a in self.fleet.specs], changed=[asset_id])
            self._changed()
            self._apply_telemetry(answers)
            self._log("changed asset", spec.name, spec.id, spec)
            return spec

    async def remove_asset(self, asset_id: str) -> AssetSpec:
        self._registered(asset_id)
        shard = self._owner(asset_id)
        async with self._lock:
            self._store_ready()
            await self._send([shard], {"op": "remove_asset", "id": asset_id})
        spec = await super().remove_asset(asset_id)
        self._headend.mirror.owner.pop(asset_id, None)
        return spec

    # ------------------------------------------------------------ start-up
    def load_kv(self, items: Mapping[str, bytes]) -> int:
        """Registrations kept by the agents that this headend does not have yet (no
        database, or one that missed them): added to the mirror. Returns how many."""
        added = 0
        for key, value in sorted(items.items()):
            if key.startswith("site."):
                body = wire.loads(value)
                if str(body["id"]) not in self._site_origin:
                    try:
                        self._add_site_here(self._check_new_site(body))
                    except RegistrationError:
                        continue
                    added += 1
        for key, value in items.items():
            if key.startswith("asset."):
                _, shard, aid = key.split(".", 2)
                if self.fleet.has_asset(aid):
                    continue
                try:
                    spec = self._validate_asset(wire.loads(value), REQUEST)
                except RegistrationError:
                    continue
                self._apply_add(spec, None)
                self._headend.mirror.owner[aid] = int(shard)
                added += 1
        return added
