"""``--seed`` / ``BESS_SEED`` reach the settings; a bad seed exits 2 naming it."""

from __future__ import annotations

import pytest

from bess_sim.cli import _parser, _settings, main
from bess_sim.faults import DEFAULT_SEED
from bess_sim.settings import Settings
from tests.conftest import ROOT


def test_seed_flag_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BESS_SEED", raising=False)
    assert Settings().seed == DEFAULT_SEED
    assert _settings(_parser().parse_args(["run", "--seed", "7"])).seed == 7
    monkeypatch.setenv("BESS_SEED", "11")
    assert Settings().seed == 11
    assert _settings(_parser().parse_args(["run", "--seed", "7"])).seed == 7  # flag wins


def test_bad_seed_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--seed", "-1", "--assets", str(ROOT / "assets.yaml")]) == 2
    assert "seed" in capsys.readouterr().err
