"""PostgreSQL/TimescaleDB persistence (DESIGN §7). asyncpg is imported only by ``db.py``."""

from .service import Storage, StorageConfig, describe_url

__all__ = ["Storage", "StorageConfig", "describe_url"]
