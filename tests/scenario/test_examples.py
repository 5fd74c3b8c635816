"""The shipped scenarios/ run green: frequency droop headless, comm loss paced with the
example EMS (a real Modbus master in its own process), derate-then-trip once faults exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, free_tcp_port
from tests.scenario.helpers import SCENARIOS, example_fleet_on_free_ports


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


def _readme_recipe() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## HIL testing") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_readme_hil_recipe_runs_the_comm_loss_example(tmp_path: Path) -> None:
    """The README's CI recipe verbatim (minus pip; ports and paths moved to the test's):
    simulator paced in the background, the example EMS (a real Modbus master in its own
    process) in the foreground, junit.xml at the end."""
    fleet, ports = example_fleet_on_free_ports(tmp_path)
    script = _readme_recipe()
    assert "scenarios/fleet.yaml" in script and "--port 15020" in script
    script = (
        script.replace("pip install -e .\n", "")
        .replace("scenarios/fleet.yaml", str(fleet))
        .replace("--port 15020", f"--port {ports[15020]}")
        .replace("--http-port 3001", f"--http-port {free_tcp_port()}")
        .replace("out/", f"{tmp_path}/out/")
        .replace("bess-sim ", f"{sys.executable} -m bess_sim ")
        .replace("python ", f"{sys.executable} ")
    )
    res = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                         timeout=180, cwd=ROOT, check=False)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "report.json" in res.stdout and "junit.xml" in res.stdout
    assert "comm-loss: PASSED: 6 passed, 0 failed" in res.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    wd = next(a for a in report["scorecard"]["assets"] if a["asset"] == "WD-1")
    assert wd["commands_by_source"]["modbus"] == 1 and wd["watchdog_reverts"] == 1, wd


def test_derate_then_trip_example_passes(tmp_path: Path) -> None:
    fleet, _ = example_fleet_on_free_ports(tmp_path)
    res = subprocess.run(
        scenario_run(str(SCENARIOS / "derate-then-trip.yaml"), "--assets",
                     str(fleet), "--report", str(tmp_path / "out")),
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
