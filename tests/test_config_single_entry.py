"""config.parse_site / parse_asset / check_asset_clash: one entry alone, with the rules of a
whole assets.yaml (used by run-time registration, DESIGN §14)."""

from __future__ import annotations

from typing import Any

import pytest

from bess_sim.config import ConfigError, check_asset_clash, parse_asset, parse_assets, parse_site
from tests.conftest import SITE_A, fleet_data


def entry(**overrides: Any) -> dict[str, Any]:
    raw = dict(fleet_data(5020, 5021)["assets"][0])
    raw.update(overrides)
    return raw


@pytest.mark.parametrize(
    "overrides",
    [{"min_mw": 3}, {"efficiency": 0}, {"modbus": {"port": 0}}, {"soc_min_pct": -1}, {"x": 1}],
)
def test_single_entry_fails_like_the_file(overrides: dict[str, Any]) -> None:
    raw = entry(**overrides)
    with pytest.raises(ConfigError) as alone:
        parse_asset(raw, "assets.yaml", 0, {SITE_A})
    data = {"sites": [{"id": SITE_A, "name": "A"}], "assets": [raw]}
    with pytest.raises(ConfigError) as whole:
        parse_assets(data, "assets.yaml")
    assert str(alone.value) == str(whole.value)
    assert alone.value.field == whole.value.field


def test_default_modbus_port_follows_the_index() -> None:
    raw = entry()
    del raw["modbus"]
    assert parse_asset(raw, "f", 7, {SITE_A}).modbus.port == 5027


def test_clash_check_names_the_other_asset_and_allows_replacing_itself() -> None:
    cfg = parse_assets(fleet_data(5020, 5021), "f")
    first = cfg.assets[0]
    check_asset_clash(first, cfg.assets, "f", replacing=first.id)
    with pytest.raises(ConfigError) as exc:
        check_asset_clash(first, cfg.assets, "f")
    assert exc.value.field == "id"
    other = parse_asset(entry(id="aaaaaaaa-0000-4000-8000-00000000000f"), "f", 3, {SITE_A})
    with pytest.raises(ConfigError) as exc:
        check_asset_clash(other, cfg.assets, "f")
    assert exc.value.field == "modbus" and "BESS-1" in str(exc.value)


def test_parse_site_alone() -> None:
    assert parse_site({"id": SITE_A, "name": "A"}, "f").location == ""
    with pytest.raises(ConfigError) as exc:
        parse_site({"id": "not-a-uuid", "name": "A"}, "f")
    assert exc.value.field == "id"
