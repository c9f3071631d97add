"""Connect to a study database (SQLite by default, PostgreSQL when configured) and keep its schema current.

SQLite is opened in WAL mode (readers never block the writer), with foreign keys on, ``synchronous=FULL`` (a
committed transaction survives a crash of the machine, not only of the process) and a 60 s busy timeout. Every
transaction starts with ``BEGIN IMMEDIATE``, so two processes never both read and then try to write (SQLite's
"database is locked" deadlock); they wait for each other instead. Transactions are short: no computation runs
inside one.

PostgreSQL is used through psycopg 3 (``postgresql://`` URLs are rewritten to ``postgresql+psycopg://``);
transactions are READ COMMITTED and rows that two runs may both write are protected by unique constraints.

The schema is created and migrated by Alembic (``hepavol/study/migrations``). :func:`open_database` upgrades an
older database to the current schema and refuses one written by a newer hepavol.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hepavol.errors import InputError

__all__ = ["Database", "normalise_url", "open_database", "redact_url", "url_without_password"]

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 60.0


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs; anything else is returned as given."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact_url(url: str) -> str:
    """The URL with its password hidden (for messages and ``study.toml``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def url_without_password(url: str) -> str:
    """The URL with any password removed (what ``study.toml`` stores; give the password in PGPASSWORD)."""
    try:
        return make_url(url).set(password=None).render_as_string(hide_password=False)
    except ArgumentError:
        return url


def database_fault(exc: DBAPIError, display_url: str, dialect: str, *, opening: bool = False) -> str:
    """What a database error means for the user, and the fix (the message of the InputError raised for it)."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    low = reason.lower()
    where = f"the study database {display_url}"
    if "readonly" in low or "read-only" in low:
        return (
            f"{where} is read-only ({reason}): nothing was changed. Give your user write access to the database "
            "file and its folder (ls -l shows them), or work on a copy."
        )
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return (
            f"{where} is damaged ({reason}). Restore it from your last backup (copy hepavol.db while no hepavol "
            "command runs); 'sqlite3 hepavol.db .recover' may save part of it."
        )
    if "disk is full" in low or "no space" in low or "could not extend file" in low:
        return f"{where}: the disk is full ({reason}): nothing was changed. Free space and run the command again."
    if "unable to open" in low and dialect == "sqlite":
        return (
            f"cannot open {where} ({reason}). Check that the file and its folder exist and that your user may "
            "read and write them."
        )
    if dialect == "postgresql" or opening:
        return (
            f"cannot {'open' if opening else 'use'} {where}: {reason}. Check that the server runs and the URL, "
            "user and password are right (HEPAVOL_DB, --db, or PGPASSWORD / ~/.pgpass for PostgreSQL)."
        )
    return f"{where} failed: {reason}. Nothing of this command's changes was kept; run it again."


def _is_rule_of_the_schema(exc: DBAPIError) -> bool:
    """Whether the error is one of the schema's own rules (a trigger's RAISE, e.g. the append-only audit log).

    Those are refusals of what the code tried, not faults of the database, so they keep their type. PostgreSQL
    reports a PL/pgSQL RAISE EXCEPTION as SQLSTATE P0001; SQLite reports RAISE(ABORT, ...) as an integrity error.
    """
    return getattr(exc.orig, "sqlstate", None) == "P0001" or getattr(exc.orig, "pgcode", None) == "P0001"


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" event below issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """An engine and a session factory for one study database.

    Use :meth:`transaction` for every unit of work: it commits on success and rolls back on any exception.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise InputError(
                f"cannot use the database URL '{redact_url(url)}': {exc}. Give sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DBNAME (--db or HEPAVOL_DB)."
            ) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(self.url)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        else:
            raise InputError(
                f"unsupported database '{self.dialect}' in '{redact_url(url)}': hepavol stores studies in SQLite "
                "(default) or PostgreSQL (postgresql://USER@HOST:PORT/DBNAME)."
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises.

        A database fault (read-only or corrupted file, full disk, lost server) is raised as an
        :class:`~hepavol.errors.InputError` that says which and what to do; nothing of the transaction is kept.
        """
        try:
            with self._sessions() as session, session.begin():
                yield session
        except DBAPIError as exc:
            if isinstance(exc, IntegrityError) or _is_rule_of_the_schema(exc):
                raise
            raise InputError(database_fault(exc, self.display_url, self.dialect)) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------------------------
    def _alembic_config(self, connection: Connection) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def revision(self) -> str | None:
        """The schema revision of the database (None when it has no hepavol schema)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head() -> str:
        """The schema revision this hepavol writes."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None
        return head

    def upgrade(self) -> None:
        """Create or migrate the schema to the current revision, in one transaction."""
        from alembic import command

        with self.engine.begin() as connection:
            command.upgrade(self._alembic_config(connection), "head")


def open_database(url: str, *, create: bool = False) -> Database:
    """Open a study database and bring its schema to the current revision.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://USER@HOST/DB``).
    create : bool
        Create the schema in an empty database (``study init``). Without it, a database with no hepavol schema
        is an error (it is probably not a study).

    Raises
    ------
    InputError
        The database cannot be reached, holds no study, or was written by a newer hepavol.
    """
    db = Database(url)
    try:
        current = db.revision()
    except DBAPIError as exc:
        db.dispose()
        raise InputError(database_fault(exc, db.display_url, db.dialect, opening=True)) from None
    head = db.head()
    if current is None and not create:
        db.dispose()
        raise InputError(
            f"the database {db.display_url} holds no hepavol study. Create one with 'hepavol study init DIR' "
            "(with --db URL for PostgreSQL)."
        )
    if current is not None and current != head:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            db.dispose()
            raise InputError(
                f"the study database {db.display_url} has schema revision '{current}', written by a newer "
                "hepavol than this one: upgrade hepavol (pip install -U hepavol)."
            )
    if current != head:
        db.upgrade()
    return db


def database_url_from_env() -> str | None:
    """``HEPAVOL_DB`` if set and not empty."""
    value = os.environ.get("HEPAVOL_DB", "").strip()
    return value or None
