"""What a reader sees of a study: the worklist and one patient's scans and lesions, under pseudonyms only.

The review app (:mod:`hepavol.app`) and ``hepavol study status`` read the study through these functions; they hold
the study's rules (which analysis is current, what counts as segmented, reviewed or failed), so no web route or
browser code decides them. Nothing here returns an original patient id, a name, a birth date or a file path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study.models import (
    Analysis,
    ImagingStudy,
    LesionMeasurement,
    Patient,
    ReviewDecision,
    RunFailure,
    ScanMeasurement,
    Track,
)
from hepavol.study.review import current_override, signed_off
from hepavol.study.runner import _job, current_inputs, latest_eligibility, scan_input
from hepavol.study.workspace import Workspace

__all__ = [
    "LesionRow",
    "PatientRead",
    "ScanFiles",
    "ScanRow",
    "WorklistRow",
    "patient_read",
    "registration_matrices",
    "scan_files",
    "scan_lesions",
    "worklist",
]

# analysis states of a worklist row
UP_TO_DATE, STALE, NEVER, NOT_READY, NOT_ELIGIBLE = "up to date", "to redo", "never run", "not ready", "—"
ANALYSIS_STATES = (UP_TO_DATE, STALE, NEVER, NOT_READY, NOT_ELIGIBLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistRow:
    """One patient on the worklist."""

    pseudonym: str
    eligibility: str  # "eligible", "excluded", "not assessed"
    eligibility_reasons: list[str]
    modality: str  # of the scans ("CT", "MR", "CT+MR")
    scans: int
    segmented: int  # scans with an active segmentation on their chosen series
    analysis: str  # UP_TO_DATE, STALE, NEVER, NOT_READY or NOT_ELIGIBLE
    failed: str | None  # the failure on the current inputs (paths already replaced by labels)
    not_ready: str | None  # why the patient cannot be run
    reviewed: bool  # any review decision stored
    signed_off: str | None  # "by READER at TIME" when the read is signed off
    best_overall_response: str | None
    baseline_date: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionRow:
    """A lesion of one scan as the current analysis measured it (lengths in mm, volume in mL, points LPS mm)."""

    lesion_id: str
    track_id: str | None
    label_value: int  # value n of the lesion map (lesion L<n>)
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    max_diameter_3d_mm: float
    measurable: bool
    target: bool
    track_status: str | None
    slice_index: int  # the RECIST slice, stored grid
    long_axis_endpoints_mm: list[list[float]]
    short_axis_endpoints_mm: list[list[float]]
    centroid_mm: list[float]
    in_liver: bool | None
    touches_border: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRow:
    """One scan (time point) of a patient."""

    study_pk: int
    date: str
    modality: str | None
    description: str | None
    series_description: str | None
    segmented: bool
    problem: str | None  # why it cannot be shown or measured
    liver_volume_ml: float | None = None
    total_tumor_volume_ml: float | None = None
    tumor_burden_percent: float | None = None
    lesions: list[LesionRow] = field(default_factory=list)
    #: "proposed" (made by hepavol study segment, not yet accepted by a reader), "accepted", or None (none)
    segmentation_state: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRead:
    """A patient's scans and the current analysis (None when none matches the current inputs)."""

    pseudonym: str
    row: WorklistRow
    scans: list[ScanRow]
    targets: list[str]
    assessments: list[dict[str, Any]]
    warnings: list[str]
    #: the reader's RECIST calls (``study review --non-target / --new-lesion``): {"non_target": {date: call},
    #: "new_lesions": {lesion_id: call}}
    recist_marks: dict[str, dict[str, str]] = field(default_factory=lambda: {"non_target": {}, "new_lesions": {}})
    #: the reader's relinks of the tracking (``study review --link``): {date: {lesion: track}}; ``stale_links``: the
    #: dates whose links were made on an earlier segmentation of the scan (not applied)
    lesion_links: dict[str, dict[str, str]] = field(default_factory=dict)
    stale_links: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def patient_by_pseudonym(session: Session, pseudonym: str) -> Patient:
    """The patient of a pseudonym (InputError when the study has none)."""
    return _patient(session, pseudonym)


def _patient(session: Session, pseudonym: str) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        raise InputError(f"no patient '{pseudonym}' in this study: pick one from the worklist.")
    return patient


def _row(
    session: Session, ws: Workspace, patient: Patient, decisions: dict[int, Any]
) -> tuple[WorklistRow, Analysis | None]:
    decision = decisions.get(patient.id)
    studies = list(patient.studies)
    inputs = [scan_input(s, accept_proposed=True)[0] for s in studies]
    segmented = sum(1 for s in inputs if s is not None)
    reviewed = (
        session.scalar(
            select(ReviewDecision.id).where(
                ReviewDecision.patient_id == patient.id,
                ReviewDecision.field != "second-read-targets",  # a blinded reader's own: not the study's review
            )
        )
        is not None
    )
    signed = signed_off(session, patient.id)
    base: dict[str, Any] = {
        "pseudonym": patient.pseudonym,
        "scans": len(studies),
        "modality": "+".join(sorted({s.modality for s in studies if s.modality})),
        "segmented": segmented,
        "reviewed": reviewed,
        "signed_off": f"by {signed.reviewer} at {signed.decided_at:%Y-%m-%d %H:%M} UTC" if signed else None,
        "eligibility_reasons": [r.get("text", r.get("code", "")) for r in (decision.reasons if decision else [])],
        "baseline_date": decision.baseline_date.isoformat() if decision and decision.baseline_date else None,
    }
    if decision is None:
        row = WorklistRow(**base, eligibility="not assessed", analysis=NOT_ELIGIBLE, failed=None, not_ready=None,
                          best_overall_response=None)  # fmt: skip
        return row, None
    if not decision.eligible:
        row = WorklistRow(**base, eligibility="excluded", analysis=NOT_ELIGIBLE, failed=None, not_ready=None,
                          best_overall_response=None)  # fmt: skip
        return row, None
    scans, problems = current_inputs(
        session,
        patient,
        decision.baseline_date,
        accept_proposed=True,
        mixed_modalities=ws.settings.mixed_modalities,
    )
    if problems:
        row = WorklistRow(**base, eligibility="eligible", analysis=NOT_READY, failed=None,
                          not_ready="; ".join(problems), best_overall_response=None)  # fmt: skip
        return row, None
    job = _job(session, patient, scans, ws.settings)
    analyses = list(  # the study's own read only: a named reader's analysis is not the patient's
        session.scalars(select(Analysis).where(Analysis.patient_id == patient.id, Analysis.reader.is_(None)))
    )
    current = next((a for a in analyses if a.input_hash == job.input_hash), None)
    failure = session.scalar(
        select(RunFailure)
        .where(RunFailure.patient_id == patient.id, RunFailure.input_hash == job.input_hash)
        .order_by(RunFailure.id.desc())
        .limit(1)
    )
    state = UP_TO_DATE if current is not None else (STALE if analyses else NEVER)
    row = WorklistRow(
        **base,
        eligibility="eligible",
        analysis=state,
        failed=failure.error if failure is not None and current is None else None,
        not_ready=None,
        best_overall_response=current.best_overall_response if current is not None else None,
    )
    return row, current


def worklist_rows(session: Session, ws: Workspace) -> list[WorklistRow]:
    """The worklist inside an open transaction (see :func:`worklist`)."""
    decisions = latest_eligibility(session)
    patients = session.scalars(select(Patient).order_by(Patient.pseudonym))
    return [_row(session, ws, p, decisions)[0] for p in patients]


def worklist(ws: Workspace) -> list[WorklistRow]:
    """Every patient of the study, by pseudonym, with what is done and what is left."""
    with ws.db.transaction() as session:
        return worklist_rows(session, ws)


def _lesions(
    session: Session, analysis: Analysis, study_pk: int, tracks: dict[str, Track]
) -> tuple[ScanMeasurement | None, list[LesionRow]]:
    scan = session.scalar(
        select(ScanMeasurement).where(
            ScanMeasurement.analysis_id == analysis.id,
            ScanMeasurement.study_id == study_pk,
            ScanMeasurement.purpose == "run",
        )
    )
    if scan is None:
        return None, []
    rows = []
    for les in session.scalars(
        select(LesionMeasurement)
        .where(LesionMeasurement.scan_measurement_id == scan.id)
        .order_by(LesionMeasurement.id)
    ):
        track = tracks.get(les.track_id or "")
        rows.append(
            LesionRow(
                lesion_id=les.lesion_id,
                track_id=les.track_id,
                label_value=int(les.lesion_id[1:]) if les.lesion_id[1:].isdigit() else 0,
                volume_ml=les.volume_ml,
                long_axis_mm=les.long_axis_mm,
                short_axis_mm=les.short_axis_mm,
                max_diameter_3d_mm=les.max_diameter_3d_mm,
                measurable=les.measurable,
                target=bool(track.target) if track is not None else False,
                track_status=track.status if track is not None else None,
                slice_index=les.slice_index,
                long_axis_endpoints_mm=les.long_axis_endpoints_mm,
                short_axis_endpoints_mm=les.short_axis_endpoints_mm,
                centroid_mm=les.centroid_mm,
                in_liver=les.in_liver,
                touches_border=les.touches_border,
            )
        )
    return scan, rows


def patient_read(ws: Workspace, pseudonym: str) -> PatientRead:
    """One patient's scans (baseline first), each with its lesions as the current analysis measured them."""
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        decisions = latest_eligibility(session)
        row, analysis = _row(session, ws, patient, decisions)
        tracks: dict[str, Track] = {}
        if analysis is not None:
            tracks = {
                t.track_id: t for t in session.scalars(select(Track).where(Track.analysis_id == analysis.id))
            }
        scans: list[ScanRow] = []
        for study in session.scalars(
            select(ImagingStudy).where(ImagingStudy.patient_id == patient.id).order_by(ImagingStudy.study_date)
        ):
            scan, problem = scan_input(study, accept_proposed=True)
            chosen = next((s for s in study.series if s.chosen), None)
            measured: ScanMeasurement | None = None
            lesions: list[LesionRow] = []
            if analysis is not None:
                measured, lesions = _lesions(session, analysis, study.id, tracks)
            scans.append(
                ScanRow(
                    study_pk=study.id,
                    date=study.study_date.isoformat(),
                    modality=study.modality,
                    description=study.description,
                    series_description=chosen.description if chosen is not None else None,
                    segmented=scan is not None,
                    problem=problem if scan is None else None,
                    liver_volume_ml=measured.liver_volume_ml if measured is not None else None,
                    total_tumor_volume_ml=measured.total_tumor_volume_ml if measured is not None else None,
                    tumor_burden_percent=measured.tumor_burden_percent if measured is not None else None,
                    lesions=lesions,
                    segmentation_state=scan.segmentation_state if scan is not None else None,
                )
            )
        assessments: list[dict[str, Any]] = []
        if analysis is not None:
            assessments = list(analysis.result.get("timepoints", []))
        return PatientRead(
            pseudonym=patient.pseudonym,
            row=row,
            scans=scans,
            targets=list(analysis.targets) if analysis is not None else [],
            assessments=assessments,
            warnings=[str(w) for w in analysis.warnings] if analysis is not None else [],
            recist_marks=current_override(session, patient.id, "recist-marks")
            or {"non_target": {}, "new_lesions": {}},
            **_links(session, patient),
        )


def scan_lesions(ws: Workspace, pseudonym: str, study_pk: int) -> list[LesionRow]:
    """One scan's lesions as the current analysis measured them (what :func:`patient_read` gives for that scan,
    without reading the other scans)."""
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        analysis = _row(session, ws, patient, latest_eligibility(session))[1]
        if analysis is None:
            return []
        tracks = {t.track_id: t for t in session.scalars(select(Track).where(Track.analysis_id == analysis.id))}
        return _lesions(session, analysis, study_pk, tracks)[1]


def _links(session: Session, patient: Patient) -> dict[str, Any]:
    from hepavol.study.review import lesion_links

    stored = current_override(session, patient.id, "lesion-links")
    hashes = {}
    for study in patient.studies:
        scan = scan_input(study)[0]
        if scan is not None:
            hashes[study.study_date.isoformat()] = scan.seg_hash
    stale = lesion_links(stored, hashes)[1]
    every = {d: dict(v["links"]) for d, v in (stored or {}).items()}
    return {"lesion_links": every, "stale_links": stale}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFiles:
    """Where one scan's image and active segmentation are: for the server's use only, never sent to a browser."""

    study_pk: int
    date: str
    image: str
    series_uid: str | None
    seg: str | None
    seg_hash: str | None
    segmentation_pk: int | None
    liver_label: int
    tumor_labels: tuple[int, ...]


def scan_files(ws: Workspace, pseudonym: str, study_pk: int, *, blinded_reader: str | None = None) -> ScanFiles:
    """The files of one scan of a patient (its chosen series and the head of the read's segmentations: the
    active one, or for a blinded reader, theirs; :func:`hepavol.study.mask_versions.current_version`).

    Raises InputError when the scan is not this patient's or has no chosen series.
    """
    parameters = ws.settings.run_parameters()
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        study = session.get(ImagingStudy, study_pk)
        if study is None or study.patient_id != patient.id:
            raise InputError(f"scan {study_pk} is not a scan of {pseudonym}: reload the patient.")
        chosen = next((s for s in study.series if s.chosen), None)
        if chosen is None:
            raise InputError(
                f"the scan of {study.study_date} of {pseudonym} has no series chosen for measurement."
            )
        from hepavol.study.mask_versions import current_version

        seg = current_version(chosen, blinded_reader)
        return ScanFiles(
            study_pk=study.id,
            date=study.study_date.isoformat(),
            image=chosen.path,
            series_uid=chosen.series_uid if chosen.kind == "dicom" else None,
            seg=seg.path if seg is not None else None,
            seg_hash=seg.content_hash if seg is not None else None,
            segmentation_pk=seg.id if seg is not None else None,
            liver_label=int(parameters["liver_label"]),
            tumor_labels=tuple(int(v) for v in parameters["tumor_labels"]),
        )


def registration_matrices(ws: Workspace, pseudonym: str) -> dict[int, list[list[float]]]:
    """Scan id → the 4×4 matrix from the baseline's LPS to that scan's (the current analysis' registration).

    Empty when the patient has no current analysis. The matrices are the follow-up's ``registration`` entries.
    """
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        analysis = _row(session, ws, patient, latest_eligibility(session))[1]
        if analysis is None:
            return {}
        by_date = {r["date"]: r.get("matrix") for r in analysis.result.get("registration", [])}
        out: dict[int, list[list[float]]] = {}
        for study in patient.studies:
            matrix = by_date.get(study.study_date.isoformat())
            if matrix is not None:
                out[study.id] = matrix
        return out


def has_second_reads(ws: Workspace, pseudonym: str) -> bool:
    """Whether a blinded reader saved a segmentation of any of the patient's scans or chose targets."""
    from hepavol.study.second_reads import second_read_readers

    return bool(second_read_readers(ws, pseudonym))
