"""The study database on SQLite and PostgreSQL: schema, migrations, audit trail, transactions, leases."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from tests._study_helpers import db_url  # noqa: F401  (fixture)

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.db import Database, open_database
from hepavol.study.leases import Leases
from hepavol.study.models import AuditEntry, Base, Claim, Patient
from hepavol.study.workspace import CONFIG_NAME, DB_NAME, KEY_NAME, find_workspace, init_workspace


def test_init_creates_workspace(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    ws = init_workspace(tmp_path / "s", db_url=db_url)
    assert (ws.root / CONFIG_NAME).is_file()
    assert stat.S_IMODE((ws.root / KEY_NAME).stat().st_mode) == 0o600
    assert (ws.root / DB_NAME).exists() == (db_url is None)
    assert ws.db.revision() == Database.head()
    with ws.db.transaction() as session:
        actions = [e.action for e in audit.entries(session)]
    assert actions == ["init"]
    if db_url is None:
        with ws.db.engine.connect() as c:  # WAL mode (module docstring of hepavol.study.db)
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    ws.close()
    again = find_workspace(ws.root, db_url=db_url)
    assert again.db.revision() == Database.head()
    again.close()


def test_init_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("data")
    with pytest.raises(InputError, match="not empty"):
        init_workspace(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]  # nothing half-created


def test_find_workspace_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="is not a hepavol study"):
        find_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no hepavol study here"):
        find_workspace()
    ws = init_workspace(tmp_path / "s")
    ws.close()
    (tmp_path / "s" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "s" / "sub")
    assert find_workspace().root == ws.root  # found in a parent folder


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "s")
    ws.close()
    config = tmp_path / "s" / CONFIG_NAME
    config.write_text(config.read_text().replace("tumor_labels = [2]", "tumor_labels = [0]"))
    with pytest.raises(InputError, match=r"tumor_labels = \[0\] is not valid"):
        find_workspace(tmp_path / "s")
    config.write_text("[measurment]\nliver_label = 1\n")
    with pytest.raises(InputError, match="unknown section"):
        find_workspace(tmp_path / "s")


def test_schema_from_migrations_matches_models(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    """Alembic's autogenerate comparison finds nothing to migrate: the migrations build exactly the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ws = init_workspace(tmp_path / "s", db_url=db_url)
    with ws.db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    ws.close()
    assert diff == []


def test_audit_log_is_append_only(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    ws = init_workspace(tmp_path / "s", db_url=db_url)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), ws.db.transaction() as session:
        session.execute(sa.update(AuditEntry).values(action="forged"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), ws.db.transaction() as session:
        session.execute(sa.delete(AuditEntry))
    with ws.db.transaction() as session:
        assert [e.action for e in audit.entries(session)] == ["init"]
    ws.close()


def test_transaction_rolls_back_everything(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    ws = init_workspace(tmp_path / "s", db_url=db_url)

    def crash() -> None:
        with ws.db.transaction() as session:
            session.add(Patient(pseudonym="P-a"))
            session.flush()
            audit.record(session, "import-patient", key="P-a")
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError, match="crash in the middle"):
        crash()
    with ws.db.transaction() as session:
        assert session.scalars(select(Patient)).all() == []
        assert [e.action for e in audit.entries(session)] == ["init"]
    ws.close()


def test_leases(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    ws = init_workspace(tmp_path / "s", db_url=db_url)
    with ws.db.transaction() as session:
        session.add(Patient(pseudonym="P-a"))
    with ws.db.transaction() as session:
        pk = session.scalar(select(Patient.id))
    assert pk is not None
    first, second = Leases(ws.db), Leases(ws.db)
    assert first.claim(pk) is None
    assert second.claim(pk) == first.owner  # held by a live process (this one)
    first.release(pk)
    assert second.claim(pk) is None
    # a lease of a process of this machine that no longer exists is taken over at once (a run killed by a signal)
    with ws.db.transaction() as session:
        claim = session.get(Claim, pk)
        assert claim is not None
        claim.owner = f"{os.uname().nodename}:999999999:dead"
    assert first.claim(pk) is None
    # an expired lease too
    with ws.db.transaction() as session:
        claim = session.get(Claim, pk)
        assert claim is not None
        claim.owner, claim.expires_at = "otherhost:1:x", dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    assert second.claim(pk) is None
    second.release_all()
    assert first.holders() == {}
    ws.close()


def test_open_database_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsupported database 'mysql'"):
        open_database("mysql://u@h/db")
    with pytest.raises(InputError, match="holds no hepavol study"):
        open_database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(InputError, match="cannot open the study database"):
        open_database("postgresql://nobody@127.0.0.1:1/none")
