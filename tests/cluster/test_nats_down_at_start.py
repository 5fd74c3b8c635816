"""An agent or headend started while NATS is unreachable waits for it (the Bus reconnects
forever, so docker-compose may start them before nats) and still stops on SIGTERM/SIGINT with
exit 0 and no traceback: before, the signal was only acted on once start-up had finished,
which it never did, and the process had to be killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import free_port
from tests.conftest import ROOT, fleet_data, two_free_tcp_ports


@pytest.mark.parametrize(
    ("role", "sig"),
    [
        (("agent", "--shard", "0/2"), signal.SIGTERM),
        (("agent", "--shard", "1/2"), signal.SIGINT),
        (("headend", "--http-port", "0"), signal.SIGTERM),
    ],
)
def test_a_signal_stops_a_process_waiting_for_nats(
    tmp_path: Path, role: tuple[str, ...], sig: signal.Signals
) -> None:
    assets = tmp_path / "assets.yaml"
    assets.write_text(yaml.safe_dump(fleet_data(*two_free_tcp_ports())))
    unreachable = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.Popen(
        [sys.executable, "-m", "bess_sim", *role, "--assets", str(assets), "--nats", unreachable],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        seen = ""
        for line in proc.stderr:  # until it is retrying the connection
            seen += line
            if "nats:" in line and "refused" in line:
                break
        else:
            raise AssertionError(f"never tried NATS: {seen}")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = seen + err
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    assert "Traceback" not in err, err
    assert "stopped during start-up" in err, err
