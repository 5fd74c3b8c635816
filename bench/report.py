"""Markdown tables and the issue-6 targets from the raw results of ``python -m bench``."""

from __future__ import annotations

from typing import Any


def _f(v: Any, fmt: str = "{:,.0f}") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and v != v:
        return "–"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _r(v: Any) -> str:
    return _f(v, "{:.2f}×")


def _ok(part: dict[str, Any] | None) -> bool:
    return part is not None and "error" not in part


def targets(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the benchmark issues: what was measured, and whether it holds."""
    out: list[dict[str, Any]] = []

    def add(name: str, measured: Any, holds: bool | None, detail: str) -> None:
        out.append({"target": name, "measured": measured, "holds": holds, "detail": detail})

    m = parts.get("modbus")
    if _ok(m):
        assert m is not None
        rows = m["summary"]["c"]
        vs_pym = [r.get("bess/pymodbus") for r in rows]
        vs_lib = [r.get("bess/libmodbus") for r in rows]
        worst = min((v for v in vs_pym if v is not None), default=None)
        add(
            "Modbus, 1,000 assets ticking ≥ 0.9× bare pymodbus (C client, every conn count)",
            worst,
            None if worst is None else worst >= 0.9,
            "ratios at 1/10/100 conns: " + ", ".join(_r(v) for v in vs_pym),
        )
        worst_l = min((v for v in vs_lib if v is not None), default=None)
        add(
            "stretch: ≥ 0.5× libmodbus (C client, every conn count)",
            worst_l,
            None if worst_l is None else worst_l >= 0.5,
            "ratios at 1/10/100 conns: " + ", ".join(_r(v) for v in vs_lib),
        )
    p = parts.get("paced")
    if _ok(p):
        assert p is not None
        row = next(r for r in p["summary"] if r["rate"] == "1Hz")
        # `bess-sim run` uses uvloop when installed (a dependency): that is the figure the
        # target is about; the asyncio-loop figure is reported beside it.
        for system, label in (
            ("bess+uvloop", "as `bess-sim run` runs it (uvloop)"),
            ("bess", "on the stock asyncio loop"),
        ):
            if system not in row:
                continue
            p99 = row[system]["p99_us"]
            add(
                f"1,000 devices × 1 Hz: p99 < 1 ms, {label}",
                p99,
                p99 < 1000.0,
                f"p99 {p99:,.0f} µs, p99.9 {row[system]['p999_us']:,.0f} µs, "
                f"missed polls {row[system]['missed']}",
            )
    d = parts.get("db")
    if _ok(d):
        assert d is not None
        t = d["ticking_10k"]
        p99 = t["tick"]["p99_ms"]
        add(
            "10,000 assets at 1 Hz with DB writer: tick p99 < 100 ms",
            p99,
            p99 < 100.0,
            f"p50 {t['tick']['p50_ms']:.1f} ms over {t['ticks']} ticks",
        )
        add(
            "… and no overruns",
            t["overruns"],
            t["overruns"] == 0,
            f"event-loop lag p99 {t['loop_lag']['p99_ms']:.1f} ms, "
            f"max {t['loop_lag']['max_ms']:.1f} ms",
        )
        w = d["throughput"]["writer_rows_per_s"]
        add(
            "writer ≥ 100k rows/s",
            w,
            w >= 100_000,
            f"{_r(d['throughput']['writer/executemany'])} plain executemany, "
            f"{_r(d['throughput']['writer/copy'])} bare COPY",
        )
    mv = parts.get("model")
    if _ok(mv):
        assert mv is not None
        a = mv["summary"]["all"]
        add(
            f"{mv['assets']:,} assets, every §10 model, 1 s ticks: tick p99 < 100 ms (issue 10)",
            a["p99_ms"],
            a["p99_ms"] < 100.0,
            f"p50 {a['p50_ms']:.1f} ms; plain §3 model in the same run p99 "
            f"{mv['summary']['plain']['p99_ms']:.1f} ms",
        )
    s = parts.get("scale")
    if _ok(s):
        assert s is not None
        st = s["startup"]["config_to_ready_s"]
        add(
            "start-up with 1,000 assets < 3 s (config load → Runtime ready)",
            st,
            st < 3.0,
            f"whole process {s['startup']['process_to_ready_s']:.2f} s; Modbus ports bound: "
            f"{s['startup']['modbus_ports_bound']}",
        )
    h = parts.get("hotpath")
    if _ok(h):
        assert h is not None
        from .part_hotpath import hotpath_targets

        for row in hotpath_targets(h):
            add(*row)
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# bess-sim benchmark results",
        "",
        f"- command: `{results['command']}`" + (" (quick mode)" if results.get("quick") else ""),
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, "
        f"kernel {m['kernel']}, load average at start {m.get('loadavg_at_start')}",
        f"- date: {m['date']}",
    ]
    if results.get("note"):
        lines.append(f"- note: {results['note']}")
    lines += ["", "Medians of interleaved rounds; ratios are medians of per-round ratios.", ""]
    parts = results["parts"]
    lines += _targets_table(results.get("targets", []))
    for name, fn in (
        ("modbus", _modbus),
        ("paced", _paced),
        ("scale", _scale),
        ("db", _db),
        ("rest", _rest),
        ("model", _model),
        ("sunspec", _sunspec),
        ("hotpath", _hotpath),
    ):
        part = parts.get(name)
        if part is None:
            continue
        if "error" in part:
            lines += [f"## {name}: FAILED", "", "```", part["error"], "```", ""]
            continue
        lines += fn(part)
    return "\n".join(lines) + "\n"


def _hotpath(p: dict[str, Any]) -> list[str]:
    from .part_hotpath import render_hotpath

    return render_hotpath(p)


def _model(p: dict[str, Any]) -> list[str]:
    from .part_model import render_model

    return render_model(p)


def _targets_table(tg: list[dict[str, Any]]) -> list[str]:
    if not tg:
        return []
    out = ["## Targets", "", "| target | holds | detail |", "|---|---|---|"]
    for t in tg:
        verdict = {True: "**yes**", False: "**no**", None: "–"}[t["holds"]]
        out.append(f"| {t['target']} | {verdict} | {t['detail']} |")
    return [*out, ""]


def _excluded(p: dict[str, Any]) -> list[str]:
    return [f"- **excluded** {k}: {v}" for k, v in p.get("excluded", {}).items()]


def _modbus(p: dict[str, Any]) -> list[str]:
    out = [
        "## 1. Modbus throughput, FC04 × 10 registers",
        "",
        f"bess-sim: {p['n_assets']:,} assets ticking at 1 Hz ({p['bess_mode']} mode), layout "
        f"{p['layout']}. {p['rounds']} round(s) of {p['duration_s']} s per cell.",
        "",
        *_excluded(p),
        "",
    ]
    for gen, title in (("c", "C load generator (epoll)"), ("py", "pymodbus async client")):
        rows = p["summary"][gen]
        names = [k for k in rows[0] if k != "conns" and "/" not in k]
        ratios = [k for k in rows[0] if "/" in k]
        out += [
            f"### {title}",
            "",
            "| conns | "
            + " | ".join(f"{n} req/s (p50/p99 µs)" for n in names)
            + " | "
            + " | ".join(ratios)
            + " |",
            "|---" * (1 + len(names) + len(ratios)) + "|",
        ]
        for r in rows:
            cells = [
                f"{_f(r[n]['rps'])} ({_f(r[n]['p50_us'])}/{_f(r[n]['p99_us'])})" for n in names
            ]
            out.append(
                f"| {r['conns']} | "
                + " | ".join(cells)
                + " | "
                + " | ".join(_r(r[k]) for k in ratios)
                + " |"
            )
        out.append("")
    return out


def _paced(p: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Paced load: 1,000 devices polled at 1 Hz and 10 Hz",
        "",
        f"{p['layout']}; {p['duration_s']} s per rate; latency in µs; server CPU from "
        "/proc/<pid>/stat (utime+stime) over the run.",
        "",
        "| rate | system | p50 | p99 | p99.9 | max | missed polls | server CPU % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in p["summary"]:
        for name, r in row.items():
            if not isinstance(r, dict):
                continue
            out.append(
                f"| {row['rate']} | {name} | {_f(r['p50_us'])} | {_f(r['p99_us'])} | "
                f"{_f(r['p999_us'])} | {_f(r['max_us'])} | {r['missed']} | "
                f"{_f(r['server_cpu_pct'], '{:.1f}')} |"
            )
    out += ["", *_excluded(p)]
    for row in p["summary"]:
        if "bess/pymodbus_p99" in row:
            out.append(
                f"- {row['rate']}: bess/pymodbus p99 {_r(row['bess/pymodbus_p99'])}, "
                f"CPU {_r(row['bess/pymodbus_cpu'])}"
            )
    return [*out, ""]


def _scale(p: dict[str, Any]) -> list[str]:
    out = [
        "## 3. Fleet scale (in memory, half the assets dispatched)",
        "",
        "| assets | advance p50/p99 ms | µs/asset | vs alloc floor | Modbus refresh p50/p99 ms "
        "| history p50 ms | Runtime.tick p50/p99 ms | encoder: naive/image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in p["fleet"]["sizes"]:
        out.append(
            f"| {s['assets']:,} | {s['advance']['p50_ms']:.1f} / {s['advance']['p99_ms']:.1f} "
            f"| {s['advance_us_per_asset']:.1f} | {_r(s['advance/floor'])} "
            f"| {s['modbus_publish']['p50_ms']:.1f} / {s['modbus_publish']['p99_ms']:.1f} "
            f"| {s['history_publish']['p50_ms']:.1f} "
            f"| {s['tick']['p50_ms']:.1f} / {s['tick']['p99_ms']:.1f} | {_r(s['naive/image'])} |"
        )
    st = p["startup"]
    out += [
        "",
        f"Start-up, {st['assets']:,} assets: config load → Runtime ready "
        f"**{st['config_to_ready_s']:.2f} s** (config {st['config_s']:.2f} s, runtime start "
        f"{st['runtime_start_s']:.2f} s; imports {st['import_s']:.2f} s before that). Whole "
        f"process to ready {st['process_to_ready_s']:.2f} s vs bare pymodbus with the same "
        f"ports {st['bare_pymodbus_process_to_ready_s']:.2f} s ({_r(st['process/bare'])}).",
        "",
    ]
    return out


def _db(p: dict[str, Any]) -> list[str]:
    t = p["throughput"]
    k = p["ticking_10k"]
    return [
        "## 4. Persistence (local PostgreSQL)",
        "",
        "| rows/s | bess-sim writer | plain executemany | bare COPY | writer/executemany "
        "| writer/COPY |",
        "|---|---|---|---|---|---|",
        f"| {t['rows_per_round']:,} rows × {t['rounds']} | {_f(t['writer_rows_per_s'])} "
        f"| {_f(t['executemany_rows_per_s'])} | {_f(t['copy_rows_per_s'])} "
        f"| {_r(t['writer/executemany'])} | {_r(t['writer/copy'])} |",
        "",
        f"10,000 assets at 1 Hz with the writer on for {k['seconds']:.0f} s ({k['ticks']} ticks): "
        f"tick p50 {k['tick']['p50_ms']:.1f} ms, p99 {k['tick']['p99_ms']:.1f} ms, max "
        f"{k['tick']['max_ms']:.1f} ms; overruns {k['overruns']}; event-loop lag p99 "
        f"{k['loop_lag']['p99_ms']:.1f} ms, max {k['loop_lag']['max_ms']:.1f} ms; rows pending "
        f"at the end {k['pending_rows_at_end']:,}, dropped {k['dropped_rows']:,}.",
        "",
    ]


def _rest(p: dict[str, Any]) -> list[str]:
    s = p["summary"]
    names = [k for k, v in s.items() if isinstance(v, dict)]
    out = [
        f"## 5. REST GET /telemetry/{{id}}, {s['conns']} keep-alive clients (C generator)",
        "",
        "| system | req/s | p50 µs | p99 µs | errors |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        r = s[n]
        out.append(
            f"| {n} | {_f(r['rps'])} | {_f(r['p50_us'])} | {_f(r['p99_us'])} | {r['errors']} |"
        )
    out.append("")
    for k, v in s.items():
        if "/" in k:
            out.append(f"- {k}: {_r(v)}")
    return [*out, ""]


def _sunspec(p: dict[str, Any]) -> list[str]:
    from .part_sunspec import render as render_sunspec

    return render_sunspec(p)
