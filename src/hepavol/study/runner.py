"""``hepavol study run``: measure, track and assess every eligible patient, resumably, in parallel.

For each eligible patient (the latest eligibility decision), the scans from the baseline on are run through
:func:`hepavol.followup.run_followup` (measure every scan, register to baseline, track lesions, RECIST 1.1,
volumetry, TGR) with the study's settings. Each patient is one task; its inputs (for every scan: date, series,
image hash, segmentation hash; and the settings) give its ``input_hash``. A patient whose analysis with the same
``input_hash`` is already stored is skipped, so a run that stopped (a crash, a signal, a power cut) resumes where
it stopped, and a patient is recomputed only when one of its inputs changed (``--force`` recomputes anyway).

Each result is written in one transaction (the analysis, every scan's measurements with every lesion, the tracks
and the per-scan assessments, an audit entry): a patient's results are all there or not at all. A patient that
fails is recorded in ``run_failures`` with the error, and the others go on.

Each named reader's read (a reader with segmentation versions of their own: :mod:`hepavol.study.readers`) is
analysed and stored the same way, as one more task of the patient (``analyses.reader`` names the reader; NULL is
the study's own read, the one export, review and the worklist use): resumable, skipped when stored with the same
``input_hash``, one transaction per patient and reader. ``study export --reader`` and ``study agreement`` use
these stored analyses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hepavol._version import __version__
from hepavol.errors import HepavolError, InputError
from hepavol.study import audit
from hepavol.study.execution import open_executor, run_tasks, worker_name
from hepavol.study.hashing import hash_json
from hepavol.study.leases import Leases
from hepavol.study.models import (
    ACCEPTED,
    PROPOSED,
    Analysis,
    EligibilityDecision,
    ImagingStudy,
    LesionMeasurement,
    Patient,
    RunFailure,
    ScanMeasurement,
    TimepointAssessment,
    Track,
    TrackPoint,
    utcnow,
)
from hepavol.study.redact import PathRedactor, scan_labels
from hepavol.study.workspace import Settings, Workspace

__all__ = [
    "PatientJob",
    "RunSummary",
    "ScanInput",
    "analyse_job",
    "analyse_patient",
    "analyse_reader_job",
    "current_inputs",
    "latest_eligibility",
    "plan_run",
    "run_study",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanInput:
    """One scan of a task: where its image and segmentation are and what they hash to."""

    date: dt.date
    study_pk: int
    series_pk: int
    segmentation_pk: int
    image: str
    series_uid: str | None  # for a DICOM folder that may hold other series
    seg: str
    image_hash: str
    seg_hash: str
    segmentation_state: str = ACCEPTED  # "accepted", or "proposed" (study run --accept-proposed)

    def key(self) -> dict[str, Any]:
        """What the scan's measurement depends on (its part of the input hash). A proposed segmentation adds its
        state, so that a patient run on proposals is recomputed once a reader accepts them (the provenance then
        says accepted); accepted ones hash as before."""
        key = {
            "date": self.date.isoformat(),
            "series_uid": self.series_uid,
            "image_hash": self.image_hash,
            "seg_hash": self.seg_hash,
        }
        if self.segmentation_state != ACCEPTED:
            key["segmentation_state"] = self.segmentation_state
        return key

    def provenance(self) -> dict[str, Any]:
        """The scan's inputs as stored with an analysis: :meth:`key` with the segmentation's state."""
        return {**self.key(), "segmentation_state": self.segmentation_state}


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientJob:
    """The work for one patient: its scans (baseline first) and the settings; ``reader`` names the reader whose
    read it measures (None: the study's own read)."""

    patient_pk: int
    pseudonym: str
    scans: tuple[ScanInput, ...]
    parameters: dict[str, Any]
    input_hash: str
    reader: str | None = None

    @property
    def label(self) -> str:
        """The patient, and the reader when it is a named reader's read (for messages)."""
        return self.pseudonym if self.reader is None else f"{self.pseudonym} (reader {self.reader})"


@dataclass(slots=True)
class RunSummary:
    """What a run did (counts of patients)."""

    eligible: int = 0
    up_to_date: int = 0
    computed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, error)
    not_ready: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, reason)
    elsewhere: int = 0  # leased by another run, or stored by it first
    scans_accepted: int = 0  # scans of the patients to analyse measured on accepted segmentations
    scans_proposed: int = 0  # ... on hepavol's proposals (--accept-proposed)
    interrupted: bool = False
    error: str | None = None  # why the run as a whole stopped (not one patient's failure)
    readers: list[str] = field(default_factory=list)  # the named readers whose reads were planned
    readers_planned: int = 0  # named readers' analyses to compute (patient × reader)
    readers_computed: int = 0  # ... computed and stored by this run
    readers_up_to_date: int = 0  # ... already stored on the same inputs


# ---------------------------------------------------------------------------------------------------------------
# Planning (in the calling process, from the database only)


def latest_eligibility(session: Session) -> dict[int, EligibilityDecision]:
    """The current eligibility decision of every assessed patient (patient id → decision)."""
    latest: dict[int, EligibilityDecision] = {}
    for decision in session.scalars(select(EligibilityDecision).order_by(EligibilityDecision.id)):
        latest[decision.patient_id] = decision
    return latest


def scan_input(study: ImagingStudy, *, accept_proposed: bool = False) -> tuple[ScanInput | None, str | None]:
    """The input a study is measured on: its chosen series with the active segmentation (latest imported).

    A segmentation proposed by ``study segment`` and not accepted by a reader is used only with
    ``accept_proposed`` (``study run --accept-proposed``). Returns the input, or None and why the study cannot be
    measured.
    """
    chosen = [s for s in study.series if s.chosen]
    if not chosen:
        return None, f"no series chosen ({study.modality or 'unknown modality'})"
    series = chosen[0]
    active = [g for g in series.segmentations if g.active]
    if not active:
        return None, (
            "no segmentation (make one with hepavol study segment, or import one with hepavol study import-seg)"
        )
    seg = active[-1]
    if seg.state == PROPOSED and not accept_proposed:
        return None, (
            "its segmentation is proposed by hepavol study segment and not accepted by a reader: accept it "
            f"(hepavol study review PSEUDONYM --accept-segmentation {study.study_date.isoformat()}, or in the "
            "review app), or run with --accept-proposed"
        )
    return segmentation_input(study, series, seg, seg.state), None


def segmentation_input(study: ImagingStudy, series: Any, seg: Any, state: str) -> ScanInput:
    """The input of measuring ``seg`` (a segmentation of the study's ``series``), with the state it is used in."""
    return ScanInput(
        date=study.study_date,
        study_pk=study.id,
        series_pk=series.id,
        segmentation_pk=seg.id,
        image=series.path,
        series_uid=series.series_uid if series.kind == "dicom" else None,
        seg=seg.path,
        image_hash=series.content_hash,
        seg_hash=seg.content_hash,
        segmentation_state=state,
    )


def scan_modality(study: ImagingStudy) -> str:
    """A study's modality (``CT``, ``MR``, ...), from the study or else its chosen series; ``UNKNOWN`` without."""
    chosen = [x for x in study.series if x.chosen]
    return (study.modality or (chosen[0].modality if chosen else None) or "unknown").upper()


def current_inputs(
    session: Session,
    patient: Patient,
    since: dt.date | None,
    *,
    accept_proposed: bool = False,
    mixed_modalities: bool = False,
) -> tuple[list[ScanInput], list[str]]:
    """The scans of a patient from ``since`` on, each with its chosen series and active segmentation
    (proposed segmentations only with ``accept_proposed``: :func:`scan_input`). Unless ``mixed_modalities``
    (study.toml ``[followup] mixed_modalities``), scans of another modality than the first one's are left out, as
    eligibility leaves them out: volumes on CT and MR are not compared.

    Returns the inputs and the reasons the patient cannot be run (empty when it can).
    """
    problems: list[str] = []
    scans: list[ScanInput] = []
    seen: dict[dt.date, str] = {}
    studies = session.scalars(
        select(ImagingStudy).where(ImagingStudy.patient_id == patient.id).order_by(ImagingStudy.study_date)
    ).all()
    baseline_modality: str | None = None
    for study in studies:
        if since is not None and study.study_date < since:
            continue
        modality = scan_modality(study)
        if baseline_modality is None:
            baseline_modality = modality
        elif modality != baseline_modality and not mixed_modalities:
            continue
        day = study.study_date.isoformat()
        scan, problem = scan_input(study, accept_proposed=accept_proposed)
        chosen_uid = next((s.series_uid for s in study.series if s.chosen), None)
        if chosen_uid is None:
            problems.append(f"scan {day}: {problem}")
            continue
        if study.study_date in seen:
            problems.append(f"two scans on {day} ({seen[study.study_date]} and {chosen_uid})")
            continue
        seen[study.study_date] = chosen_uid
        if scan is None:
            problems.append(f"scan {day}: {problem}")
            continue
        scans.append(scan)
    if not scans and not problems:
        problems.append("no scans")
    return scans, problems


def _job(session: Session, patient: Patient, scans: Sequence[ScanInput], settings: Settings) -> PatientJob:
    from hepavol.study.review import current_override, lesion_links

    parameters = settings.run_parameters()
    targets = current_override(session, patient.id, "targets")
    if targets is not None:  # chosen by a reviewer (hepavol study review --targets)
        parameters["targets"] = list(targets)
    marks = current_override(session, patient.id, "recist-marks")
    if marks is not None:  # the reader's calls (hepavol study review --non-target / --new-lesion)
        parameters["reader_marks"] = marks
    links, stale = lesion_links(
        current_override(session, patient.id, "lesion-links"), {s.date.isoformat(): s.seg_hash for s in scans}
    )
    if links:  # the reader's relinks (hepavol study review --link), on the segmentations they were made on
        parameters["lesion_links"] = links
    if stale:
        parameters["stale_lesion_links"] = stale
    digest = hash_json({"scans": [s.key() for s in scans], "parameters": parameters})
    return PatientJob(
        patient_pk=patient.id,
        pseudonym=patient.pseudonym,
        scans=tuple(scans),
        parameters=parameters,
        input_hash=digest,
    )


def of_read(reader: str | None) -> Any:
    """The SQL condition "an analysis of this read" (``reader`` None: the study's own read, never a reader's)."""
    return Analysis.reader.is_(None) if reader is None else Analysis.reader == reader


def stored_analysis(session: Session, job: PatientJob) -> Analysis | None:
    """The stored analysis of a patient on exactly this job's inputs and read, if any."""
    return session.scalar(
        select(Analysis).where(
            Analysis.patient_id == job.patient_pk, Analysis.input_hash == job.input_hash, of_read(job.reader)
        )
    )


def plan_run(
    ws: Workspace,
    *,
    patients: Sequence[str] | None = None,
    force: bool = False,
    accept_proposed: bool = False,
    readers: bool = True,
) -> tuple[list[PatientJob], RunSummary]:
    """The tasks of a run: eligible patients whose inputs are ready and not yet analysed (on accepted
    segmentations, or also on proposed ones with ``accept_proposed``), then (with ``readers``) each named
    reader's read of them not yet stored (:func:`hepavol.study.readers.reader_job`)."""
    from hepavol.study.readers import named_readers, reader_job

    summary = RunSummary()
    jobs: list[PatientJob] = []
    reader_jobs: list[PatientJob] = []
    summary.readers = named_readers(ws) if readers else []
    with ws.db.transaction() as session:
        decisions = latest_eligibility(session)
        query = select(Patient).order_by(Patient.pseudonym)
        if patients:
            query = query.where(Patient.pseudonym.in_(list(patients)))
            known = set(session.scalars(select(Patient.pseudonym).where(Patient.pseudonym.in_(list(patients)))))
            unknown = sorted(set(patients) - known)
            if unknown:
                raise InputError(f"unknown patient(s) {unknown}: give pseudonyms as 'hepavol study status' lists.")
        for patient in session.scalars(query):
            decision = decisions.get(patient.id)
            if decision is None:
                summary.not_ready.append(
                    (patient.pseudonym, "eligibility not assessed (hepavol study eligibility)")
                )
                continue
            if not decision.eligible:
                continue
            summary.eligible += 1
            for reader in summary.readers:
                reader_plan, _why = reader_job(session, ws.settings, patient, decision, reader)
                if reader_plan is None:  # the reader did not read this patient
                    continue
                if stored_analysis(session, reader_plan) is not None and not force:
                    summary.readers_up_to_date += 1
                    continue
                reader_jobs.append(reader_plan)
            scans, problems = current_inputs(
                session,
                patient,
                decision.baseline_date,
                accept_proposed=accept_proposed,
                mixed_modalities=ws.settings.mixed_modalities,
            )
            if problems:
                summary.not_ready.append((patient.pseudonym, "; ".join(problems)))
                continue
            job = _job(session, patient, scans, ws.settings)
            if stored_analysis(session, job) is not None and not force:
                summary.up_to_date += 1
                continue
            jobs.append(job)
            summary.scans_proposed += sum(1 for s in scans if s.segmentation_state == PROPOSED)
            summary.scans_accepted += sum(1 for s in scans if s.segmentation_state != PROPOSED)
    summary.readers_planned = len(reader_jobs)
    return jobs + reader_jobs, summary


# ---------------------------------------------------------------------------------------------------------------
# The task (runs in a worker process, possibly on another machine: no database access)


def analyse_patient(job: PatientJob) -> dict[str, Any]:
    """Run the follow-up of one patient; a JSON-ready result (measurements, tracks, assessments)."""
    from hepavol.followup.pipeline import Manifest, ManifestRow, run_followup
    from hepavol.study.review import reader_marks

    started = utcnow()
    rows = tuple(
        ManifestRow(date=s.date, image=Path(s.image), seg=Path(s.seg), line=i + 1, series_uid=s.series_uid)
        for i, s in enumerate(job.scans)
    )
    manifest = Manifest(path=Path(f"patient {job.pseudonym}"), patient_id=job.pseudonym, rows=rows)
    p = job.parameters
    result = run_followup(
        manifest,
        liver_label=p["liver_label"],
        tumor_labels=tuple(p["tumor_labels"]),
        affine=p["affine"],
        max_distance_mm=p["max_distance_mm"],
        targets=p.get("targets"),
        reader_marks=reader_marks(p.get("reader_marks")),
        links={dt.date.fromisoformat(d): v for d, v in (p.get("lesion_links") or {}).items()},
    )
    stale = [
        f"{d}: the reader's lesion links were made on an earlier segmentation of this scan and are not applied; "
        f"link its lesions again (hepavol study review {job.pseudonym} --link {d}:LESION=TRACK, or in the app)."
        for d in p.get("stale_lesion_links") or ()
    ]
    track_of: list[dict[str, str]] = [{} for _ in job.scans]
    for track in result.tracking.tracks:
        for t, keys in enumerate(track.keys):
            for key in keys:
                track_of[t][key] = track.lesion_id
    timepoints = [
        {
            "date": tp.date.isoformat(),
            "total_tumor_volume_ml": tp.total_tumor_volume_ml,
            "liver_volume_ml": tp.liver_volume_ml,
            "hepatic_tumor_load_class": tp.hepatic_tumor_load_class,
            "lesion_count": tp.lesion_count,
            "new_lesion_ids": list(tp.new_lesion_ids),
            "sum_of_diameters_mm": tp.sum_of_diameters_mm,
            "target_response": tp.target_response,
            "non_target_response": tp.non_target_response,
            "overall_response": tp.overall_response,
            "volume_change_from_baseline_percent": tp.volume_change_from_baseline_percent,
            "volume_change_from_nadir_percent": tp.volume_change_from_nadir_percent,
            "volumetric_response": tp.volumetric_response,
            "tgr_recist_percent_per_month": tp.tgr_recist_percent_per_month,
            "tgr_volume_percent_per_month": tp.tgr_volume_percent_per_month,
            "liver_dice_after": tp.registration.dice_after,
        }
        for tp in result.timepoints
    ]
    tracks = [
        {
            "lesion_id": lesion.lesion_id,
            "tracking_uid": lesion.tracking_uid,
            "status": lesion.status,
            "target": lesion.target,
            "points": [
                {
                    **point.to_dict(),
                    "fragments": list(point.fragments),
                    "merged_into": point.merged_into,
                }
                for point in lesion.points
            ],
        }
        for lesion in result.lesions
    ]
    return {
        "followup": result.to_dict(),
        "timepoints": timepoints,
        "tracks": tracks,
        "measurements": [scan.measurement.to_dict() for scan in result.scans],
        "track_of": track_of,
        "best_overall_response": result.best_overall_response,
        "progression_date": None if result.progression_date is None else result.progression_date.isoformat(),
        "targets": list(result.targets),
        "warnings": [*stale, *result.warnings],
        "worker": worker_name(),
        "started_at": started.isoformat(),
        "finished_at": utcnow().isoformat(),
    }


def analyse_reader_job(job: PatientJob) -> dict[str, Any]:
    """A named reader's analysis of one patient: :func:`analyse_patient` on the reader's scans, with the reader's
    own target choice when they made one (``reader_targets``: lesion ids of their baseline segmentation, turned
    into the tracks they start; measured again when those differ from the automatic targets)."""
    result = analyse_patient(job)
    own = job.parameters.get("reader_targets")
    if own is not None:
        at_baseline = result["track_of"][0]
        tracked = [at_baseline[t] for t in own if t in at_baseline]
        if tracked != list(result["targets"]):
            result = analyse_patient(dataclasses.replace(job, parameters={**job.parameters, "targets": tracked}))
    return result


def analyse_job(job: PatientJob) -> dict[str, Any]:
    """The task of ``study run``: the study's own read of a patient, or a named reader's (``job.reader``)."""
    return analyse_patient(job) if job.reader is None else analyse_reader_job(job)


# ---------------------------------------------------------------------------------------------------------------
# Storing results (in the calling process, one transaction per patient)


def _lesion_rows(scan_pk: int, lesions: Sequence[dict[str, Any]], track_of: dict[str, str]) -> list[Any]:
    return [
        LesionMeasurement(
            scan_measurement_id=scan_pk,
            lesion_id=les["lesion_id"],
            track_id=track_of.get(les["lesion_id"]),
            label=les["label"],
            volume_ml=les["volume_ml"],
            voxel_count=les["voxel_count"],
            long_axis_mm=les["long_axis_mm"],
            short_axis_mm=les["short_axis_mm"],
            max_diameter_3d_mm=les["max_diameter_3d_mm"],
            slice_index=les["slice_index"],
            long_axis_endpoints_mm=les["long_axis_endpoints_mm"],
            short_axis_endpoints_mm=les["short_axis_endpoints_mm"],
            centroid_mm=les["centroid_mm"],
            mean_hu=les["mean_hu"],
            sd_hu=les["sd_hu"],
            measurable=les["measurable"],
            in_liver=les["in_liver"],
            touches_border=les["touches_border"],
        )
        for les in lesions
    ]


def scan_measurement_hash(scan: ScanInput, parameters: dict[str, Any]) -> str:
    """The input hash of one scan's measurement: its image, segmentation and labels (shared by eligibility
    and run, so that a baseline measured for eligibility is the same measurement as in the run)."""
    labels = {"liver_label": parameters["liver_label"], "tumor_labels": list(parameters["tumor_labels"])}
    return hash_json({"scan": scan.key(), "parameters": labels})


def store_scan_measurement(
    session: Session,
    scan: ScanInput,
    measurement: dict[str, Any],
    *,
    purpose: str,
    input_hash: str,
    parameters: dict[str, Any],
    analysis_pk: int | None = None,
    track_of: dict[str, str] | None = None,
) -> ScanMeasurement:
    """Write one scan's measurement and its lesions (in the caller's transaction)."""
    row = ScanMeasurement(
        analysis_id=analysis_pk,
        study_id=scan.study_pk,
        series_id=scan.series_pk,
        segmentation_id=scan.segmentation_pk,
        purpose=purpose,
        input_hash=input_hash,
        parameters=parameters,
        hepavol_version=__version__,
        liver_volume_ml=measurement["liver_volume_ml"],
        total_tumor_volume_ml=measurement["total_tumor_volume_ml"],
        tumor_burden_percent=measurement["tumor_burden_percent"],
        hepatic_tumor_load_class=measurement["hepatic_tumor_load_class"],
        lesion_count=measurement["lesion_count"],
        warnings=measurement["warnings"],
    )
    session.add(row)
    session.flush()
    session.add_all(_lesion_rows(row.id, measurement["lesions"], track_of or {}))
    return row


def delete_analysis(session: Session, analysis_pk: int) -> None:
    """Remove an analysis and everything that belongs to it (``--force`` replaces it in the same transaction)."""
    track_pks = list(session.scalars(select(Track.id).where(Track.analysis_id == analysis_pk)))
    scan_pks = list(session.scalars(select(ScanMeasurement.id).where(ScanMeasurement.analysis_id == analysis_pk)))
    session.execute(delete(TrackPoint).where(TrackPoint.track_pk.in_(track_pks)))
    session.execute(delete(Track).where(Track.analysis_id == analysis_pk))
    session.execute(delete(LesionMeasurement).where(LesionMeasurement.scan_measurement_id.in_(scan_pks)))
    session.execute(delete(ScanMeasurement).where(ScanMeasurement.analysis_id == analysis_pk))
    session.execute(delete(TimepointAssessment).where(TimepointAssessment.analysis_id == analysis_pk))
    session.execute(delete(Analysis).where(Analysis.id == analysis_pk))


def store_result(session: Session, job: PatientJob, result: dict[str, Any], *, replace: bool = False) -> Analysis:
    """Write one patient's analysis (in the caller's transaction; a unique constraint rejects a duplicate)."""
    if replace:
        old = stored_analysis(session, job)
        if old is not None:
            delete_analysis(session, old.id)
            session.flush()
    followup = result["followup"]
    analysis = Analysis(
        patient_id=job.patient_pk,
        reader=job.reader,
        input_hash=job.input_hash,
        inputs=[s.provenance() for s in job.scans],
        parameters=job.parameters,
        hepavol_version=__version__,
        worker=result["worker"],
        started_at=dt.datetime.fromisoformat(result["started_at"]),
        finished_at=dt.datetime.fromisoformat(result["finished_at"]),
        targets=result["targets"],
        best_overall_response=result["best_overall_response"],
        progression_date=None
        if result["progression_date"] is None
        else dt.date.fromisoformat(result["progression_date"]),
        warnings=result["warnings"],
        result=followup,
    )
    session.add(analysis)
    session.flush()
    study_of = {s.date.isoformat(): s.study_pk for s in job.scans}
    for scan, measurement, track_of in zip(job.scans, result["measurements"], result["track_of"]):
        store_scan_measurement(
            session,
            scan,
            measurement,
            purpose="run",
            input_hash=scan_measurement_hash(scan, job.parameters),
            parameters=job.parameters,
            analysis_pk=analysis.id,
            track_of=track_of,
        )
    for lesion in result["tracks"]:
        track = Track(
            analysis_id=analysis.id,
            track_id=lesion["lesion_id"],
            tracking_uid=lesion["tracking_uid"],
            status=lesion["status"],
            target=lesion["target"],
        )
        session.add(track)
        session.flush()
        for point in lesion["points"]:
            session.add(
                TrackPoint(
                    track_pk=track.id,
                    study_id=study_of[point["date"]],
                    study_date=dt.date.fromisoformat(point["date"]),
                    volume_ml=point["volume_ml"],
                    long_axis_mm=point["long_axis_mm"],
                    short_axis_mm=point["short_axis_mm"],
                    centroid_mm=point["centroid_mm"],
                    fragments=point["fragments"],
                    merged_into=point["merged_into"],
                )
            )
    for tp in result["timepoints"]:
        session.add(
            TimepointAssessment(
                analysis_id=analysis.id,
                study_id=study_of[tp["date"]],
                study_date=dt.date.fromisoformat(tp["date"]),
                total_tumor_volume_ml=tp["total_tumor_volume_ml"],
                liver_volume_ml=tp["liver_volume_ml"],
                hepatic_tumor_load_class=tp["hepatic_tumor_load_class"],
                lesion_count=tp["lesion_count"],
                new_lesion_count=len(tp["new_lesion_ids"]),
                sum_of_diameters_mm=tp["sum_of_diameters_mm"],
                target_response=tp["target_response"],
                non_target_response=tp["non_target_response"],
                overall_response=tp["overall_response"],
                volume_change_from_baseline_percent=tp["volume_change_from_baseline_percent"],
                volume_change_from_nadir_percent=tp["volume_change_from_nadir_percent"],
                volumetric_response=tp["volumetric_response"],
                tgr_recist_percent_per_month=tp["tgr_recist_percent_per_month"],
                tgr_volume_percent_per_month=tp["tgr_volume_percent_per_month"],
                registration_liver_dice=tp["liver_dice_after"],
            )
        )
    audit.record(
        session,
        "run",
        entity="patient",
        key=job.pseudonym,
        details={
            "analysis": analysis.id,
            "input_hash": job.input_hash,
            "scans": len(job.scans),
            "proposed_segmentations": sum(1 for s in job.scans if s.segmentation_state == PROPOSED),
            "best_overall_response": analysis.best_overall_response,
            "worker": analysis.worker,
            **({} if job.reader is None else {"reader": job.reader}),
        },
    )
    return analysis


def error_text(exc: BaseException) -> str:
    """A one-line error for the database and the report (a traceback for unexpected errors)."""
    if isinstance(exc, HepavolError):
        return str(exc)
    lines = traceback.format_exception_only(type(exc), exc)
    return "internal error: " + "".join(lines).strip()


@contextmanager
def _signals_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that a terminated run releases its leases (SIGKILL cannot be caught)."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_study(
    ws: Workspace,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    patients: Sequence[str] | None = None,
    force: bool = False,
    accept_proposed: bool = False,
    readers: bool = True,
    progress: Callable[[int, int], None] | None = None,
    task: Callable[[PatientJob], dict[str, Any]] = analyse_job,
) -> RunSummary:
    """Analyse every eligible patient that needs it (see the module docstring), on accepted segmentations, or
    also on the proposals of ``study segment`` with ``accept_proposed``; and (``readers``) each named reader's
    read of them.

    ``progress(done, total)`` is called after each task (a patient's read). ``task`` is the function run per task
    (tests replace it to inject failures).
    """
    jobs, summary = plan_run(ws, patients=patients, force=force, accept_proposed=accept_proposed, readers=readers)
    leases = Leases(ws.db)

    def redactor(job: PatientJob) -> PathRedactor:
        scans = [(s.date.isoformat(), s.image, s.seg) for s in job.scans]
        return PathRedactor(scan_labels(job.pseudonym, scans), workspace=ws.root)

    total = len(jobs)
    done_count = 0

    def advance() -> None:
        nonlocal done_count
        done_count += 1
        if progress is not None:
            progress(done_count, total)

    def claim(job: PatientJob) -> bool:
        holder = leases.claim(job.patient_pk)
        if holder is not None:
            summary.elsewhere += 1
            advance()
            return False
        with ws.db.transaction() as session:  # another run may have finished it since we planned
            stored = stored_analysis(session, job)
        if stored is not None and not force:
            leases.release(job.patient_pk)
            summary.elsewhere += 1
            advance()
            return False
        return True

    def on_done(job: PatientJob, result: dict[str, Any]) -> None:
        try:
            with ws.db.transaction() as session:
                store_result(session, job, result, replace=force)
            if job.reader is None:
                summary.computed += 1
            else:
                summary.readers_computed += 1
        except IntegrityError:
            summary.elsewhere += 1  # another run stored the same analysis first
        finally:
            leases.release(job.patient_pk)
            advance()

    def on_error(job: PatientJob, exc: BaseException) -> None:
        message = redactor(job).text(error_text(exc))
        whose = {} if job.reader is None else {"reader": job.reader}
        with ws.db.transaction() as session:
            session.add(RunFailure(patient_id=job.patient_pk, input_hash=job.input_hash, error=message))
            audit.record(
                session, "run-failed", entity="patient", key=job.pseudonym, details={"error": message, **whose}
            )
        summary.failed.append((job.label, message))
        leases.release(job.patient_pk)
        advance()

    with ws.db.transaction() as session:
        audit.record(
            session,
            "run-start",
            details={
                "patients": total - summary.readers_planned,
                "workers": workers,
                "scheduler": scheduler,
                "force": force,
                "accept_proposed": accept_proposed,
                "scans_accepted": summary.scans_accepted,
                "scans_proposed": summary.scans_proposed,
                "reader_analyses": summary.readers_planned,
            },
        )
    try:
        with _signals_as_exit(), open_executor(workers=workers, scheduler=scheduler) as (executor, slots):
            run_tasks(
                executor,
                slots,
                jobs,
                task,
                claim=claim,
                on_done=on_done,
                on_error=on_error,
                on_idle=lambda inflight: leases.renew(j.patient_pk for j in inflight),
            )
    except (KeyboardInterrupt, SystemExit):
        summary.interrupted = True
        raise
    except BaseException as exc:  # the run itself failed (full disk, lost database...): recorded as failed
        summary.error = PathRedactor({}, workspace=ws.root).text(error_text(exc))
        raise
    finally:
        details: dict[str, Any] = {
            "computed": summary.computed,
            "reader_analyses_computed": summary.readers_computed,
            "failed": len(summary.failed),
            "interrupted": summary.interrupted,
        }
        details["outcome"] = "failed" if summary.error else "interrupted" if summary.interrupted else "completed"
        if summary.error is not None:
            details["error"] = summary.error
        try:
            leases.release_all()
            with ws.db.transaction() as session:
                audit.record(session, "run-end", details=details)
        except HepavolError:
            if summary.error is None:
                raise  # the run went well but its end cannot be recorded: say so
            # the database is what failed: the original error is the one to report
    return summary
