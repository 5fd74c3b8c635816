"""Storage settings, the error registrations see when the database is down, and log helpers."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str
    reset: bool = False
    buffer_rows: int = 1_000_000
    # The whole start-up step (connect, schema, reconcile, restore); past it: start fresh,
    # serve, and keep trying in the background.
    startup_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 30.0  # a half-open connection fails after this, then retried
    # Rows per write transaction, fed to COPY in slices of slice_rows with a yield to the loop
    # between slices (bench/drain_stall.py: one 50 000-row COPY held the loop ~190 ms p99).
    batch_rows: int = 20_000
    slice_rows: int = 2_000
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0
    idle_ping_s: float = 5.0  # keeps /health truthful when nothing is being written
    # /health says db down once a row (or dispatch record, or ping) has waited this long with
    # no write acknowledged: a server that accepts and never answers shows within seconds,
    # not after the 30 s command timeout.
    stale_after_s: float = 5.0
    drain_timeout_s: float = 5.0  # clean shutdown: the whole storage exit, writing included
    history_timeout_s: float = 1.5  # past it, history answers from memory
    prune_retry_initial_s: float = 5.0
    prune_retry_max_s: float = 600.0
    recent_dispatches: int = 10_000  # dispatch records reloaded into memory on restore


class StorageUnavailableError(Exception):
    """A registration cannot be stored: the database is down (the API answers 503)."""


def describe_url(url: str) -> str:
    """``host:port/dbname`` for logs — never the user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable DATABASE_URL>"
    return f"{host}{port}{parts.path or '/'}"


def error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
