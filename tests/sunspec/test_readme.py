"""The README's pysunspec2 example works verbatim (only the port differs: port 0 in tests)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.conftest import ASSET_1, ASSET_3, ROOT, fleet_data, two_free_tcp_ports
from tests.modbus.conftest import port_of


def _example(index: int = 0) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## SunSpec profile") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= index + 1
    return str(blocks[index])


def _run(code: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return out.getvalue().splitlines()


async def test_readme_pysunspec2_example(runtime: Runtime) -> None:
    code = _example().replace("ipport=5020", f"ipport={port_of(runtime, ASSET_1)}")
    assert f"ipport={port_of(runtime, ASSET_1)}" in code
    lines = await asyncio.to_thread(_run, code)
    assert lines[0] == "BESS-1"  # the test fleet's unit 1 on that port
    assert float(lines[1]) == 0.0 and float(lines[2]) == 50.0
    record = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert (record.mw, record.source.value) == (12.5, "modbus")


async def test_readme_varset_example(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    # BESS-3 (5 MW, port b unit 1) with HILL-BESS-2's reactive capability from assets.yaml
    data = fleet_data(*two_free_tcp_ports())
    shipped = yaml.safe_load((ROOT / "assets.yaml").read_text())
    hill = next(a for a in shipped["assets"] if a["name"] == "HILL-BESS-2")
    data["assets"][2]["reactive"] = hill["reactive"]
    path = tmp_path / "reactive.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = make_settings(assets=path)
    async with Runtime(settings, load_assets(path), load_register_map(settings.register_map)) as rt:
        code = _example(1).replace("ipport=5022", f"ipport={port_of(rt, ASSET_3)}")
        assert f"ipport={port_of(rt, ASSET_3)}" in code
        lines = await asyncio.to_thread(_run, code)
        assert lines[0] == "4 0"
        assert [float(x) for x in lines[1].split()] == [2_000_000.0, -1_500_000.0]
        record = rt.fleet.dispatches(ASSET_3, limit=1)[0]
        assert (record.mw, record.mvar, record.source.value) == (2.0, -1.5, "modbus")
