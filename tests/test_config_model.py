"""DESIGN §10 fields of assets.yaml: exit 2 naming file, entry and field (like §2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bess_sim.cli import main
from tests.conftest import ROOT, fleet_data

THERMAL = {"ambient_c": 25, "heat_capacity_mj_per_k": 20, "resistance_k_per_mw": 50,
           "derate_start_c": 40, "derate_end_c": 50, "trip_c": 55}  # fmt: skip

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("curve one point", {"efficiency_curve": [[50, 0.9]]}, "efficiency_curve"),
    ("curve unsorted", {"efficiency_curve": [[50, 0.9], [10, 0.9]]}, "efficiency_curve[1]"),
    ("curve eff > 1", {"efficiency_curve": [[0, 0.9], [100, 1.2]]}, "efficiency_curve[1]"),
    ("curve eff 0", {"efficiency_curve": [[0, 0.0], [100, 0.9]]}, "efficiency_curve[0]"),
    ("curve not pairs", {"efficiency_curve": [1, 2]}, "efficiency_curve[0]"),
    ("taper pct > 100", {"charge_taper": [[80, 100], [95, 120]]}, "charge_taper[1]"),
    ("taper soc > 100", {"discharge_taper": [[0, 10], [101, 100]]}, "discharge_taper[1]"),
    ("self discharge < 0", {"self_discharge_pct_per_day": -1}, "self_discharge_pct_per_day"),
    ("thermal unknown", {"thermal": {**THERMAL, "tau": 1}}, "thermal.tau"),
    ("thermal missing", {"thermal": {"ambient_c": 25}}, "thermal.heat_capacity_mj_per_k"),
    ("derate order", {"thermal": {**THERMAL, "derate_end_c": 30}}, "thermal.derate_end_c"),
    ("trip below derate", {"thermal": {**THERMAL, "trip_c": 30}}, "thermal.trip_c"),
    ("reactive s 0", {"reactive": {"s_max_mva": 0}}, "reactive.s_max_mva"),
    ("reactive priority", {"reactive": {"s_max_mva": 5, "priority": "x"}}, "reactive.priority"),
    ("q_max < 0", {"reactive": {"s_max_mva": 5, "q_max_mvar": -1}}, "reactive.q_max_mvar"),
    ("droop mode", {"frequency_response": {"mode": "ffr", "droop_pct": 4}},
     "frequency_response.mode"),
    ("nominal 55", {"frequency_response": {"nominal_hz": 55, "droop_pct": 4}},
     "frequency_response.nominal_hz"),
    ("droop 0", {"frequency_response": {"droop_pct": 0}}, "frequency_response.droop_pct"),
    ("fr max > rating", {"frequency_response": {"droop_pct": 4, "max_mw": 500}},
     "frequency_response.max_mw"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_model_fields_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict[str, Any], field: str
) -> None:
    data = copy.deepcopy(fleet_data(5020, 5021))
    data["assets"][0].update(extra)
    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", "--assets", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "asset 'BESS-1'" in err
    assert f"field '{field}'" in err
    assert "Traceback" not in err


def test_shipped_example_has_every_v2_field() -> None:
    from bess_sim.config import load_assets

    models = [a.model for a in load_assets(ROOT / "assets.yaml").assets if a.model is not None]
    assert len(models) == 1
    m = models[0]
    assert m.efficiency_curve and m.charge_taper and m.discharge_taper
    assert m.self_discharge_pct_per_day > 0 and m.thermal and m.reactive and m.frequency_response
