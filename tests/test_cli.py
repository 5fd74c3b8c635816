"""The bess-sim command: check-config, points, run + SIGTERM, port in use (subprocesses)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bess_sim.cli import main
from tests.conftest import ROOT, free_tcp_port, two_free_tcp_ports


def bess(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bess_sim", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
    )  # fmt: skip


def test_check_config_ok_prints_summary() -> None:
    res = bess("check-config")
    assert res.returncode == 0, res.stderr
    assert "2 sites, 4 assets" in res.stdout and res.stdout.strip().endswith("OK")


def test_points_csv_lists_every_point_of_every_asset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["points", "--format", "csv", "--assets", str(ROOT / "assets.yaml")]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    rows = [r for r in rows if int(r["address"]) < 40000]  # SunSpec rows: tests/sunspec
    assert len(rows) == 4 * 26  # 19 of DESIGN §5 + 7 of §10
    first = rows[0]
    for col in (
        "asset",
        "port",
        "unit_id",
        "table",
        "address",
        "name",
        "type",
        "scale",
        "unit",
        "access",
    ):
        assert col in first
    soc = next(r for r in rows if r["asset"] == "HARB-BESS-2" and r["name"] == "soc_pct")
    assert (soc["port"], soc["unit_id"], soc["table"], soc["address"], soc["type"]) == (
        "5020", "2", "input", "2", "float32",
    )  # fmt: skip
    x10 = next(r for r in rows if r["name"] == "setpoint_mw_x10")
    assert (x10["table"], x10["scale"], x10["access"]) == ("holding", "0.1", "RW")


def test_points_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["points", "--assets", str(ROOT / "assets.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| asset |") and lines[1].startswith("|---|")
    native = [ln for ln in lines[2:] if int(ln.split("|")[6]) < 40000]  # SunSpec: tests/sunspec
    assert len(native) == 4 * 26  # 19 of DESIGN §5 + 7 of §10


def test_bad_setting_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--tick-interval", "0", "--assets", str(ROOT / "assets.yaml")]) == 2
    assert "tick_interval_s" in capsys.readouterr().err


def _wait_http(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except OSError:
            time.sleep(0.1)
    raise AssertionError("simulator did not answer")


def _assets_on_free_ports(tmp_path: Path) -> Path:
    import yaml

    from tests.conftest import fleet_data

    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(fleet_data(*two_free_tcp_ports())))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_then_signal_exits_0_and_releases_port(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_tcp_port()
    assets = _assets_on_free_ports(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bess_sim", "run", "--http-port", str(port), "--assets", str(assets),
         "--tick-interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": ""},
    )  # fmt: skip
    try:
        health = _wait_http(port, proc)
        assert health["db"] == "disabled"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "http: listening" in err and "stopped" in err
    with socket.socket() as s:  # nothing listens any more (TIME_WAIT is fine, as for a server)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_http_port_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = bess(
            "run", "--http-port", str(port), "--assets", str(_assets_on_free_ports(tmp_path))
        )
    assert res.returncode == 2
    assert f"127.0.0.1:{port}" in res.stderr and "Traceback" not in res.stderr


def test_env_settings_and_empty_reset_db(monkeypatch: pytest.MonkeyPatch) -> None:
    from bess_sim.settings import Settings

    monkeypatch.setenv("RESET_DB", "")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BESS_TICK_INTERVAL", "4")
    s = Settings()
    assert s.reset_db is False and s.database_url == "postgresql://u@h/db"
    assert s.log_level == "warning" and s.tick_interval_s == 4.0
    monkeypatch.setenv("RESET_DB", "1")
    assert Settings().reset_db is True
    assert Settings(tick_interval_s=0.5).tick_interval_s == 0.5  # a flag beats the env
