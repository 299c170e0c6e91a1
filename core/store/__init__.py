"""The store: SQLAlchemy 2 models and Alembic migrations, SQLite (WAL) or PostgreSQL."""

from core.store.db import (
    ApiKeyRow,
    ApprovedCopyRow,
    Base,
    DraftRow,
    InboxKey,
    JobRow,
    ReceiptRow,
    ReplyRow,
    Store,
    TokenRow,
    WriteBackRow,
    open_store,
    rows_changed,
    upgrade,
)

__all__ = ["ApiKeyRow", "ApprovedCopyRow", "Base", "DraftRow", "InboxKey", "JobRow", "ReceiptRow",
           "ReplyRow", "Store", "TokenRow", "WriteBackRow",
           "open_store", "rows_changed", "upgrade"]
