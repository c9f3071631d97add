"""Fixtures for the study tests: a database URL for SQLite and for a real PostgreSQL server.

PostgreSQL: ``make test`` starts Debian's server on loopback (scripts/start-postgres.sh) and sets
``HEPAVOL_TEST_POSTGRES`` to an account that may create databases; each test gets a fresh database, dropped
afterwards. Without that variable the PostgreSQL cases are skipped, unless ``HEPAVOL_REQUIRE_POSTGRES=1`` (set by
make test), where they fail: the suite must not pass silently without PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")


def _admin_url() -> str | None:
    return os.environ.get("HEPAVOL_TEST_POSTGRES") or None


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite (the workspace's own hepavol.db) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database() as url:
        yield url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skips or fails the test without one)."""
    admin = _admin_url()
    if admin is None:
        if os.environ.get("HEPAVOL_REQUIRE_POSTGRES") == "1":
            pytest.fail("HEPAVOL_TEST_POSTGRES is not set but make test requires the PostgreSQL tests")
        pytest.skip("no PostgreSQL server (set HEPAVOL_TEST_POSTGRES; make test does)")
    import sqlalchemy as sa

    from hepavol.study.db import normalise_url

    name = f"hepavol_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(normalise_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = normalise_url(admin).rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
