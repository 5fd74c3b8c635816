"""PostgreSQL/TimescaleDB persistence (DESIGN §7). asyncpg is imported only by ``db.py``."""

from .config import StorageConfig, describe_url
from .service import Storage

__all__ = ["Storage", "StorageConfig", "describe_url"]
