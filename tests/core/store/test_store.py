"""Every process migrates on start (gunicorn workers, the job worker, the CLI); on a fresh
database they must not trip over each other."""

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, pg_schema

MIGRATE = """
import sys
from core.store import open_store
url, schema = sys.argv[1], sys.argv[2]
kwargs = {"connect_args": {"options": f"-csearch_path={schema}"}} if schema else {}
open_store(url, **kwargs).close()
"""


def _migrate_concurrently(url: str, schema: str = "", n: int = 6) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, schema],
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(errors)


def _tables(engine: sa.Engine, schema: str | None = None) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def test_concurrent_first_starts_migrate_a_fresh_sqlite_database_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    _migrate_concurrently(url)
    engine = sa.create_engine(url)
    assert {"receipts", "jobs", "inbox_keys", "alembic_version"} <= _tables(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


@pytest.mark.postgres
def test_concurrent_first_starts_migrate_a_fresh_postgres_schema_once() -> None:
    with pg_schema() as (schema, _):
        _migrate_concurrently(PG_URL, schema)
        admin = sa.create_engine(PG_URL)
        assert {"receipts", "jobs", "inbox_keys", "alembic_version"} <= _tables(admin, schema)
        admin.dispose()
