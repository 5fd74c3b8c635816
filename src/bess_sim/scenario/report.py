"""report.json and junit.xml of a finished scenario run (DESIGN §12).

junit.xml follows the common JUnit XML schema (the one Jenkins, GitLab and GitHub test
reporters read): ``testsuites`` > ``testsuite`` (name, tests, failures, errors, skipped,
time, timestamp) > ``testcase`` (name, classname, time) with a ``failure`` (message, type)
for a failed expectation; one testcase per expectation.
"""

from __future__ import annotations

import json
import math
import re
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def clean_json(value: Any) -> Any:
    """JSON has no NaN/inf: they become null (an override fault can publish NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def report_json(status: dict[str, Any], *, wall_s: float, finished_at: datetime) -> str:
    body = {**status, "wall_time_s": wall_s, "finished_at": finished_at.isoformat()}
    return json.dumps(clean_json(body), indent=2, allow_nan=False) + "\n"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "scenario"


def junit_xml(status: dict[str, Any], *, wall_s: float, finished_at: datetime) -> str:
    results: list[dict[str, Any]] = status["expectations"]
    failures = sum(1 for r in results if r["status"] == "failed")
    skipped = sum(1 for r in results if r["status"] == "pending")
    errors = 1 if status["state"] == "error" else 0
    name = str(status["name"])
    attrs = {
        "name": name,
        "tests": str(len(results) + errors),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{wall_s:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            **attrs,
            "timestamp": finished_at.astimezone(UTC).replace(tzinfo=None).isoformat(),
            "hostname": socket.gethostname(),
        },
    )
    props = ET.SubElement(suite, "properties")
    card = status["scorecard"]["fleet"]
    for key, value in (
        ("scenario.source", status.get("source", "")),
        ("scenario.state", status["state"]),
        ("scenario.sim_time_s", f"{status['sim_time_s']:g}"),
        *((f"scorecard.{k}", v) for k, v in card.items() if isinstance(v, int | float)),
    ):
        ET.SubElement(props, "property", {"name": key, "value": _text(value)})
    classname = f"bess_sim.scenario.{_slug(name)}"
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": f"step {r['step']}: {r['name']}",
                "classname": classname,
                "time": "0",
            },
        )
        if r["status"] == "failed":
            fail = ET.SubElement(
                case, "failure", {"message": r["message"], "type": "ExpectationFailed"}
            )
            fail.text = json.dumps(clean_json(r), indent=2)
        elif r["status"] == "pending":
            # A stopped run: its time never came. Not a pass (reporters count skipped).
            ET.SubElement(case, "skipped", {"message": "not evaluated: the run was stopped"})
        else:
            out = ET.SubElement(case, "system-out")
            out.text = r["message"]
    if errors:
        case = ET.SubElement(suite, "testcase", {"name": "scenario run",
                                                 "classname": classname, "time": "0"})  # fmt: skip
        err = ET.SubElement(
            case, "error", {"message": str(status["error"]), "type": "ScenarioError"}
        )
        err.text = str(status["error"])
    out = ET.SubElement(suite, "system-out")
    out.text = json.dumps(clean_json(status["scorecard"]["fleet"]), indent=2)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_reports(directory: Path, status: dict[str, Any], *, wall_s: float) -> list[Path]:
    """Write report.json and junit.xml into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    finished = datetime.now(UTC)
    paths = [directory / "report.json", directory / "junit.xml"]
    paths[0].write_text(report_json(status, wall_s=wall_s, finished_at=finished))
    paths[1].write_text(junit_xml(status, wall_s=wall_s, finished_at=finished), encoding="utf-8")
    return paths
