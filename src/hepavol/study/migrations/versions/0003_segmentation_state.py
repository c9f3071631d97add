"""Segmentation state (proposed by hepavol or accepted), a proposal's provenance, and the lesion seeds of
``study segment`` (RECIST lines from DICOM SR TID 1500 and CSV). Existing segmentations are accepted (imports).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="accepted"))
        batch_op.add_column(sa.Column("provenance", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("accepted_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "lesion_seeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("lesion_ref", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("coordinates", sa.String(length=8), nullable=False),
        sa.Column("points_lps_mm", sa.JSON(), nullable=False),
        sa.Column("referenced_series_uid", sa.String(length=64), nullable=True),
        sa.Column("frame_of_reference_uid", sa.String(length=64), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("seed_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_lesion_seeds_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["imaging_studies.id"], name=op.f("fk_lesion_seeds_study_id_imaging_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesion_seeds")),
        sa.UniqueConstraint("study_id", "seed_hash", name=op.f("uq_lesion_seeds_study_id_seed_hash")),
    )
    with op.batch_alter_table("lesion_seeds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_seeds_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lesion_seeds_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lesion_seeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_seeds_study_id"))
        batch_op.drop_index(batch_op.f("ix_lesion_seeds_patient_id"))
    op.drop_table("lesion_seeds")
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("accepted_by")
        batch_op.drop_column("provenance")
        batch_op.drop_column("state")
