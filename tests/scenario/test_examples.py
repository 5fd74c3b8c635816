"""The shipped scenarios/ run green: frequency droop headless, comm loss paced with the
example EMS (a real Modbus master in its own process), derate-then-trip once faults exist."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scenario.helpers import SCENARIOS, example_fleet_on_free_ports

HAS_FAULTS = importlib.util.find_spec("bess_sim.faults") is not None


def scenario_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "bess_sim", "scenario", "run", *args, "--log-level", "warning"]


def test_frequency_droop_example_passes(tmp_path: Path) -> None:
    fleet, _ = example_fleet_on_free_ports(tmp_path)
    res = subprocess.run(
        scenario_run(str(SCENARIOS / "frequency-droop.yaml"), "--assets", str(fleet),
                     "--report", str(tmp_path / "out")),
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_comm_loss_example_passes_with_the_example_ems(tmp_path: Path) -> None:
    """The README's HIL recipe: simulator paced in the background, EMS in the foreground."""
    fleet, ports = example_fleet_on_free_ports(tmp_path)
    out = tmp_path / "out"
    sim = subprocess.Popen(
        scenario_run(str(SCENARIOS / "comm-loss.yaml"), "--assets", str(fleet), "--realtime",
                     "--http-port", "0", "--report", str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        ems = subprocess.run(
            [sys.executable, str(SCENARIOS / "example_ems.py"), "--port", str(ports[15020]),
             "--unit", "2", "--mw", "5", "--hold", "20"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        )  # fmt: skip
        assert ems.returncode == 0, ems.stdout + ems.stderr
        stdout, stderr = sim.communicate(timeout=120)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    assert sim.returncode == 0, stdout + stderr
    report = json.loads((out / "report.json").read_text())
    wd = next(a for a in report["scorecard"]["assets"] if a["asset"] == "WD-1")
    assert wd["commands_by_source"]["modbus"] == 1 and wd["watchdog_reverts"] == 1
    assert "paced (speed" in stdout


@pytest.mark.skipif(not HAS_FAULTS, reason="needs DESIGN §11 fault injection (bess_sim.faults)")
def test_derate_then_trip_example_passes(tmp_path: Path) -> None:
    fleet, _ = example_fleet_on_free_ports(tmp_path)
    res = subprocess.run(
        scenario_run(str(SCENARIOS / "needs-faults" / "derate-then-trip.yaml"), "--assets",
                     str(fleet), "--report", str(tmp_path / "out")),
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
