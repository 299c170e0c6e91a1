"""The store: SQLAlchemy 2 models and Alembic migrations, SQLite (WAL) or PostgreSQL."""

from core.store.db import Base, ReceiptRow, Store, open_store, upgrade

__all__ = ["Base", "ReceiptRow", "Store", "open_store", "upgrade"]
