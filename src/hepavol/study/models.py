"""The study database: SQLAlchemy 2 models (the schema is created and migrated by Alembic, ``migrations/``).

Conventions: times are UTC (``DateTime(timezone=True)``), dates are calendar dates of the scans, volumes in mL,
lengths in mm, coordinates in each scan's DICOM LPS frame (mm) unless the column says otherwise. Patients are
known by their pseudonym only; the original identifier is kept in :class:`Identity`, which nothing exports.

Tables and what they hold:

- ``patients``, ``identities``: pseudonym, and the original id it was derived from (never exported).
- ``imaging_studies`` (one per scan date: a time point), ``series`` (every series found, the chosen one flagged
  with the reason), ``segmentations`` (source: imported file, DICOM SEG, hepavol's segmenter; content hash).
- ``lesion_seeds``: RECIST lines and points the site already has (DICOM SR, CSV), the seeds of ``study segment``;
  a segmentation is ``proposed`` (made by hepavol) or ``accepted`` (imported, or accepted by a reader).
- ``clinical_records``, ``treatments``: clinical variables (Ki-67, grade, CgA, ...) and dated treatments.
- ``eligibility_decisions``: every decision with its reasons (append-only history; the latest is current).
- ``analyses``: one per patient and set of inputs (``input_hash``): the follow-up run with its provenance;
  ``reader`` NULL for the study's own read, else the named reader whose segmentation versions it measured.
  ``scan_measurements``/``lesion_measurements``: every figure of ``hepavol measure``; ``tracks``/``track_points``:
  tracked lesions; ``timepoint_assessments``: RECIST, volumetric response and TGR per scan.
- ``run_failures``: a patient whose run failed, with the error. ``claims``: leases that let two ``study run``
  processes share the work.
- ``review_decisions`` and ``audit_log``: who changed what and when. The audit log is append-only: database
  triggers reject UPDATE and DELETE on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Analysis",
    "AuditEntry",
    "Base",
    "Claim",
    "ClinicalRecord",
    "EligibilityDecision",
    "Identity",
    "ImagingStudy",
    "LesionMeasurement",
    "LesionSeed",
    "Patient",
    "ReviewDecision",
    "RunFailure",
    "ScanMeasurement",
    "Segmentation",
    "Series",
    "TimepointAssessment",
    "Track",
    "TrackPoint",
    "Treatment",
    "as_utc",
    "utcnow",
]

# Constraint names fixed by convention so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UTC = dt.UTC


def utcnow() -> dt.datetime:
    """The current time in UTC (timezone-aware)."""
    return dt.datetime.now(UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A time read back from the database as aware UTC (SQLite returns naive UTC, PostgreSQL aware times)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[dt.datetime] = _created()

    studies: Mapped[list[ImagingStudy]] = relationship(
        back_populates="patient", order_by="ImagingStudy.study_date"
    )


class Identity(Base):
    """The original patient identifier behind a pseudonym (stays in the workspace, never exported)."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    original_id: Mapped[str] = mapped_column(String(128))


class ImagingStudy(Base):
    """One imaging study (a time point): a DICOM study, or the scans of one date imported from files."""

    __tablename__ = "imaging_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_date: Mapped[dt.date] = mapped_column(Date)
    modality: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(16))  # "dicom" or "file"
    created_at: Mapped[dt.datetime] = _created()

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study", order_by="Series.id")


class Series(Base):
    """An image series of a study; ``chosen`` marks the one measured, ``choice_reason`` says why."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("imaging_studies.id"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(String(256))
    n_instances: Mapped[int | None] = mapped_column(Integer)
    slice_thickness_mm: Mapped[float | None] = mapped_column(Float)
    orientation: Mapped[str | None] = mapped_column(String(16))
    contrast_phase: Mapped[str | None] = mapped_column(String(32))
    mr_sequence: Mapped[str | None] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)  # a DICOM folder or an image file
    kind: Mapped[str] = mapped_column(String(8))  # "dicom" or "file"
    content_hash: Mapped[str] = mapped_column(String(64))
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    choice_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()

    study: Mapped[ImagingStudy] = relationship(back_populates="series")
    segmentations: Mapped[list[Segmentation]] = relationship(back_populates="series", order_by="Segmentation.id")


class Segmentation(Base):
    """A segmentation of a series. ``active`` marks the one measured (the latest imported, unless reviewed)."""

    __tablename__ = "segmentations"
    __table_args__ = (UniqueConstraint("series_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "file", "dicom-seg" or "hepavol-segment"
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    liver_label: Mapped[int] = mapped_column(Integer, default=1)
    tumor_labels: Mapped[list[Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = _created()
    # a version saved in the review app: its reader, the version it was edited from, the reader's note
    created_by: Mapped[str | None] = mapped_column(String(128), default=None)
    based_on_id: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    # a blinded second reader's version: never active (the study measures its own read), the reader's name here
    read_by: Mapped[str | None] = mapped_column(String(128), default=None)
    # "proposed" (made by hepavol study segment, until a reader accepts it) or "accepted" (imported expert masks,
    # a reader's saved version, or a proposal a reader accepted: accepted_by / accepted_at)
    state: Mapped[str] = mapped_column(String(16), default="accepted", server_default="accepted")
    # how a proposal was made: method, parameters, the seeds used, the input hash of its task (None for imports)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    accepted_by: Mapped[str | None] = mapped_column(String(128), default=None)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    series: Mapped[Series] = relationship(back_populates="segmentations")


PROPOSED, ACCEPTED = "proposed", "accepted"
SEGMENTATION_STATES = (PROPOSED, ACCEPTED)


class LesionSeed(Base):
    """A lesion seed a site already has: a RECIST line (two LPS points) or a point, from a DICOM SR TID 1500
    linear measurement, a CSV, or a presentation state; ``problem`` says why it cannot be used (None if it can)."""

    __tablename__ = "lesion_seeds"
    __table_args__ = (UniqueConstraint("study_id", "seed_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("imaging_studies.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "dicom-sr", "csv" or "gsps"
    origin: Mapped[str] = mapped_column(Text)  # "SR <uid>, measurement group 2", "seeds.csv, line 3" (no paths)
    lesion_ref: Mapped[str | None] = mapped_column(String(128))  # tracking id / lesion id given by the source
    kind: Mapped[str] = mapped_column(String(8))  # "line" or "point"
    coordinates: Mapped[str] = mapped_column(String(8))  # "lps" (mm) or "index" (slice, row, column)
    points_lps_mm: Mapped[list[Any]] = mapped_column(JSON)  # [[x, y, z], [x, y, z]] or [[x, y, z]] (or indices)
    referenced_series_uid: Mapped[str | None] = mapped_column(String(64))
    frame_of_reference_uid: Mapped[str | None] = mapped_column(String(64))
    problem: Mapped[str | None] = mapped_column(Text)
    seed_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = _created()


class ClinicalRecord(Base):
    """Clinical variables of a patient (the latest import; earlier values are in the audit log)."""

    __tablename__ = "clinical_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    tumour_type: Mapped[str | None] = mapped_column(String(128))
    primary_site: Mapped[str | None] = mapped_column(String(64))
    differentiation: Mapped[str | None] = mapped_column(String(32))
    ki67_percent: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str | None] = mapped_column(String(8))  # "G1", "G2", "G3"
    cga_ug_l: Mapped[float | None] = mapped_column(Float)
    extra_abdominal: Mapped[bool | None] = mapped_column(Boolean)
    primary_resected: Mapped[bool | None] = mapped_column(Boolean)
    treatments_recorded: Mapped[bool] = mapped_column(Boolean)
    undated_treatment_categories: Mapped[list[Any]] = mapped_column(JSON)
    source_file: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[dt.datetime] = _created()


class Treatment(Base):
    __tablename__ = "treatments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)  # None: ongoing
    line: Mapped[int | None] = mapped_column(Integer)  # line in the treatments file


class EligibilityDecision(Base):
    """One eligibility decision for a patient (history kept; the latest ``id`` is the current one)."""

    __tablename__ = "eligibility_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    eligible: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column(JSON)  # [{"code": ..., "text": ...}]
    baseline_date: Mapped[dt.date | None] = mapped_column(Date)
    early_date: Mapped[dt.date | None] = mapped_column(Date)
    small_lesions: Mapped[list[Any]] = mapped_column(JSON)
    warnings: Mapped[list[Any]] = mapped_column(JSON)
    criteria_version: Mapped[str] = mapped_column(String(128))
    hepavol_version: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[dt.datetime] = _created()


class Analysis(Base):
    """A successful follow-up run of one patient on one set of inputs (``input_hash``), with its provenance."""

    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("patient_id", "input_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # whose read: NULL for the study's own read (the analysis export, review and worklist use); else a named
    # reader's read measured on their own segmentation versions (hepavol.study.readers)
    reader: Mapped[str | None] = mapped_column(String(128), default=None)
    input_hash: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[list[Any]] = mapped_column(JSON)  # per scan: date, series uid, image and seg hashes
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    hepavol_version: Mapped[str] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    targets: Mapped[list[Any]] = mapped_column(JSON)
    best_overall_response: Mapped[str | None] = mapped_column(String(16))
    progression_date: Mapped[dt.date | None] = mapped_column(Date)
    warnings: Mapped[list[Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # the follow-up JSON (as `hepavol follow-up --json`)


class ScanMeasurement(Base):
    """Every figure of ``hepavol measure`` for one scan, with provenance (version, parameters, input hashes)."""

    __tablename__ = "scan_measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("imaging_studies.id"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"))
    segmentation_id: Mapped[int] = mapped_column(ForeignKey("segmentations.id"))
    purpose: Mapped[str] = mapped_column(String(16))  # "eligibility" (baseline only) or "run"
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    hepavol_version: Mapped[str] = mapped_column(String(32))
    measured_at: Mapped[dt.datetime] = _created()
    liver_volume_ml: Mapped[float | None] = mapped_column(Float)
    total_tumor_volume_ml: Mapped[float] = mapped_column(Float)
    tumor_burden_percent: Mapped[float | None] = mapped_column(Float)
    hepatic_tumor_load_class: Mapped[str | None] = mapped_column(String(16))
    lesion_count: Mapped[int] = mapped_column(Integer)
    warnings: Mapped[list[Any]] = mapped_column(JSON)

    lesions: Mapped[list[LesionMeasurement]] = relationship(order_by="LesionMeasurement.id")


class LesionMeasurement(Base):
    __tablename__ = "lesion_measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_measurement_id: Mapped[int] = mapped_column(ForeignKey("scan_measurements.id"), index=True)
    lesion_id: Mapped[str] = mapped_column(String(16))  # scan-local id (L1 = largest)
    track_id: Mapped[str | None] = mapped_column(String(16))  # tracked lesion id, when tracked
    label: Mapped[int] = mapped_column(Integer)
    volume_ml: Mapped[float] = mapped_column(Float)
    voxel_count: Mapped[int] = mapped_column(Integer)
    long_axis_mm: Mapped[float] = mapped_column(Float)
    short_axis_mm: Mapped[float] = mapped_column(Float)
    max_diameter_3d_mm: Mapped[float] = mapped_column(Float)
    slice_index: Mapped[int] = mapped_column(Integer)
    long_axis_endpoints_mm: Mapped[list[Any]] = mapped_column(JSON)
    short_axis_endpoints_mm: Mapped[list[Any]] = mapped_column(JSON)
    centroid_mm: Mapped[list[Any]] = mapped_column(JSON)
    mean_hu: Mapped[float | None] = mapped_column(Float)
    sd_hu: Mapped[float | None] = mapped_column(Float)
    measurable: Mapped[bool] = mapped_column(Boolean)
    in_liver: Mapped[bool | None] = mapped_column(Boolean)
    touches_border: Mapped[bool] = mapped_column(Boolean)


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    track_id: Mapped[str] = mapped_column(String(16))
    tracking_uid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    target: Mapped[bool] = mapped_column(Boolean)

    points: Mapped[list[TrackPoint]] = relationship(order_by="TrackPoint.study_date")


class TrackPoint(Base):
    __tablename__ = "track_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    track_pk: Mapped[int] = mapped_column(ForeignKey("tracks.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("imaging_studies.id"))
    study_date: Mapped[dt.date] = mapped_column(Date)
    volume_ml: Mapped[float] = mapped_column(Float)
    long_axis_mm: Mapped[float] = mapped_column(Float)
    short_axis_mm: Mapped[float] = mapped_column(Float)
    centroid_mm: Mapped[list[Any] | None] = mapped_column(JSON)  # baseline LPS frame
    fragments: Mapped[list[Any]] = mapped_column(JSON)
    merged_into: Mapped[str | None] = mapped_column(String(16))


class TimepointAssessment(Base):
    """RECIST 1.1, volumetric response and TGR of one scan within an analysis."""

    __tablename__ = "timepoint_assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("imaging_studies.id"))
    study_date: Mapped[dt.date] = mapped_column(Date)
    total_tumor_volume_ml: Mapped[float] = mapped_column(Float)
    liver_volume_ml: Mapped[float | None] = mapped_column(Float)
    hepatic_tumor_load_class: Mapped[str | None] = mapped_column(String(16))
    lesion_count: Mapped[int] = mapped_column(Integer)
    new_lesion_count: Mapped[int] = mapped_column(Integer)
    sum_of_diameters_mm: Mapped[float | None] = mapped_column(Float)
    target_response: Mapped[str | None] = mapped_column(String(16))
    non_target_response: Mapped[str | None] = mapped_column(String(16))
    overall_response: Mapped[str | None] = mapped_column(String(16))
    volume_change_from_baseline_percent: Mapped[float | None] = mapped_column(Float)
    volume_change_from_nadir_percent: Mapped[float | None] = mapped_column(Float)
    volumetric_response: Mapped[str | None] = mapped_column(String(16))
    tgr_recist_percent_per_month: Mapped[float | None] = mapped_column(Float)
    tgr_volume_percent_per_month: Mapped[float | None] = mapped_column(Float)
    registration_liver_dice: Mapped[float | None] = mapped_column(Float)


class RunFailure(Base):
    """A patient whose run failed (kept as history; a later successful analysis supersedes it)."""

    __tablename__ = "run_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    input_hash: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    failed_at: Mapped[dt.datetime] = _created()


class Claim(Base):
    """A lease on a patient's work by one ``study run`` process, so that two runs share the work."""

    __tablename__ = "claims"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ReviewDecision(Base):
    """A reviewer's decision (e.g. targets chosen by hand, a patient excluded), with its reason."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[dt.datetime] = _created()


class AuditEntry(Base):
    """One line of the audit trail: who did what, when (append-only: triggers reject UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = _created()
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(64))
    entity_key: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
