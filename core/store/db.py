"""Database access. SQLite runs in WAL mode with a busy timeout so the CLI, web workers and job
workers can share one file; PostgreSQL is used when ``BATON_DATABASE_URL`` says so."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from core.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


class ReceiptRow(Base):
    """One inference: what ran, why, what it cost and whether data left the machine."""

    __tablename__ = "receipts"
    __table_args__ = (sa.Index("ix_receipts_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    tenant: Mapped[str] = mapped_column(sa.String(128))
    kind: Mapped[str] = mapped_column(sa.String(32))
    tier: Mapped[str] = mapped_column(sa.String(16))
    language: Mapped[str] = mapped_column(sa.String(8))
    action: Mapped[str] = mapped_column(sa.String(16))
    role: Mapped[str] = mapped_column(sa.String(8))
    backend: Mapped[str] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(128))
    rule: Mapped[str | None] = mapped_column(sa.String(128))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    prompt_tokens: Mapped[int] = mapped_column(sa.Integer)
    completion_tokens: Mapped[int] = mapped_column(sa.Integer)
    cached_tokens: Mapped[int] = mapped_column(sa.Integer)
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    cost_usd: Mapped[float] = mapped_column(sa.Float)
    baseline_cost_usd: Mapped[float] = mapped_column(sa.Float)
    egress: Mapped[bool] = mapped_column(sa.Boolean)
    egress_entities: Mapped[list[str]] = mapped_column(sa.JSON)
    masked_entities: Mapped[list[str]] = mapped_column(sa.JSON)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine; for SQLite the parent folder is created and WAL switched on."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"BATON_DATABASE_URL: not a database URL ({url!r})") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


class Store:
    """An engine and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_store(url: str, *, migrate: bool = True, **kwargs: Any) -> Store:
    """Connect, and bring the schema up to date unless ``migrate`` is False."""
    engine = make_engine(url, **kwargs)
    if migrate:
        try:
            upgrade(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            orig = getattr(exc, "orig", None)
            reason = str(orig) if orig is not None else str(exc)
            raise ConfigError(
                f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                f"{reason.splitlines()[0]}"
            ) from None
    return Store(engine)
