"""SIGTERM/SIGINT in every phase of start-up exit 0 without a traceback (issue 9 item 11), and
bad files/settings exit 2 naming them (item 12). Real subprocesses of ``python -m bess_sim``
and of the installed ``bess-sim`` console script."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, fleet_data, two_free_tcp_ports


def _assets(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "assets.yaml"
    path.write_text(yaml.safe_dump(fleet_data(*two_free_tcp_ports())))
    return path


def _start(tmp_path: Path, *, script: bool = False) -> subprocess.Popen[str]:
    exe = (
        [str(Path(sys.executable).parent / "bess-sim")]
        if script
        else [sys.executable, "-m", "bess_sim"]
    )
    return subprocess.Popen(
        [*exe, "run", "--http-port", "0", "--assets", str(_assets(tmp_path)),
         "--tick-interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], sig: signal.Signals, before: str = "") -> None:
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = before + err
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    assert "Traceback" not in err, err


def _wait_handlers_installed(proc: subprocess.Popen[str]) -> None:
    """Until the process catches SIGTERM (SigCgt in /proc): the earliest moment any program
    can react to a signal; before it the interpreter itself is still starting (~30 ms)."""
    bit = 1 << (signal.SIGTERM - 1)
    while proc.poll() is None:
        with open(f"/proc/{proc.pid}/status") as f:
            cgt = next(line for line in f if line.startswith("SigCgt:"))
        if int(cgt.split()[1], 16) & bit:
            return
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.15, 0.3, 0.6, 1.0])
def test_signal_at_any_moment_of_start_up_exits_0(
    tmp_path: Path, sig: signal.Signals, delay_s: float
) -> None:
    proc = _start(tmp_path)
    _wait_handlers_installed(proc)
    time.sleep(delay_s)
    _finish(proc, sig)


@pytest.mark.parametrize(
    "phase",
    [
        "event loop:",  # CLI done, the asyncio runner about to start
        "assets:",  # inside the runtime's start-up
        "http: listening",  # HTTP up, clock not yet started
        "ready",
    ],
)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_at_each_logged_phase_exits_0(
    tmp_path: Path, phase: str, sig: signal.Signals
) -> None:
    proc = _start(tmp_path)
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if phase in line:
            break
    else:
        raise AssertionError(f"never logged {phase!r}: {seen}")
    _finish(proc, sig, seen)


@pytest.mark.skipif(
    shutil.which("bess-sim", path=str(Path(sys.executable).parent)) is None,
    reason="console script not installed in this environment",
)
def test_console_script_early_sigterm_exits_0(tmp_path: Path) -> None:
    proc = _start(tmp_path, script=True)
    _wait_handlers_installed(proc)
    _finish(proc, signal.SIGTERM)


def _bess(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bess_sim", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        env={**os.environ, "DATABASE_URL": "", **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("which", ["--assets", "--register-map"])
def test_non_utf8_yaml_exits_2_naming_the_file(tmp_path: Path, which: str) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("sites: []\n# Zürich\n".encode("latin-1"))
    res = _bess("check-config", which, str(bad))
    assert res.returncode == 2, res.stderr
    assert str(bad) in res.stderr and "UTF-8" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@h/db", "postgresql://"),
        ("postgresql://u@h:99999/db", "range"),
        ("postgresql://u@h:0/db", "1-65535"),
        ("not a url", "postgresql://"),
        ("postgresql://u:secret@[::1/db", "valid URL"),
    ],
)
def test_malformed_database_url_exits_2_naming_it(tmp_path: Path, url: str, words: str) -> None:
    res = _bess("run", "--http-port", "0", "--assets", str(_assets(tmp_path)),
                env={"DATABASE_URL": url})  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "DATABASE_URL" in res.stderr and words in res.stderr, res.stderr
    assert "secret" not in res.stderr and "Traceback" not in res.stderr


def test_speed_nan_message_is_accurate(tmp_path: Path) -> None:
    res = _bess("run", "--speed", "nan", "--assets", str(_assets(tmp_path)))
    assert res.returncode == 2
    assert "speed" in res.stderr and "finite" in res.stderr, res.stderr


def test_start_time_at_end_of_calendar_exits_2(tmp_path: Path) -> None:
    res = _bess("run", "--start-time", "9999-12-31T23:59:58Z", "--assets", str(_assets(tmp_path)))
    assert res.returncode == 2
    assert "start_time" in res.stderr and "Traceback" not in res.stderr


def _main_with_cli(monkeypatch: pytest.MonkeyPatch, cli_main: object) -> int:
    """``bess_sim.__main__.main`` with the CLI replaced; the test process's own signal
    handlers are put back afterwards."""
    import bess_sim.cli
    from bess_sim.__main__ import main

    monkeypatch.setattr(bess_sim.cli, "main", cli_main)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return main([])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_signal_wrapped_by_import_machinery_still_exits_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI once failed with exit 1: SIGTERM landed inside a dataclass field's ``__set_name__``
    while ``faults.view`` was imported, and Python 3.11 re-raised it as ``RuntimeError: Error
    calling __set_name__`` with the interrupt as its cause. Reproduced here deterministically."""
    from bess_sim.__main__ import Interrupted

    class Field:
        def __set_name__(self, owner: type, name: str) -> None:
            raise Interrupted(signal.SIGTERM)

    def cli_main(argv: object) -> int:
        type("AssetView", (), {"biases": Field()})  # as a class body being executed would
        return 1

    assert _main_with_cli(monkeypatch, cli_main) == 0


def test_an_unrelated_error_during_start_up_is_not_taken_for_a_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cli_main(argv: object) -> int:
        try:
            raise ValueError("inner")
        except ValueError as exc:
            raise RuntimeError("outer") from exc

    with pytest.raises(RuntimeError, match="outer"):
        _main_with_cli(monkeypatch, cli_main)
