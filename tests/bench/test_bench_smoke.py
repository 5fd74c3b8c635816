"""The benchmark harness must not rot: ``python -m bench --quick`` runs every part end to end
(real servers, C load generator, PostgreSQL) and writes the JSON with every part's keys.

Nothing about speed is asserted here (numbers belong in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Keys each part must report (the README and bench/RESULTS.md quote them).
EXPECTED: dict[str, list[tuple[str, ...]]] = {
    "modbus": [("summary", "c"), ("summary", "py"), ("bess_mode",)],
    "paced": [("summary",), ("raw", "bess", "1Hz", "p999_us")],
    "scale": [("fleet", "sizes"), ("startup", "config_to_ready_s")],
    "db": [
        ("throughput", "writer_rows_per_s"),
        ("throughput", "executemany_rows_per_s"),
        ("ticking_10k", "tick", "p99_ms"),
        ("ticking_10k", "overruns"),
    ],
    "rest": [("summary", "bess", "rps"), ("summary", "bare-fastapi", "rps")],
    "model": [("summary", "plain", "p99_ms"), ("summary", "all", "p99_ms"), ("target_holds",)],
    "sunspec": [("scan", "p99_ms"), ("poll", "sunspec", "p99_ms"), ("poll", "native", "p99_ms")],
    "hotpath": [
        ("throughput",),
        ("paced_10hz", "bess", "p99_us"),
        ("paced_1hz", "libmodbus", "p999_us"),
        ("scale_1hz", "bess-10k", "p999_us"),
        ("scale_1hz", "bess-10k-onloop", "p999_us"),
    ],
}


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        assert isinstance(d, dict) and key in d, f"missing {'.'.join(path)}"
        d = d[key]
    return d


@pytest.mark.db
@pytest.mark.timeout(300)
def test_quick_bench_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    res = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-uvloop", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["parts"]) == set(EXPECTED)
    for part, paths in EXPECTED.items():
        assert "error" not in data["parts"][part], data["parts"][part].get("error")
        for path in paths:
            _get(data["parts"][part], path)
    # one verdict (or "not measured") per issue-6, issue-10 and issue-15 target
    assert len(data["targets"]) == 11
    assert "## Targets" in res.stdout
    assert data["machine"]["nproc"] >= 1
