"""A minimal EMS for the comm-loss example (and the README's HIL recipe).

Holds one battery at a setpoint over Modbus TCP, toggling the heartbeat register, for
``--hold`` simulated seconds (read from the battery's timestamp register), then goes silent
as if its link were lost. Registers as in register_map.yaml (DESIGN §5): holding 0 setpoint_mw
(float32, big word order), holding 4 heartbeat; input 18 timestamp (uint32).

    python scenarios/example_ems.py --port 15020 --unit 2 --mw 5 --hold 20
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time

from pymodbus.client import AsyncModbusTcpClient


def f32(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


async def sim_time(client: AsyncModbusTcpClient, unit: int) -> int:
    rr = await client.read_input_registers(18, count=2, device_id=unit)
    if rr.isError():
        raise RuntimeError(f"timestamp read failed: {rr}")
    return int(rr.registers[0] << 16 | rr.registers[1])


async def main(args: argparse.Namespace) -> int:
    client = AsyncModbusTcpClient(args.host, port=args.port, timeout=5, retries=0)
    deadline = time.monotonic() + args.connect_timeout
    while not await client.connect():
        if time.monotonic() > deadline:
            print(f"ems: cannot connect to {args.host}:{args.port}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.1)
    t0 = await sim_time(client, args.unit)
    rr = await client.write_registers(0, f32(args.mw), device_id=args.unit)
    if rr.isError():
        print(f"ems: setpoint refused: {rr}", file=sys.stderr)
        return 1
    print(f"ems: holding {args.mw:g} MW on unit {args.unit} for {args.hold:g} s", flush=True)
    beat = 0
    while await sim_time(client, args.unit) - t0 < args.hold:
        beat = (beat + 1) & 0xFFFF
        await client.write_register(4, beat, device_id=args.unit)
        await asyncio.sleep(args.period)
    print("ems: link lost (going silent)", flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=15020)
    p.add_argument("--unit", type=int, default=2)
    p.add_argument("--mw", type=float, default=5.0)
    p.add_argument("--hold", type=float, default=20.0, help="simulated seconds before silence")
    p.add_argument("--period", type=float, default=0.05, help="wall seconds between heartbeats")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    sys.exit(asyncio.run(main(p.parse_args())))
