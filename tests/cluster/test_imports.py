"""Import rules of the scale-out room (DESIGN §8, §15): nats-py is imported by
cluster/bus.py only; nothing outside cluster (but the CLI, lazily) imports cluster; the
single-process ``run`` never loads nats."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "bess_sim"


def test_nats_imported_in_one_module() -> None:
    pattern = re.compile(r"^\s*(import nats|from nats)", re.M)
    users = sorted(
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text())
    )
    assert users == ["cluster/bus.py"]


def test_only_the_cli_imports_cluster() -> None:
    pattern = re.compile(r"^\s*(from \.+cluster|import bess_sim\.cluster|from bess_sim\.cluster)")
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "cluster" not in p.parts
        and any(pattern.match(line) for line in p.read_text().splitlines())
    )
    assert users == ["cli.py"]


def test_runtime_does_not_load_nats() -> None:
    code = (
        "import sys, bess_sim.runtime, bess_sim.cli;"
        "bad = [m for m in ('nats', 'bess_sim.cluster') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
