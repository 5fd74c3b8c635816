"""``bess-sim scenario run`` (subprocesses): exit codes, progress, report.json, junit.xml."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import junitparser
import yaml

from tests.conftest import ROOT, free_tcp_port
from tests.scenario.helpers import (
    EXAMPLE_FLEET,
    SCENARIOS,
    example_fleet_on_free_ports,
    scenario,
)


def bess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bess_sim", *args, "--log-level", "warning"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip


def write(tmp_path: Path, data: dict[str, Any], name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def check_junit_schema(path: Path) -> ET.Element:
    """The elements and attributes the JUnit XML schema (Jenkins' junit-10.xsd, which GitLab
    and GitHub reporters read) requires."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert suites
    for suite in suites:
        for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
            assert attr in suite.attrib, attr
        cases = suite.findall("testcase")
        assert int(suite.attrib["tests"]) == len(cases)
        assert int(suite.attrib["failures"]) == sum(
            1 for c in cases if c.find("failure") is not None
        )
        for case in cases:
            assert {"name", "classname", "time"} <= set(case.attrib)
            float(case.attrib["time"])
            for fail in case.findall("failure"):
                assert "message" in fail.attrib and "type" in fail.attrib
    return root


def test_droop_example_passes_with_a_progress_line_per_step(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = bess("scenario", "run", str(SCENARIOS / "frequency-droop.yaml"),
               "--assets", str(EXAMPLE_FLEET), "--report", str(out))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if " step " in ln]
    n = len(yaml.safe_load((SCENARIOS / "frequency-droop.yaml").read_text())["steps"])
    assert len(lines) == n
    assert "PASSED: 8 passed, 0 failed" in res.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "passed" and len(report["expectations"]) == 8
    assert report["scorecard"]["fleet"]["ems_commands"] == 0
    check_junit_schema(out / "junit.xml")
    xml = junitparser.JUnitXml.fromfile(str(out / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert len(cases) == 8 and all(c.is_passed for c in cases)


def test_a_failed_expectation_exits_1_with_a_junit_failure(tmp_path: Path) -> None:
    path = write(tmp_path, scenario(
        {"at": 0, "dispatch": {"asset": "PLAIN-1", "mw": 4}},
        {"at": 10, "expect": {"asset": "PLAIN-1", "field": "current_mw", "op": ">=",
                              "value": 2}, "name": "ramps up"},
        {"at": 10, "expect": {"asset": "PLAIN-1", "field": "current_mw", "op": "==",
                              "value": 9, "during": [10, 12]}, "name": "wrong on purpose"},
        name="fails",
    ))  # fmt: skip
    out = tmp_path / "r"
    res = bess("scenario", "run", str(path), "--assets", str(EXAMPLE_FLEET), "--report", str(out))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED: 1 passed, 1 failed" in res.stdout
    check_junit_schema(out / "junit.xml")
    suite = next(iter(junitparser.JUnitXml.fromfile(str(out / "junit.xml"))))
    by_name = {c.name: c for c in suite}
    assert by_name["step 1: ramps up"].is_passed
    failed = by_name["step 2: wrong on purpose"]
    assert not failed.is_passed
    (failure,) = failed.result
    assert isinstance(failure, junitparser.Failure)
    # PLAIN-1 ramps 120 MW/min = 2 MW/s: at 4 MW from t = 2 s.
    assert "PLAIN-1 current_mw = 4 at 10 s; expected == 9" in (failure.message or "")
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "failed"
    assert report["scorecard"]["fleet"]["commands_by_source"]["scenario"] == 1


def test_bad_file_exits_2_naming_file_step_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        scenario(
            {"at": 0, "speed": {"x": 1}}, {"at": 5, "dispatch": {"asset": "PLAIN-1", "mw": "lots"}}
        ),
    )
    res = bess("scenario", "run", str(path), "--assets", str(EXAMPLE_FLEET))
    assert res.returncode == 2
    assert f"{path}: step 1 (at 5): dispatch.mw" in res.stderr
    assert "Traceback" not in res.stderr
    unknown = write(tmp_path, scenario({"at": 3, "trip": {"asset": "GHOST"}}), "u.yaml")
    res = bess("scenario", "run", str(unknown), "--assets", str(EXAMPLE_FLEET))
    assert res.returncode == 2 and "step 0 (at 3): trip.asset: unknown asset 'GHOST'" in res.stderr
    res = bess("scenario", "run", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "missing.yaml: cannot read the scenario file" in res.stderr
    assert "Traceback" not in res.stderr


def test_fault_steps_exit_2_when_refused(tmp_path: Path) -> None:
    """Without fault injection (this build) every fault step is refused; with it, one whose
    params the fault layer refuses. Either way: exit 2 naming the step, before anything runs."""
    path = write(tmp_path, scenario(
        {"at": 3, "fault": {"kind": "derate", "asset": "PLAIN-1",
                            "params": {"discharge_pct": 150}}},
    ))  # fmt: skip
    res = bess("scenario", "run", str(path), "--assets", str(EXAMPLE_FLEET),
               "--report", str(tmp_path / "r"))  # fmt: skip
    assert res.returncode == 2
    assert f"{path}: step 0 (at 3): fault: " in res.stderr
    assert "discharge_pct" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_run_with_scenario_runs_it_live(tmp_path: Path) -> None:
    fleet, _ = example_fleet_on_free_ports(tmp_path)
    port = free_tcp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bess_sim", "run", "--scenario",
         str(SCENARIOS / "frequency-droop.yaml"), "--assets", str(fleet), "--clock", "manual",
         "--tick-interval", "0.5", "--http-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": ""},
    )  # fmt: skip
    try:
        body: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and body.get("state") not in ("passed", "failed"):
            assert proc.poll() is None, proc.communicate()
            try:
                url = f"http://127.0.0.1:{port}/scenarios/current"
                with urllib.request.urlopen(url, timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert body.get("state") == "passed", body
        assert body["passed"] == 8
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "scenario frequency-droop: passed (8 passed, 0 failed)" in err


def test_run_with_a_bad_scenario_exits_2_before_starting(tmp_path: Path) -> None:
    path = write(tmp_path, scenario({"at": 1, "frequency": {"hz": "high"}}))
    res = bess("run", "--scenario", str(path), "--assets", str(EXAMPLE_FLEET))
    assert res.returncode == 2
    assert f"{path}: step 0 (at 1): frequency.hz" in res.stderr
    assert "http: listening" not in res.stderr


def test_scenario_run_ignores_database_url(tmp_path: Path) -> None:
    path = write(tmp_path, scenario({"at": 1, "expect": {"asset": "PLAIN-1", "field": "soc_pct",
                                                         "op": "==", "value": 50}}))  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "bess_sim", "scenario", "run", str(path), "--assets",
         str(EXAMPLE_FLEET)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "database: disabled" in res.stderr


def test_sigint_stops_the_run_writes_reports_and_exits_1(tmp_path: Path) -> None:
    fleet, _ = example_fleet_on_free_ports(tmp_path)
    path = write(tmp_path, scenario(
        {"at": 0, "expect": {"asset": "*", "field": "soc_pct", "op": ">", "value": 0,
                             "during": [0, 3600]}},
        name="long",
    ))  # fmt: skip
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bess_sim", "scenario", "run", str(path), "--assets", str(fleet),
         "--realtime", "--http-port", "0", "--report", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "paced" in proc.stdout.readline()  # up and running
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr
    assert "scenario long: STOPPED" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "stopped"
    assert report["expectations"][0]["status"] == "pending"
    check_junit_schema(out / "junit.xml")
    (case,) = next(iter(junitparser.JUnitXml.fromfile(str(out / "junit.xml"))))
    assert not case.is_passed and case.is_skipped
