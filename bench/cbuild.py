"""Compile the C server and load generator (bench/c/*.c) into bench/build/ at bench time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .common import BENCH_DIR, BUILD_DIR

C_DIR = BENCH_DIR / "c"


class BuildError(RuntimeError):
    pass


def _compile(name: str, libs: list[str]) -> Path:
    src = C_DIR / f"{name}.c"
    out = BUILD_DIR / name
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BuildError("no C compiler (gcc) on PATH")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [gcc, "-O2", "-Wall", "-o", str(out), str(src), *libs],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if res.returncode != 0:
        raise BuildError(f"compiling {src.name} failed:\n{res.stderr[-2000:]}")
    return out


def load_generator() -> Path:
    return _compile("mbload", [])


def libmodbus_server() -> Path:
    if not Path("/usr/include/modbus/modbus.h").exists():
        raise BuildError("libmodbus headers missing (Debian package libmodbus-dev)")
    return _compile("mbserver", ["-I/usr/include/modbus", "-lmodbus"])
