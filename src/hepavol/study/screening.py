"""``hepavol study eligibility``: measure each baseline, apply NCT03689231's criteria, store the decisions.

1. Each patient's baseline scan (first CT or MR scan) is measured with ``measure_scan`` unless a measurement of
   the same image, segmentation and labels is stored already (from an earlier eligibility check or run).
   Measurements run in a process pool (``--workers``) and are stored as they arrive, one transaction each.
2. :func:`hepavol.study.eligibility.assess_eligibility` decides, from the stored clinical record, every scan's
   date and modality, and the baseline lesions' long axes (slice thickness from the series when known).
3. A decision is stored (with an audit entry) when it differs from the patient's current one; earlier decisions
   stay in the table as history. The flow table counts every patient of the study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hepavol._version import __version__
from hepavol.study import audit
from hepavol.study.clinical_import import load_clinical_record
from hepavol.study.eligibility import (
    EligibilityDecision,
    FlowRow,
    LesionSummary,
    ScanSummary,
    assess_eligibility,
    flow_table,
    format_flow_table,
)
from hepavol.study.execution import open_executor, run_tasks
from hepavol.study.models import EligibilityDecision as DecisionRow
from hepavol.study.models import ImagingStudy, LesionMeasurement, Patient, ScanMeasurement
from hepavol.study.review import latest_review, with_override
from hepavol.study.runner import (
    ScanInput,
    error_text,
    latest_eligibility,
    scan_input,
    scan_measurement_hash,
    scan_modality,
    store_scan_measurement,
)
from hepavol.study.workspace import Workspace

__all__ = ["EligibilityRun", "MeasureTask", "measure_task", "run_eligibility"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasureTask:
    """Measure one scan (runs in a worker process; no database access)."""

    patient_pk: int
    scan: ScanInput
    parameters: dict[str, Any]
    input_hash: str


def measure_task(task: MeasureTask) -> dict[str, Any]:
    """``hepavol measure`` of one scan as a JSON-ready mapping."""
    from hepavol.io import read_image, read_segmentation
    from hepavol.measurement import measure_scan

    image = read_image(Path(task.scan.image), series_uid=task.scan.series_uid)
    seg = read_segmentation(Path(task.scan.seg), reference=image.geometry)
    result = measure_scan(
        seg,
        image,
        liver_label=task.parameters["liver_label"],
        tumor_labels=tuple(task.parameters["tumor_labels"]),
    )
    return result.to_dict()


@dataclass(slots=True)
class EligibilityRun:
    """The decisions (pseudonym, decision), the flow table and what happened."""

    decisions: list[tuple[str, EligibilityDecision]] = field(default_factory=list)
    flow: list[FlowRow] = field(default_factory=list)
    measured: int = 0
    changed: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def flow_text(self) -> str:
        return format_flow_table(self.flow, title="NCT03689231 eligibility")

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": [
                {
                    "step": r.step,
                    "label": r.label,
                    "code": r.code,
                    "patients": r.patients,
                    "patients_any_reason": r.patients_any_reason,
                }
                for r in self.flow
            ],
            "patients": [
                {
                    "patient_id": pseudonym,
                    "eligible": d.eligible,
                    "reasons": [{"code": r.code, "text": r.text} for r in d.reasons],
                    "baseline_date": None if d.baseline_date is None else d.baseline_date.isoformat(),
                    "early_date": None if d.early_date is None else d.early_date.isoformat(),
                    "small_lesion_ids": list(d.small_lesion_ids),
                    "warnings": list(d.warnings),
                }
                for pseudonym, d in self.decisions
            ],
        }


def _baseline_input(patient: Patient) -> tuple[ImagingStudy | None, ScanInput | None]:
    """The baseline study (first CT or MR) and, when it has a chosen series with a segmentation, its input (a
    proposal of ``study segment`` too: eligibility is screened on it, ``study run`` waits for its acceptance
    unless run with ``--accept-proposed``)."""
    studies = [s for s in patient.studies if (s.modality or "").upper() in ("CT", "MR")]
    if not studies:
        return None, None
    study = min(studies, key=lambda s: s.study_date)
    return study, scan_input(study, accept_proposed=True)[0]


def _decision_key(d: EligibilityDecision, eligible: bool, reasons: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "eligible": eligible,
        "reasons": [[r["code"], r["text"]] for r in reasons],
        "baseline_date": d.baseline_date,
        "early_date": d.early_date,
        "small": [str(i) for i in d.small_lesion_ids],
        "warnings": list(d.warnings),
    }


def _stored_key(row: DecisionRow) -> dict[str, Any]:
    return {
        "eligible": row.eligible,
        "reasons": [[r["code"], r["text"]] for r in row.reasons],
        "baseline_date": row.baseline_date,
        "early_date": row.early_date,
        "small": [str(i) for i in row.small_lesions],
        "warnings": list(row.warnings or []),
    }


def _measure_baselines(ws: Workspace, tasks: Sequence[MeasureTask], workers: int, run: EligibilityRun) -> None:
    def on_done(task: MeasureTask, result: dict[str, Any]) -> None:
        with ws.db.transaction() as session:
            store_scan_measurement(
                session,
                task.scan,
                result,
                purpose="eligibility",
                input_hash=task.input_hash,
                parameters=task.parameters,
            )
        run.measured += 1

    def on_error(task: MeasureTask, exc: BaseException) -> None:
        run.warnings.append(f"baseline {task.scan.date.isoformat()} could not be measured: {error_text(exc)}")

    with open_executor(workers=workers, scheduler=None) as (executor, slots):
        run_tasks(executor, slots, tasks, measure_task, claim=lambda _t: True, on_done=on_done, on_error=on_error)


def run_eligibility(ws: Workspace, *, workers: int = 1) -> EligibilityRun:
    """Measure baselines as needed, decide every patient's eligibility, store changed decisions."""
    run = EligibilityRun()
    parameters = ws.settings.measurement_parameters()
    tasks: list[MeasureTask] = []
    with ws.db.transaction() as session:
        for patient in session.scalars(select(Patient).order_by(Patient.pseudonym)):
            _study, scan = _baseline_input(patient)
            if scan is None:
                continue
            digest = scan_measurement_hash(scan, parameters)
            cached = session.scalar(
                select(ScanMeasurement.id).where(
                    ScanMeasurement.study_id == scan.study_pk, ScanMeasurement.input_hash == digest
                )
            )
            if cached is None:
                tasks.append(
                    MeasureTask(patient_pk=patient.id, scan=scan, parameters=parameters, input_hash=digest)
                )
    if tasks:
        _measure_baselines(ws, tasks, workers, run)

    decisions: list[EligibilityDecision] = []
    with ws.db.transaction() as session:
        current = latest_eligibility(session)
        for patient in session.scalars(select(Patient).order_by(Patient.pseudonym)):
            study, scan = _baseline_input(patient)
            summaries: list[ScanSummary] = []
            for s in patient.studies:
                chosen = [x for x in s.series if x.chosen]
                modality = scan_modality(s)
                thickness = chosen[0].slice_thickness_mm if chosen else None
                lesions: tuple[LesionSummary, ...] | None = None
                if study is not None and s.id == study.id and scan is not None:
                    measurement = session.scalar(
                        select(ScanMeasurement)
                        .where(
                            ScanMeasurement.study_id == s.id,
                            ScanMeasurement.input_hash == scan_measurement_hash(scan, parameters),
                        )
                        .order_by(ScanMeasurement.id.desc())
                    )
                    if measurement is not None:
                        rows = session.scalars(
                            select(LesionMeasurement).where(
                                LesionMeasurement.scan_measurement_id == measurement.id
                            )
                        )
                        lesions = tuple(
                            LesionSummary(
                                lesion_id=les.lesion_id,
                                long_axis_mm=les.long_axis_mm,
                                in_liver=les.in_liver is not False,
                            )
                            for les in rows
                        )
                summaries.append(
                    ScanSummary(
                        date=s.study_date, modality=modality, lesions=lesions, slice_thickness_mm=thickness
                    )
                )
            decision = assess_eligibility(
                load_clinical_record(session, patient.id), summaries, mixed_modalities=ws.settings.mixed_modalities
            )
            decisions.append(decision)
            run.decisions.append((patient.pseudonym, decision))
            review = latest_review(session, patient.id, "eligibility")
            eligible, reasons = with_override(
                [{"code": r.code, "text": r.text} for r in decision.reasons],
                None if review is None else review.new_value,
                None if review is None else review.reason,
            )
            stored = current.get(patient.id)
            if stored is not None and _stored_key(stored) == _decision_key(decision, eligible, reasons):
                continue
            session.add(
                DecisionRow(
                    patient_id=patient.id,
                    eligible=eligible,
                    reasons=reasons,
                    baseline_date=decision.baseline_date,
                    early_date=decision.early_date,
                    small_lesions=[str(i) for i in decision.small_lesion_ids],
                    warnings=list(decision.warnings),
                    criteria_version=decision.criteria_version,
                    hepavol_version=__version__,
                )
            )
            run.changed += 1
            audit.record(
                session,
                "eligibility",
                entity="patient",
                key=patient.pseudonym,
                details={
                    "eligible": eligible,
                    "reasons": [r["code"] for r in reasons],
                    "previous": None if stored is None else stored.eligible,
                },
            )
    run.flow = flow_table(decisions)
    return run
