"""Multi-process scale-out fixtures: a headend and shard agents as real ``bess-sim``
subprocesses on free ports, talking over the real NATS server at 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bess_sim.cluster.bus import Bus
from bess_sim.cluster.wire import Subjects

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
SITE = "0b9f3c2e-6a1d-4f7e-9c34-1a2b3c4d5e01"
#: Start-up on a loaded 2-core machine (imports + uvloop + NATS connect) can take seconds.
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def metric_samples(client: httpx.AsyncClient) -> list[Sample]:
    """Every sample of ``/metrics`` (run or headend), parsed by prometheus_client."""
    text = (await client.get("/metrics")).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def asset_id(i: int) -> str:
    return f"7c1e2d3f-4a5b-4c6d-8e7f-{i:012d}"


@dataclass
class Cluster:
    tmp: Path
    prefix: str
    assets_file: Path
    modbus_ports: list[int]
    http_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nats_url: str = NATS_URL

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        cmd = [
            sys.executable, "-m", "bess_sim", *args,
            "--assets", str(self.assets_file),
            "--nats", self.nats_url, "--nats-prefix", self.prefix,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_headend(self) -> None:
        self.start("headend", "headend", "--http-port", str(self.http_port))

    def start_agent(self, k: int, n: int) -> None:
        self.start(f"agent{k}", "agent", "--shard", f"{k}/{n}")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    async def wait_online(self, client: httpx.AsyncClient, ids: list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                states = [(await client.get(f"/telemetry/{a}")).json()["status"] for a in ids]
                if "offline" not in states:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-3000:]}" for n in self.procs)
        raise AssertionError(f"assets {ids} not online within {START_TIMEOUT_S} s\n{logs}")


def write_assets(path: Path, ports: list[int]) -> None:
    lines = ["sites:", f"  - {{id: {SITE}, name: S1, location: Lab}}", "assets:"]
    for i, port in enumerate(ports):
        lines.append(
            f"  - {{id: {asset_id(i + 1)}, site_id: {SITE}, name: B{i + 1}, location: Lab, "
            f"capacity_mwhr: {40 + 10 * i}, max_mw: 20, min_mw: -20, "
            f"ramp_rate_mw_per_min: 1200, efficiency: 0.95, modbus: {{port: {port}, unit_id: 1}}}}"
        )
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    ports = [free_port() for _ in range(4)]
    assets = tmp_path / "assets.yaml"
    write_assets(assets, ports)
    # A prefix of our own: streams and subjects of this test only, on a shared server.
    c = Cluster(tmp_path, f"t{uuid.uuid4().hex[:10]}", assets, ports, free_port())
    try:
        yield c
    finally:
        for proc in c.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in c.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if c.nats_url == NATS_URL:  # a test's own server goes with its temporary store
            asyncio.run(_delete_streams(c.prefix))


async def _delete_streams(prefix: str) -> None:
    async with Bus(NATS_URL, Subjects(prefix), "bess-sim test cleanup") as bus:
        await bus.delete_streams()


@dataclass
class OwnNats:
    """A nats-server of this test only (JetStream, file store in the test's tmp dir), so a
    test may restart it without disturbing anyone else's use of the shared server."""

    port: int
    store: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"nats-server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    n = OwnNats(free_port(), tmp_path / "nats-store", tmp_path / "nats.log")
    n.start()
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as client:
        yield client
