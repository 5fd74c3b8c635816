"""The Modbus layer on uvloop (what `bess-sim run` uses when installed): uvloop's transports
are not asyncio.Transport subclasses, which once made every reply vanish silently."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import uvloop

from bess_sim.config import load_assets
from bess_sim.modbus.points import load_register_map
from bess_sim.runtime import Runtime
from bess_sim.settings import Settings
from tests.modbus.conftest import ASSET_1, mbap, port_of, read_frame, read_pdu


async def _pipelined_reads(settings: Settings) -> list[tuple[int, int, bytes]]:
    rt = Runtime(settings, load_assets(settings.assets), load_register_map(settings.register_map))
    async with rt:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port_of(rt, ASSET_1)), 10
        )
        writer.write(mbap(7, 1, read_pdu(4, 10, 2)) + mbap(8, 2, read_pdu(4, 10, 2)))
        answers = [await asyncio.wait_for(read_frame(reader), 10) for _ in range(2)]
        writer.close()
        return answers


def test_modbus_answers_on_uvloop(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers = runner.run(_pipelined_reads(settings))
    assert answers == [
        (7, 1, b"\x04\x04" + struct.pack(">f", 100.0)),
        (8, 2, b"\x04\x04" + struct.pack(">f", 40.0)),
    ]
