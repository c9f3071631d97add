"""What one reader's reads imply: per scan totals, per patient early changes, RECIST and volumetric responses.

Computed from a single reader's :class:`~hepavol.agreement.reads.ReaderReads`, never from a mix of readers:

- per scan: ``total_tumor_volume_ml`` = the sum of the volumes of every lesion on the scan (new lesions
  included, as ``hepavol follow-up``); ``sum_of_diameters_mm`` = the sum of the long axes of the patient's target
  lesions (``target = yes`` at baseline; every baseline lesion when the reads do not mark targets), ``None`` when
  a target has no row or no long axis on that scan (RECIST: not evaluated); a scan read with no lesion found
  (a row without ``lesion_id``) has every baseline lesion disappeared (diameters 0, non-targets absent);
- per patient: baseline = the reader's earliest scan of the patient; early scan = the first scan dated
  ``early_window_days`` (default the study's 91-183 days, :data:`hepavol.study.eligibility.EARLY_WINDOW_DAYS`)
  after it; ``volume_change_percent`` and ``sld_change_percent`` = 100·(early/baseline − 1);
- RECIST 1.1 per time point (:func:`hepavol.response.recist.assess_patient`): targets as above (long axis as the
  diameter, organ liver); every other baseline lesion a non-target (``absent`` at volume 0, else ``present``;
  without a row on a scan: not evaluated); a lesion first seen after baseline with volume > 0 an unequivocal new
  lesion. A lesion that this reader missed at baseline and found later is therefore a new lesion, as it would be
  in the reader's own report;
- volumetric response per time point (:func:`hepavol.response.volumetric.assess_volumes`, −65 %/+73 %) of the
  total tumour volume, PD with unequivocal new lesions; the volumetric progression date is the first PD.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from hepavol.agreement.reads import LesionRead, ReaderReads
from hepavol.response.recist import (
    Assessment,
    NewLesion,
    NonTargetLesion,
    NonTargetStatus,
    PatientAssessment,
    RecistDataError,
    TargetLesion,
    assess_patient,
)
from hepavol.response.volumetric import VolumePoint, VolumetricTimepoint, assess_volumes
from hepavol.study.eligibility import EARLY_WINDOW_DAYS

__all__ = ["PatientSummary", "ReaderSummary", "ScanSummary", "summarise_reader"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSummary:
    """One reader's totals for one scan."""

    patient_id: str
    date: dt.date
    lesion_count: int
    total_tumor_volume_ml: float
    sum_of_diameters_mm: float | None
    new_lesions: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientSummary:
    """One reader's per-patient values (``None`` = not defined; ``recist_error`` when RECIST refused the data)."""

    patient_id: str
    baseline_date: dt.date
    early_date: dt.date | None
    target_ids: tuple[str, ...]
    volume_change_percent: float | None
    sld_change_percent: float | None
    recist: PatientAssessment | None
    recist_error: str | None
    volumetric: tuple[VolumetricTimepoint, ...]
    recist_progression_date: dt.date | None
    volumetric_progression_date: dt.date | None

    def recist_response(self) -> dict[dt.date, str]:
        """Overall RECIST 1.1 response per follow-up date."""
        if self.recist is None:
            return {}
        return {tp.date: tp.overall_response.value for tp in self.recist.timepoints}

    def volumetric_response(self) -> dict[dt.date, str]:
        """Volumetric response per follow-up date."""
        return {tp.date: tp.response.value for tp in self.volumetric}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderSummary:
    """Per-scan and per-patient summaries of one reader, and the warnings met on the way."""

    reader: str
    scans: dict[tuple[str, dt.date], ScanSummary]
    patients: dict[str, PatientSummary]
    warnings: tuple[str, ...]


def _change(baseline: float | None, early: float | None) -> float | None:
    if baseline is None or early is None or baseline <= 0:
        return None
    return 100.0 * (early / baseline - 1.0)


def _targets(reads: ReaderReads, baseline: Sequence[LesionRead]) -> tuple[str, ...]:
    if reads.targets_marked:
        return tuple(r.lesion_id for r in baseline if r.target)
    return tuple(r.lesion_id for r in baseline)


def _sld(lesions: Sequence[LesionRead], targets: Sequence[str]) -> float | None:
    if not targets:
        return None
    if not lesions:  # read, no lesion found: every target has disappeared
        return 0.0
    by_id = {r.lesion_id: r for r in lesions}
    total = 0.0
    for t in targets:
        r = by_id.get(t)
        if r is None or r.long_axis_mm is None:
            return None
        total += r.long_axis_mm
    return total


def summarise_reader(
    reads: ReaderReads, *, early_window_days: tuple[int, int] = EARLY_WINDOW_DAYS
) -> ReaderSummary:
    """Per-scan totals, per-patient early changes and responses of one reader (module docstring)."""
    lo, hi = early_window_days
    warnings: list[str] = []
    scans: dict[tuple[str, dt.date], ScanSummary] = {}
    patients: dict[str, PatientSummary] = {}
    who = reads.reader
    for patient in reads.patients():
        dates = reads.dates(patient)
        baseline_date = dates[0]
        baseline = reads.scans[(patient, baseline_date)]
        baseline_ids = {r.lesion_id for r in baseline}
        targets = _targets(reads, baseline)
        if reads.targets_marked and not targets and baseline:
            warnings.append(
                f"reader {who}: patient {patient} has no target lesion at baseline ({baseline_date}); "
                "no sum of diameters"
            )
        assessments: list[Assessment] = []
        points: list[VolumePoint] = []
        for date in dates:
            lesions = reads.scans[(patient, date)]
            new = any(r.lesion_id not in baseline_ids and r.volume_ml > 0 for r in lesions)
            total = sum(r.volume_ml for r in lesions)
            scans[(patient, date)] = ScanSummary(
                patient_id=patient,
                date=date,
                lesion_count=sum(1 for r in lesions if r.volume_ml > 0),
                total_tumor_volume_ml=total,
                sum_of_diameters_mm=_sld(lesions, targets),
                new_lesions=new,
            )
            points.append(VolumePoint(date=date, volume_ml=total, new_lesions=new))
            by_id = {r.lesion_id: r for r in lesions}
            if not lesions:  # read, no lesion found: every baseline lesion has disappeared
                by_id = {i: LesionRead(patient_id=patient, date=date, reader=who, lesion_id=i, volume_ml=0.0,
                                       long_axis_mm=0.0) for i in baseline_ids}  # fmt: skip
            tl = tuple(
                TargetLesion(lesion_id=t, organ="liver", diameter_mm=by_id[t].long_axis_mm if t in by_id else None)
                for t in targets
            )
            nt = tuple(
                NonTargetLesion(
                    lesion_id=r.lesion_id,
                    organ="liver",
                    status=NonTargetStatus.ABSENT if r.volume_ml == 0 else NonTargetStatus.PRESENT,
                )
                for r in by_id.values()
                if r.lesion_id in baseline_ids and r.lesion_id not in targets
            )
            nl = tuple(
                NewLesion(lesion_id=r.lesion_id, organ="liver")
                for r in lesions
                if r.lesion_id not in baseline_ids and r.volume_ml > 0
            )
            assessments.append(Assessment(date=date, targets=tl, non_targets=nt, new_lesions=nl))
        recist: PatientAssessment | None = None
        recist_error: str | None = None
        if len(dates) > 1:
            try:
                recist = assess_patient(assessments, patient_id=patient)
            except RecistDataError as exc:
                recist_error = str(exc)
                warnings.append(f"reader {who}: RECIST not assessed for patient {patient}: {exc}")
            if recist is not None:
                warnings += [f"reader {who}, patient {patient}: {w}" for w in recist.warnings]
        volumetric = assess_volumes(points) if len(dates) > 1 else ()
        early = next((d for d in dates if lo <= (d - baseline_date).days <= hi), None)
        base_scan = scans[(patient, baseline_date)]
        early_scan = scans[(patient, early)] if early is not None else None
        patients[patient] = PatientSummary(
            patient_id=patient,
            baseline_date=baseline_date,
            early_date=early,
            target_ids=targets,
            volume_change_percent=_change(
                base_scan.total_tumor_volume_ml, None if early_scan is None else early_scan.total_tumor_volume_ml
            ),
            sld_change_percent=_change(
                base_scan.sum_of_diameters_mm, None if early_scan is None else early_scan.sum_of_diameters_mm
            ),
            recist=recist,
            recist_error=recist_error,
            volumetric=volumetric,
            recist_progression_date=None if recist is None else recist.progression_date,
            volumetric_progression_date=next((tp.date for tp in volumetric if tp.response.value == "PD"), None),
        )
    return ReaderSummary(reader=who, scans=scans, patients=patients, warnings=tuple(warnings))
