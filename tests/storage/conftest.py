"""Real PostgreSQL for the storage tests: one throw-away database per test.

``TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) names a server
and a database to connect to for CREATE/DROP DATABASE. A server that cannot be reached makes the
test fail — never skip (a CI job without its database must go red). The whole directory also
runs against a TimescaleDB server (``TEST_DATABASE_URL=<its url>``).

``TEST_TIMESCALE_URL`` (and ``TEST_TIMESCALE_APACHE_URL``: a server with
``timescaledb.license = 'apache'``) name TimescaleDB servers for the Timescale-only tests;
those tests are skipped when the variable is unset and fail when it is set and unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER_URL


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def with_hostport(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{host}:{port}"))


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """Create ``bess_test_<random>`` on the server of ``admin_url``; drop it afterwards."""
    try:
        admin = await asyncpg.connect(admin_url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL not reachable at {admin_url} ({exc!r}); set TEST_DATABASE_URL",
            pytrace=False,
        )
    name = f"bess_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def url_or_skip(var: str) -> AsyncIterator[str]:
    """A fresh database on the server named by the environment variable ``var``; the test is
    skipped when it is unset and fails when it is set and unreachable."""
    admin = os.environ.get(var)
    if not admin:
        pytest.skip(f"{var} not set (a TimescaleDB server for the Timescale-only tests)")
    async with fresh_database(admin) as url:
        yield url


@pytest.fixture
async def ts_url() -> AsyncIterator[str]:
    """A fresh database on ``TEST_TIMESCALE_URL``'s server (community licence)."""
    async for url in url_or_skip("TEST_TIMESCALE_URL"):
        yield url


@pytest.fixture
async def apache_url() -> AsyncIterator[str]:
    """A fresh database on ``TEST_TIMESCALE_APACHE_URL``'s server (``license = 'apache'``)."""
    async for url in url_or_skip("TEST_TIMESCALE_APACHE_URL"):
        yield url


@pytest.fixture
async def db_url() -> AsyncIterator[str]:
    """URL of a fresh, empty database, dropped after the test."""
    async with fresh_database(server_url()) as url:
        yield url


async def server_mode(url: str) -> str:
    """The mode bess-sim must choose on this server, decided independently of the code under
    test: TimescaleDB only when the extension is available *and* preloaded."""
    con = await asyncpg.connect(url, timeout=10)
    try:
        available = await con.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
        preload = await con.fetchval("SHOW shared_preload_libraries")
    finally:
        await con.close()
    return "timescaledb" if available and "timescaledb" in preload else "postgresql"


@pytest.fixture
async def sql(db_url: str) -> AsyncIterator[Callable[..., Awaitable[list[dict[str, Any]]]]]:
    """Run a query on the test database directly (independent of the code under test)."""
    con = await asyncpg.connect(db_url)

    async def run(query: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await con.fetch(query, *args)]

    try:
        yield run
    finally:
        await con.close()


class TcpProxy:
    """A TCP relay between the app and PostgreSQL that a test can cut and restore.

    - ``cut()``: stop listening (new connections are refused) and reset every live connection,
      as when the database host goes away;
    - ``blackhole_after_commit()``: relay until the client sends a ``COMMIT``, then keep the
      connections open but discard everything the server sends: the commit reaches the server
      and its acknowledgement is lost (the case where a retried batch could duplicate rows);
    - ``hang()``: keep every connection open and accept new ones, pass nothing either way (a
      server that accepts and never answers);
    - ``restore()``: listen again and relay normally.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.drop_replies = False
        self.drop_after_commit = False
        self.silent = False
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.silent:  # accept, read, never answer
            self._writers.add(writer)
            try:
                while await reader.read(65536):
                    pass
            except OSError:
                pass
            finally:
                self._writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, reply: bool) -> None:
            try:
                while data := await src.read(65536):
                    if self.silent or (reply and self.drop_replies):
                        continue
                    dst.write(data)
                    await dst.drain()
                    if not reply and self.drop_after_commit and b"COMMIT" in data.upper():
                        self.drop_replies = True
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self._abort(dst)

        tasks = [
            asyncio.create_task(pump(reader, up_writer, False)),
            asyncio.create_task(pump(up_reader, writer, True)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks)
        finally:
            self._tasks.difference_update(tasks)
            self._writers.difference_update((writer, up_writer))

    def _abort(self, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            w.transport.abort()

    def _reset_all(self) -> None:
        for w in list(self._writers):
            self._abort(w)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._reset_all()

    def hang(self) -> None:
        """The server host stops answering: live connections stay open but nothing goes
        through either way; new connections are accepted and never answered."""
        self.silent = True

    def blackhole_after_commit(self) -> None:
        self.drop_after_commit = True

    async def restore(self) -> None:
        self.drop_replies = self.drop_after_commit = self.silent = False
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        await self.cut()
        for t in list(self._tasks):
            t.cancel()


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(db_url)
    p = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def proxied_url(db_url: str, proxy: TcpProxy) -> str:
    return with_hostport(db_url, "127.0.0.1", proxy.port)
