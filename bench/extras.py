"""Optional accelerators measured by the benchmarks: uvloop (event loop) and httptools
(uvicorn's fast HTTP parser). They are installed, only on request (``--install-extras``), with
``pip install --target bench/build/extras`` so that the project's own environment is never
changed; servers started with ``extras=True`` get that folder on PYTHONPATH."""

from __future__ import annotations

import subprocess

from .common import EXTRAS_DIR, PYTHON, bench_env

PACKAGES = ("uvloop", "httptools")


def available(module: str) -> bool:
    res = subprocess.run(
        [PYTHON, "-c", f"import {module}"],
        env=bench_env(extras=True),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return res.returncode == 0


def install() -> str:
    EXTRAS_DIR.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [PYTHON, "-m", "pip", "install", "--quiet", "--target", str(EXTRAS_DIR), *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return "ok" if res.returncode == 0 else f"pip failed: {res.stderr[-500:]}"
