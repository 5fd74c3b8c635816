"""The README's pysunspec2 example works verbatim (only the port differs: port 0 in tests)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re

from bess_sim.runtime import Runtime
from tests.conftest import ASSET_1, ROOT
from tests.modbus.conftest import port_of


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## SunSpec profile") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


async def test_readme_pysunspec2_example(runtime: Runtime) -> None:
    code = _example().replace("ipport=5020", f"ipport={port_of(runtime, ASSET_1)}")
    assert f"ipport={port_of(runtime, ASSET_1)}" in code
    out = io.StringIO()

    def run() -> None:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})

    await asyncio.to_thread(run)
    lines = out.getvalue().splitlines()
    assert lines[0] == "BESS-1"  # the test fleet's unit 1 on that port
    assert float(lines[1]) == 0.0 and float(lines[2]) == 50.0
    record = runtime.fleet.dispatches(ASSET_1, limit=1)[0]
    assert (record.mw, record.source.value) == (12.5, "modbus")
