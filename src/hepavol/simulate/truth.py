"""Ground truth of a virtual patient: true lesion sizes per scan, the true RECIST 1.1 assessment and true PFS.

True values come from the analytic shapes (never from the voxelised masks):

- volume ``4/3·π·a·b·c`` of each ellipsoid, its semi-axes and its largest 3D diameter ``2·max(a, b, c)``;
- RECIST long and short axes: those of the central axial section in the scanner frame (see
  :mod:`hepavol.simulate.lesions`), rounded to 0.1 mm for the RECIST engine;
- the true RECIST assessment is :func:`hepavol.response.recist.assess_patient` on these measurements with:
  targets = the two largest liver lesions with a long axis ≥ 10 mm at baseline (at most 2 per organ,
  SCIENCE.md §1.1-1.2); non-targets = every other baseline lesion; new lesions = lesions whose onset is after
  baseline, unequivocal from their first scan; a non-target is in unequivocal progression when the total volume
  of the non-target lesions has grown by at least 72.8 % over its smallest value so far (the volume
  equivalent of +20 % in diameter, EORTC FAQ, SCIENCE.md §1.4 and §3.1) and by at least 1 mL (*design choice*,
  so that a few tiny lesions do not trigger PD);
- true PFS per RECIST: days from baseline to the first scan with overall PD (event) or to the last scan (censored).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from hepavol.response.recist import (
    Assessment,
    NewLesion,
    NonTargetLesion,
    NonTargetStatus,
    PatientAssessment,
    TargetLesion,
    assess_patient,
)
from hepavol.simulate.lesions import LesionSpec
from hepavol.simulate.schedule import ScanEvent

#: Volume ratio of unequivocal non-target progression: 1.2³ (SCIENCE.md §1.4, §3.1).
NON_TARGET_PD_RATIO = Fraction(216, 125)
#: Minimum absolute increase of the non-target volume for unequivocal progression, mL (design choice).
NON_TARGET_PD_MIN_ML = 1.0
#: Minimum baseline long axis of a target lesion, mm (SCIENCE.md §1.1, slices ≤ 5 mm).
MEASURABLE_MM = 10.0
MAX_TARGETS_PER_ORGAN = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionTruth:
    """True size of one lesion at one scan (scanner frame of that scan, LPS mm)."""

    lesion_id: int
    present: bool
    new: bool
    role: str
    true_volume_ml: float
    semi_axes_mm: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float
    max_diameter_3d_mm: float
    centre_lps_mm: tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanTruth:
    """True state of the liver at one scan and the true RECIST time-point response (None at baseline)."""

    index: int
    day: int
    date: datetime.date
    lesions: tuple[LesionTruth, ...]
    total_tumour_volume_ml: float
    sum_of_diameters_mm: float | None
    target_response: str | None = None
    non_target_response: str | None = None
    new_lesions: str | None = None
    overall_response: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientTruth:
    """True RECIST assessment and PFS of one patient."""

    target_ids: tuple[int, ...]
    non_target_ids: tuple[int, ...]
    scans: tuple[ScanTruth, ...]
    best_overall_response: str
    progression_date: datetime.date | None
    pfs_days: int
    pfs_event: bool
    recist_warnings: tuple[str, ...] = field(default=())


def lesion_truth(spec: LesionSpec, scan: ScanEvent, role: str) -> LesionTruth:
    """True size and position of a lesion at a scan (analytic)."""
    rot = scan.pose.matrix
    semi = spec.semi_axes_mm(scan.day)
    long_mm, short_mm = spec.axial_axes_mm(scan.day, rot)
    centre = scan.pose.to_scanner(np.array(spec.centre_mm))
    return LesionTruth(
        lesion_id=spec.lesion_id,
        present=spec.present(scan.day),
        new=spec.is_new,
        role=role,
        true_volume_ml=spec.volume_ml(scan.day),
        semi_axes_mm=(float(semi[0]), float(semi[1]), float(semi[2])),
        long_axis_mm=long_mm,
        short_axis_mm=short_mm,
        max_diameter_3d_mm=2.0 * float(semi.max()),
        centre_lps_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
    )


def select_targets(lesions: Sequence[LesionSpec], baseline: ScanEvent) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Target and non-target lesion ids at baseline: the 2 largest measurable liver lesions are targets."""
    present = [s for s in lesions if s.present(baseline.day)]
    sized = sorted(present, key=lambda s: -s.axial_axes_mm(baseline.day, baseline.pose.matrix)[0])
    measurable = [s for s in sized if s.axial_axes_mm(baseline.day, baseline.pose.matrix)[0] >= MEASURABLE_MM]
    targets = tuple(s.lesion_id for s in measurable[:MAX_TARGETS_PER_ORGAN])
    non_targets = tuple(s.lesion_id for s in present if s.lesion_id not in targets)
    return targets, non_targets


def _diameter(value_mm: float) -> str:
    return f"{value_mm:.1f}"


def assess_truth(lesions: Sequence[LesionSpec], scans: Sequence[ScanEvent], patient_id: str) -> PatientTruth:
    """The true RECIST 1.1 assessment and PFS over ``scans`` (the first is the baseline)."""
    baseline = scans[0]
    targets, non_targets = select_targets(lesions, baseline)
    by_id = {s.lesion_id: s for s in lesions}
    roles = {i: "target" for i in targets} | {i: "non-target" for i in non_targets}
    assessments: list[Assessment] = []
    scan_truths: list[list[LesionTruth]] = []
    nt_nadir: float | None = None
    for scan in scans:
        truths = [lesion_truth(s, scan, roles.get(s.lesion_id, "new")) for s in lesions if s.present(scan.day)]
        scan_truths.append(truths)
        tl = tuple(
            TargetLesion(
                lesion_id=f"L{i}",
                organ="liver",
                diameter_mm=_diameter(by_id[i].axial_axes_mm(scan.day, scan.pose.matrix)[0]),
            )
            for i in targets
        )
        nt_volume = sum(by_id[i].volume_ml(scan.day) for i in non_targets)
        status = NonTargetStatus.PRESENT
        if nt_nadir is not None and (
            Fraction(nt_volume) >= NON_TARGET_PD_RATIO * Fraction(nt_nadir)
            and nt_volume - nt_nadir >= NON_TARGET_PD_MIN_ML
        ):
            status = NonTargetStatus.PROGRESSION
        nt_nadir = nt_volume if nt_nadir is None else min(nt_nadir, nt_volume)
        ntl = (
            (NonTargetLesion(lesion_id="liver-non-targets", organ="liver", status=status),) if non_targets else ()
        )
        new = tuple(
            NewLesion(lesion_id=f"L{s.lesion_id}", organ="liver")
            for s in lesions
            if s.is_new and s.present(scan.day)
        )
        assessments.append(Assessment(date=scan.date, targets=tl, non_targets=ntl, new_lesions=new))
    result: PatientAssessment = assess_patient(assessments, patient_id=patient_id)
    by_date = {tp.date: tp for tp in result.timepoints}
    out_scans = []
    for scan, truths in zip(scans, scan_truths):
        tp = by_date.get(scan.date)
        sod = (
            sum(round(by_id[i].axial_axes_mm(scan.day, scan.pose.matrix)[0], 1) for i in targets)
            if targets
            else None
        )
        out_scans.append(
            ScanTruth(
                index=scan.index,
                day=scan.day,
                date=scan.date,
                lesions=tuple(truths),
                total_tumour_volume_ml=float(sum(t.true_volume_ml for t in truths)),
                sum_of_diameters_mm=None if sod is None else round(sod, 1),
                target_response=None if tp is None else tp.target_response.value,
                non_target_response=None if tp is None else tp.non_target_response.value,
                new_lesions=None if tp is None else tp.new_lesions.value,
                overall_response=None if tp is None else tp.overall_response.value,
            )
        )
    if result.progression_date is not None:
        pfs_days, event = (result.progression_date - baseline.date).days, True
    else:
        pfs_days, event = scans[-1].day, False
    return PatientTruth(
        target_ids=targets,
        non_target_ids=non_targets,
        scans=tuple(out_scans),
        best_overall_response=result.best_overall_response.value,
        progression_date=result.progression_date,
        pfs_days=pfs_days,
        pfs_event=event,
        recist_warnings=tuple(result.warnings),
    )
