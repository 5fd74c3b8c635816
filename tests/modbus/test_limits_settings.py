"""Connection-hygiene settings: documented defaults, CLI flags, env, refused bad values."""

from __future__ import annotations

import pytest

from bess_sim.cli import _parser, _settings, main
from bess_sim.modbus.connection import ConnectionLimits
from bess_sim.settings import Settings
from tests.conftest import ROOT


def test_defaults_match_the_documented_ones() -> None:
    s = Settings()
    limits = ConnectionLimits()
    assert (s.modbus_max_connections, limits.max_connections) == (100, 100)
    assert (s.modbus_idle_timeout_s, limits.idle_timeout_s) == (300.0, 300.0)
    assert (s.modbus_frame_timeout_s, limits.frame_timeout_s) == (10.0, 10.0)
    assert (s.modbus_backlog, limits.backlog) == (1024, 1024)
    doc = (ROOT / "docs" / "modbus.md").read_text()
    for flag in ("--modbus-max-connections", "--modbus-idle-timeout", "--modbus-frame-timeout",
                 "--modbus-backlog"):  # fmt: skip
        assert flag in doc


def test_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BESS_MODBUS_IDLE_TIMEOUT_S", "60")
    args = _parser().parse_args(
        ["run", "--modbus-max-connections", "8", "--modbus-frame-timeout", "2.5",
         "--modbus-backlog", "64"]
    )  # fmt: skip
    s = _settings(args)
    assert s.modbus_max_connections == 8 and s.modbus_frame_timeout_s == 2.5
    assert s.modbus_backlog == 64 and s.modbus_idle_timeout_s == 60.0


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--modbus-max-connections", "0", "modbus_max_connections"),
        ("--modbus-idle-timeout", "-1", "modbus_idle_timeout_s"),
        ("--modbus-frame-timeout", "nan", "modbus_frame_timeout_s"),
        ("--modbus-backlog", "0", "modbus_backlog"),
    ],
)
def test_bad_values_exit_2_naming_the_setting(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, field: str
) -> None:
    assert main(["run", flag, value, "--assets", str(ROOT / "assets.yaml")]) == 2
    assert field in capsys.readouterr().err
