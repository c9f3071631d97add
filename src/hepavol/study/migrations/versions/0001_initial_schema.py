"""Initial schema of the study database, with the append-only audit log (triggers reject UPDATE and DELETE).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:59:36.450338
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=True),
        sa.Column("entity_key", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_patients_pseudonym")),
    )
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("hepavol_version", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("best_overall_response", sa.String(length=16), nullable=True),
        sa.Column("progression_date", sa.Date(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_analyses_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
        sa.UniqueConstraint("patient_id", "input_hash", name=op.f("uq_analyses_patient_id_input_hash")),
    )
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analyses_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "claims",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_claims_patient_id_patients")),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_claims")),
    )
    op.create_table(
        "clinical_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("tumour_type", sa.String(length=128), nullable=True),
        sa.Column("primary_site", sa.String(length=64), nullable=True),
        sa.Column("differentiation", sa.String(length=32), nullable=True),
        sa.Column("ki67_percent", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=8), nullable=True),
        sa.Column("cga_ug_l", sa.Float(), nullable=True),
        sa.Column("extra_abdominal", sa.Boolean(), nullable=True),
        sa.Column("primary_resected", sa.Boolean(), nullable=True),
        sa.Column("treatments_recorded", sa.Boolean(), nullable=False),
        sa.Column("undated_treatment_categories", sa.JSON(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_clinical_records_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_records")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_clinical_records_patient_id")),
    )
    op.create_table(
        "eligibility_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("baseline_date", sa.Date(), nullable=True),
        sa.Column("early_date", sa.Date(), nullable=True),
        sa.Column("small_lesions", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("criteria_version", sa.String(length=128), nullable=False),
        sa.Column("hepavol_version", sa.String(length=32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_eligibility_decisions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_decisions")),
    )
    with op.batch_alter_table("eligibility_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eligibility_decisions_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_identities_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_identities_patient_id")),
    )
    op.create_table(
        "imaging_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=True),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_imaging_studies_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imaging_studies")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_imaging_studies_study_uid")),
    )
    with op.batch_alter_table("imaging_studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imaging_studies_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_review_decisions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_decisions_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "run_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_run_failures_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_failures")),
    )
    with op.batch_alter_table("run_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_failures_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "treatments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_treatments_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatments")),
    )
    with op.batch_alter_table("treatments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_treatments_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=True),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("n_instances", sa.Integer(), nullable=True),
        sa.Column("slice_thickness_mm", sa.Float(), nullable=True),
        sa.Column("orientation", sa.String(length=16), nullable=True),
        sa.Column("contrast_phase", sa.String(length=32), nullable=True),
        sa.Column("mr_sequence", sa.String(length=32), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("choice_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["imaging_studies.id"], name=op.f("fk_series_study_id_imaging_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_series_series_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_study_id"), ["study_id"], unique=False)

    op.create_table(
        "timepoint_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=False),
        sa.Column("total_tumor_volume_ml", sa.Float(), nullable=False),
        sa.Column("liver_volume_ml", sa.Float(), nullable=True),
        sa.Column("hepatic_tumor_load_class", sa.String(length=16), nullable=True),
        sa.Column("lesion_count", sa.Integer(), nullable=False),
        sa.Column("new_lesion_count", sa.Integer(), nullable=False),
        sa.Column("sum_of_diameters_mm", sa.Float(), nullable=True),
        sa.Column("target_response", sa.String(length=16), nullable=True),
        sa.Column("non_target_response", sa.String(length=16), nullable=True),
        sa.Column("overall_response", sa.String(length=16), nullable=True),
        sa.Column("volume_change_from_baseline_percent", sa.Float(), nullable=True),
        sa.Column("volume_change_from_nadir_percent", sa.Float(), nullable=True),
        sa.Column("volumetric_response", sa.String(length=16), nullable=True),
        sa.Column("tgr_recist_percent_per_month", sa.Float(), nullable=True),
        sa.Column("tgr_volume_percent_per_month", sa.Float(), nullable=True),
        sa.Column("registration_liver_dice", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_timepoint_assessments_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["imaging_studies.id"], name=op.f("fk_timepoint_assessments_study_id_imaging_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timepoint_assessments")),
    )
    with op.batch_alter_table("timepoint_assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_timepoint_assessments_analysis_id"), ["analysis_id"], unique=False)

    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=False),
        sa.Column("tracking_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], name=op.f("fk_tracks_analysis_id_analyses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
    )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracks_analysis_id"), ["analysis_id"], unique=False)

    op.create_table(
        "segmentations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("liver_label", sa.Integer(), nullable=False),
        sa.Column("tumor_labels", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], name=op.f("fk_segmentations_series_id_series")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segmentations")),
        sa.UniqueConstraint("series_id", "content_hash", name=op.f("uq_segmentations_series_id_content_hash")),
    )
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segmentations_series_id"), ["series_id"], unique=False)

    op.create_table(
        "track_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("track_pk", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=False),
        sa.Column("volume_ml", sa.Float(), nullable=False),
        sa.Column("long_axis_mm", sa.Float(), nullable=False),
        sa.Column("short_axis_mm", sa.Float(), nullable=False),
        sa.Column("centroid_mm", sa.JSON(), nullable=True),
        sa.Column("fragments", sa.JSON(), nullable=False),
        sa.Column("merged_into", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["imaging_studies.id"], name=op.f("fk_track_points_study_id_imaging_studies")
        ),
        sa.ForeignKeyConstraint(["track_pk"], ["tracks.id"], name=op.f("fk_track_points_track_pk_tracks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_track_points")),
    )
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_track_points_track_pk"), ["track_pk"], unique=False)

    op.create_table(
        "scan_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("segmentation_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("hepavol_version", sa.String(length=32), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("liver_volume_ml", sa.Float(), nullable=True),
        sa.Column("total_tumor_volume_ml", sa.Float(), nullable=False),
        sa.Column("tumor_burden_percent", sa.Float(), nullable=True),
        sa.Column("hepatic_tumor_load_class", sa.String(length=16), nullable=True),
        sa.Column("lesion_count", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_scan_measurements_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["segmentation_id"],
            ["segmentations.id"],
            name=op.f("fk_scan_measurements_segmentation_id_segmentations"),
        ),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], name=op.f("fk_scan_measurements_series_id_series")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["imaging_studies.id"], name=op.f("fk_scan_measurements_study_id_imaging_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_measurements")),
    )
    with op.batch_alter_table("scan_measurements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scan_measurements_analysis_id"), ["analysis_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_scan_measurements_input_hash"), ["input_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_scan_measurements_study_id"), ["study_id"], unique=False)

    op.create_table(
        "lesion_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_measurement_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.String(length=16), nullable=False),
        sa.Column("track_id", sa.String(length=16), nullable=True),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("volume_ml", sa.Float(), nullable=False),
        sa.Column("voxel_count", sa.Integer(), nullable=False),
        sa.Column("long_axis_mm", sa.Float(), nullable=False),
        sa.Column("short_axis_mm", sa.Float(), nullable=False),
        sa.Column("max_diameter_3d_mm", sa.Float(), nullable=False),
        sa.Column("slice_index", sa.Integer(), nullable=False),
        sa.Column("long_axis_endpoints_mm", sa.JSON(), nullable=False),
        sa.Column("short_axis_endpoints_mm", sa.JSON(), nullable=False),
        sa.Column("centroid_mm", sa.JSON(), nullable=False),
        sa.Column("mean_hu", sa.Float(), nullable=True),
        sa.Column("sd_hu", sa.Float(), nullable=True),
        sa.Column("measurable", sa.Boolean(), nullable=False),
        sa.Column("in_liver", sa.Boolean(), nullable=True),
        sa.Column("touches_border", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_measurement_id"],
            ["scan_measurements.id"],
            name=op.f("fk_lesion_measurements_scan_measurement_id_scan_measurements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesion_measurements")),
    )
    with op.batch_alter_table("lesion_measurements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesion_measurements_scan_measurement_id"), ["scan_measurement_id"], unique=False
        )

    _audit_log_append_only()


APPEND_ONLY_MESSAGE = "the audit log is append-only: its entries are never changed or deleted"


def _audit_log_append_only() -> None:
    """Database triggers that reject UPDATE and DELETE on audit_log (SQLite and PostgreSQL)."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table("lesion_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_measurements_scan_measurement_id"))

    op.drop_table("lesion_measurements")
    with op.batch_alter_table("scan_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scan_measurements_study_id"))
        batch_op.drop_index(batch_op.f("ix_scan_measurements_input_hash"))
        batch_op.drop_index(batch_op.f("ix_scan_measurements_analysis_id"))

    op.drop_table("scan_measurements")
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_track_points_track_pk"))

    op.drop_table("track_points")
    with op.batch_alter_table("segmentations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segmentations_series_id"))

    op.drop_table("segmentations")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_analysis_id"))

    op.drop_table("tracks")
    with op.batch_alter_table("timepoint_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timepoint_assessments_analysis_id"))

    op.drop_table("timepoint_assessments")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_id"))

    op.drop_table("series")
    with op.batch_alter_table("treatments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_treatments_patient_id"))

    op.drop_table("treatments")
    with op.batch_alter_table("run_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_failures_patient_id"))

    op.drop_table("run_failures")
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_decisions_patient_id"))

    op.drop_table("review_decisions")
    with op.batch_alter_table("imaging_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imaging_studies_patient_id"))

    op.drop_table("imaging_studies")
    op.drop_table("identities")
    with op.batch_alter_table("eligibility_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eligibility_decisions_patient_id"))

    op.drop_table("eligibility_decisions")
    op.drop_table("clinical_records")
    op.drop_table("claims")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analyses_patient_id"))

    op.drop_table("analyses")
    op.drop_table("patients")
    op.drop_table("audit_log")
