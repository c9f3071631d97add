"""Schema migrations of a study database written by an earlier hepavol, on SQLite and PostgreSQL.

0004 (``analyses.reader``): a 0003 database with an analysis opens at the head revision; the analysis is the
study's own read (``reader`` NULL), so ``stored_analysis`` of the study's read still finds it and no reader's read
does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from tests._study_helpers import db_url  # noqa: F401  (fixture)

from hepavol.study.db import Database, open_database
from hepavol.study.models import Analysis
from hepavol.study.runner import PatientJob, stored_analysis


def _database_at(url: str, revision: str) -> None:
    """A database built by the migrations up to ``revision`` only (as an earlier hepavol left it)."""
    from alembic import command

    db = Database(url)
    with db.engine.begin() as connection:
        command.upgrade(db._alembic_config(connection), revision)
    assert db.revision() == revision
    db.dispose()


def test_0004_upgrades_a_0003_database_with_analyses(tmp_path: Path, db_url: str | None) -> None:  # noqa: F811
    url = db_url or f"sqlite:///{tmp_path / 'study.db'}"
    _database_at(url, "0003")
    engine = sa.create_engine(url)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO patients (id, pseudonym, created_at) VALUES (1, 'P-a', :t)"), {"t": now})
        c.execute(
            sa.text(
                "INSERT INTO analyses (id, patient_id, input_hash, inputs, parameters, hepavol_version, worker, "
                "started_at, finished_at, targets, best_overall_response, progression_date, warnings, result) "
                "VALUES (1, 1, 'h1', '[]', '{}', '0.1', 'w', :t, :t, '[\"L1\"]', 'PR', NULL, '[]', '{}')"
            ),
            {"t": now},
        )
        assert "reader" not in {col["name"] for col in sa.inspect(c).get_columns("analyses")}
    engine.dispose()

    db = open_database(url)  # upgrades to the head revision
    assert db.revision() == Database.head() == "0004"
    with db.transaction() as session:
        (analysis,) = session.scalars(sa.select(Analysis)).all()
        assert (analysis.id, analysis.reader, analysis.best_overall_response, analysis.targets) == (1, None, "PR",
                                                                                                   ["L1"])  # fmt: skip
        job = PatientJob(patient_pk=1, pseudonym="P-a", scans=(), parameters={}, input_hash="h1")
        found = stored_analysis(session, job)
        assert found is not None
        assert found.id == 1
        reader_b = PatientJob(patient_pk=1, pseudonym="P-a", scans=(), parameters={}, input_hash="h1", reader="B")
        assert stored_analysis(session, reader_b) is None
    db.dispose()
