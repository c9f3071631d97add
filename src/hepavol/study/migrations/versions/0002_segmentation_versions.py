"""Segmentation versions made in the review app: who made one, which version it was based on, and for a blinded
second read, whose read it belongs to (``read_by``; NULL for the study's own read).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 05:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("based_on_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("read_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.drop_column("read_by")
        batch_op.drop_column("note")
        batch_op.drop_column("based_on_id")
        batch_op.drop_column("created_by")
