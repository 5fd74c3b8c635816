"""docker-compose.yml: the database service as DESIGN §7 and issue 9 item 6 ask."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_database_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    db = compose["services"]["db"]
    assert db["image"] == "timescale/timescaledb:2.15.2-pg15"
    # Over TCP: the Unix socket answers before the image's init has finished.
    check = " ".join(db["healthcheck"]["test"])
    assert "pg_isready" in check and "-h 127.0.0.1" in check
    assert str(db["environment"]["TIMESCALEDB_TELEMETRY"]) == "off"
    sim = compose["services"]["simulator"]
    assert sim["depends_on"]["db"]["condition"] == "service_healthy"
