"""The store: SQLAlchemy 2 models and Alembic migrations, SQLite (WAL) or PostgreSQL."""

from core.store.db import (
    ApiKeyRow,
    Base,
    InboxKey,
    JobRow,
    ReceiptRow,
    Store,
    WriteBackRow,
    open_store,
    upgrade,
)

__all__ = ["ApiKeyRow", "Base", "InboxKey", "JobRow", "ReceiptRow", "Store", "WriteBackRow",
           "open_store", "upgrade"]
