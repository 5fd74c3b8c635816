"""The scale-out bench (bench/cluster.py) must not rot: at a tiny size it runs every topology
(real ``bess-sim run``, headend and agents over the real NATS server) and reports every
column. Nothing about speed is asserted (the full grid is run by hand: bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cluster_commands import ROUTES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_cluster_bench_reports_every_topology(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    res = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--assets", "20", "--agents", "1,2",
         "--seconds", "2", "--command-rounds", "2", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["assets"], r["agents"]) for r in results] == [(20, 0), (20, 1), (20, 2)]
    for r in results:
        assert "error" not in r, r
        assert r["ingest_rows_per_s"] > 0 and r["dispatch_rtt_ms"]["n"] > 0, r
        assert r["telemetry_lag_ms"]["n"] > 0 and r["tick_p99_ms"] is not None, r
        # The forwarded commands answered (no 503 at this size) on every topology.
        cmds = r["commands_ms"]
        assert sorted(cmds) == sorted(name for name, _ in ROUTES), cmds
        assert all(c["n"] == 2 and c["answered_503"] == 0 for c in cmds.values()), cmds
    # Every agent reported its ticks through its heartbeats.
    assert [sorted(r["agent_tick_ms"]) for r in results[1:]] == [["0"], ["0", "1"]]
    assert "| assets | topology | tick p99 ms |" in res.stdout
    assert "| assets | topology | POST /faults p50 / p99 ms |" in res.stdout
