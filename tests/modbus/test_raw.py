"""Raw sockets: pipelined transactions, unknown unit ids, malformed frames. The server must
answer every well-formed request in order with its own transaction id, and survive garbage."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from bess_sim.runtime import Runtime
from tests.modbus.conftest import (
    ASSET_1,
    ASSET_3,
    closed_by_server,
    mbap,
    port_of,
    read_frame,
    read_pdu,
)


async def connect(
    runtime: Runtime, asset_id: str = ASSET_1
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port_of(runtime, asset_id)), 10
    )


async def still_serves(runtime: Runtime, asset_id: str = ASSET_1) -> None:
    """A fresh connection gets a normal answer."""
    reader, writer = await connect(runtime, asset_id)
    try:
        writer.write(mbap(0x4242, 1, read_pdu(4, 10, 2)))
        tid, unit, pdu = await read_frame(reader)
        assert (tid, unit, pdu[:2]) == (0x4242, 1, b"\x04\x04")
    finally:
        writer.close()


async def test_three_pipelined_requests_in_one_sendall(runtime: Runtime) -> None:
    reader, writer = await connect(runtime)
    heartbeat = struct.pack(">BHH", 6, 4, 0x1234)
    writer.write(
        mbap(0x0101, 1, read_pdu(4, 10, 2))  # capacity of unit 1: 100.0
        + mbap(0x0202, 2, read_pdu(4, 10, 2))  # capacity of unit 2: 40.0
        + mbap(0x0303, 1, heartbeat)
    )
    answers = [await read_frame(reader) for _ in range(3)]
    writer.close()
    assert answers == [
        (0x0101, 1, b"\x04\x04" + struct.pack(">f", 100.0)),
        (0x0202, 2, b"\x04\x04" + struct.pack(">f", 40.0)),
        (0x0303, 1, heartbeat),
    ]
    assert runtime.fleet.control(ASSET_1).heartbeat == 0x1234


async def test_many_pipelined_requests_are_answered_in_order(runtime: Runtime) -> None:
    reader, writer = await connect(runtime)
    n = 300  # past pymodbus's 264-byte receive buffer and our back-pressure mark
    writer.write(b"".join(mbap(1000 + i, 1 + i % 2, read_pdu(4, 0, 21)) for i in range(n)))
    for i in range(n):
        tid, unit, pdu = await read_frame(reader)
        assert (tid, unit, pdu[:2]) == (1000 + i, 1 + i % 2, b"\x04\x2a")
    writer.close()


async def test_request_split_across_segments(runtime: Runtime) -> None:
    reader, writer = await connect(runtime)
    frame = mbap(7, 1, read_pdu(3, 0, 8)) + mbap(8, 1, read_pdu(4, 0, 1))
    for i in range(len(frame)):
        writer.write(frame[i : i + 1])
        await writer.drain()
        await asyncio.sleep(0)
    assert [(await read_frame(reader))[0] for _ in range(2)] == [7, 8]
    writer.close()


@pytest.mark.parametrize("unit", [0, 3, 247, 255])
async def test_unknown_unit_id_answers_0x0b_without_traceback(
    runtime: Runtime, unit: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await connect(runtime)
    writer.write(mbap(99, unit, read_pdu(3, 0, 1)))
    assert await read_frame(reader) == (99, unit, b"\x83\x0b")
    writer.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("pdu", "answer"),
    [
        (read_pdu(4, 0, 0), b"\x84\x03"),  # zero count
        (read_pdu(4, 0, 126), b"\x84\x03"),  # over 125
        (read_pdu(3, 0, 0), b"\x83\x03"),
        (read_pdu(3, 0xFFFF, 2), b"\x83\x02"),  # runs past 65535
        (b"\x04\x00\x00", b"\x84\x03"),  # truncated PDU
        (b"\x04\x00\x00\x00\x01\x00", b"\x84\x03"),  # trailing byte
        (struct.pack(">BHHB", 16, 0, 2, 2) + b"\x00\x00", b"\x90\x03"),  # byte count lies
        (struct.pack(">BHHB", 16, 0, 2, 4) + b"\x00\x00", b"\x90\x03"),  # missing data
        (struct.pack(">BHHB", 16, 0, 0, 0), b"\x90\x03"),  # zero registers
        (b"\x06\x00\x04", b"\x86\x03"),
        (b"\x2b\x0e\x01\x00", b"\xab\x01"),  # FC43 device identification: unsupported
        (b"\x07", b"\x87\x01"),
        (b"\x7f", b"\xff\x01"),
        (b"\x85\x00", b"\x85\x01"),  # an exception function code as a request
    ],
)
async def test_malformed_requests_get_the_right_exception(
    runtime: Runtime, pdu: bytes, answer: bytes
) -> None:
    reader, writer = await connect(runtime)
    writer.write(mbap(5, 1, pdu) + mbap(6, 1, read_pdu(4, 0, 1)))
    assert await read_frame(reader) == (5, 1, answer)
    assert (await read_frame(reader))[:2] == (6, 1)  # the connection keeps working
    writer.close()


@pytest.mark.parametrize(
    "frame",
    [
        mbap(1, 1, read_pdu(4, 0, 1), protocol=1),  # not Modbus
        mbap(1, 1, b"", length=0),  # length below unit id + function code
        mbap(1, 1, b"\x04", length=1),
        mbap(1, 1, read_pdu(4, 0, 1), length=300),  # more than a PDU can be
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes(range(200, 256)) * 3,
    ],
)
async def test_garbage_closes_that_connection_only(runtime: Runtime, frame: bytes) -> None:
    bystander_reader, bystander = await connect(runtime)
    reader, writer = await connect(runtime)
    writer.write(frame)
    assert await closed_by_server(reader)
    writer.close()
    bystander.write(mbap(77, 2, read_pdu(4, 0, 1)))
    assert (await read_frame(bystander_reader))[:2] == (77, 2)
    bystander.close()
    await still_serves(runtime)


async def test_requests_before_garbage_are_still_answered(runtime: Runtime) -> None:
    reader, writer = await connect(runtime)
    writer.write(mbap(1, 1, read_pdu(4, 0, 1)) + b"\xff" * 20)
    assert (await read_frame(reader))[0] == 1
    assert await closed_by_server(reader)
    writer.close()


async def test_truncated_header_then_hangup_does_not_disturb_others(runtime: Runtime) -> None:
    for partial in (b"\x00", b"\x00\x01\x00\x00\x00", mbap(1, 1, read_pdu(4, 0, 1))[:9]):
        _, writer = await connect(runtime, ASSET_3)
        writer.write(partial)
        await writer.drain()
        writer.close()
    await still_serves(runtime, ASSET_3)


async def test_lying_short_length_is_answered_then_stream_resyncs(runtime: Runtime) -> None:
    """A length field 2 bytes too short cuts the PDU: 0x03 for that frame; the 2 leftover
    bytes start the next frame, which is garbage → the connection closes."""
    reader, writer = await connect(runtime)
    writer.write(mbap(3, 1, read_pdu(4, 0, 1), length=4) + b"\xff" * 12)
    assert await read_frame(reader) == (3, 1, b"\x84\x03")
    assert await closed_by_server(reader)
    writer.close()
    await still_serves(runtime)
