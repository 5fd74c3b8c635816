"""Entry point of one benchmark part in a child process (importable by name for ``spawn``)."""

from __future__ import annotations

from typing import Any

PARTS = ("modbus", "paced", "scale", "db", "rest", "model", "sunspec", "hotpath")


def run_part(part: str, quick: bool, uvloop: bool) -> dict[str, Any]:
    """Runs in a child process (fresh interpreter: no state carried between parts)."""
    if part == "modbus":
        from .part_modbus import run_throughput

        return run_throughput(quick, uvloop)
    if part == "paced":
        from .part_modbus import run_paced

        return run_paced(quick, uvloop)
    if part == "scale":
        from .part_scale import run_scale, run_startup

        return {"fleet": run_scale(quick), "startup": run_startup(quick)}
    if part == "db":
        from .part_db import run_db

        return run_db(quick)
    if part == "rest":
        from .part_rest import run_rest

        return run_rest(quick, uvloop)
    if part == "model":
        from .part_model import run_model

        return run_model(quick)

    if part == "sunspec":
        from .part_sunspec import run_sunspec

        return run_sunspec(quick, uvloop)
    if part == "hotpath":
        from .part_hotpath import run_hotpath

        return run_hotpath(quick)
    raise ValueError(part)
