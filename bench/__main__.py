"""``python -m bench [--quick] [--only PART] [--uvloop/--no-uvloop] [--install-extras]``

Runs the benchmark parts (each in a fresh process), prints markdown tables, writes the raw
results to bench/results/latest.json and — for a full run of every part — bench/RESULTS.md.
Every figure comes with a baseline measured in the same run; ratios are medians of per-round
ratios. Speed is only measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, machine_info
from .report import render, targets
from .runner import PARTS, run_part


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="about a second per measurement")
    ap.add_argument("--only", choices=PARTS, action="append", help="run only this part")
    ap.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        help="skip the uvloop/httptools variants even when available",
    )
    ap.add_argument(
        "--install-extras",
        action="store_true",
        help="pip install uvloop+httptools into bench/build/extras first",
    )
    ap.add_argument("--note", default="", help="free text recorded with the run")
    ap.add_argument("--output", default=str(RESULTS_DIR / "latest.json"))
    ap.add_argument(
        "--render",
        metavar="JSON",
        help="measure nothing: re-render the tables and targets of a saved full run "
        "(e.g. bench/results/latest.json) into bench/RESULTS.md",
    )
    args = ap.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        saved["targets"] = targets(saved["parts"])
        text = render(saved)
        print(text)
        if not saved.get("quick") and set(saved["parts"]) == set(PARTS):
            (RESULTS_DIR.parent / "RESULTS.md").write_text(text)
            print("[bench] wrote bench/RESULTS.md", file=sys.stderr)
        return 0
    parts = tuple(args.only) if args.only else PARTS
    if args.install_extras:
        from . import extras

        print(f"extras: {extras.install()}", file=sys.stderr)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {
        "machine": machine_info(),
        "command": command.strip(),
        "quick": args.quick,
        "note": args.note,
        "parts": {},
    }
    failed = []
    ctx = multiprocessing.get_context("spawn")
    for part in parts:
        t = time.perf_counter()
        print(f"[bench] {part} ...", file=sys.stderr, flush=True)
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                res = pool.submit(run_part, part, args.quick, args.uvloop).result(timeout=3600)
        except Exception as exc:
            failed.append(part)
            res = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
            print(f"[bench] {part} FAILED: {exc}", file=sys.stderr, flush=True)
        res["wall_s"] = time.perf_counter() - t
        results["parts"][part] = res
    results["targets"] = targets(results["parts"])
    text = render(results)
    print(text)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"[bench] raw results: {out}", file=sys.stderr)
    if not args.quick and not args.only and not failed:
        (RESULTS_DIR.parent / "RESULTS.md").write_text(text)
        print("[bench] wrote bench/RESULTS.md", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
