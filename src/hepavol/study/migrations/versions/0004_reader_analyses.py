"""Each named reader's analysis stored by ``study run``: ``analyses.reader`` (NULL for the study's own read, which
every existing analysis is).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 20:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reader", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # without the column a reader's analysis would pass for the study's own read: remove them (study run stores
    # them again after an upgrade)
    readers = "SELECT id FROM analyses WHERE reader IS NOT NULL"
    op.execute(
        f"DELETE FROM track_points WHERE track_pk IN (SELECT id FROM tracks WHERE analysis_id IN ({readers}))"
    )
    op.execute(f"DELETE FROM tracks WHERE analysis_id IN ({readers})")
    scans = f"SELECT id FROM scan_measurements WHERE analysis_id IN ({readers})"
    op.execute(f"DELETE FROM lesion_measurements WHERE scan_measurement_id IN ({scans})")
    op.execute(f"DELETE FROM scan_measurements WHERE analysis_id IN ({readers})")
    op.execute(f"DELETE FROM timepoint_assessments WHERE analysis_id IN ({readers})")
    op.execute("DELETE FROM analyses WHERE reader IS NOT NULL")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_column("reader")
