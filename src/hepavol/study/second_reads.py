"""Blinded second reads beside the study's read: where two readers' masks disagree, per scan.

For every scan where a blinded reader saved a version (:mod:`hepavol.study.mask_versions`), the head of their
chain is compared with the study's active segmentation on the same image grid: total tumour volume of each
(mL), the relative difference, the Dice of the two tumour masks, and the lesion counts (26-connected components).
Reader agreement statistics over a cohort (ICC, Bland-Altman) are ``hepavol agreement``'s job; this is the
per-patient view a reader looks at.

A blinded reader also chooses **their own RECIST targets** on their own baseline segmentation
(:func:`record_second_read_targets`; lesion ids as :func:`hepavol.measurement.measure_scan` numbers that
segmentation's lesions, L1 = the largest). They are a ``second-read-targets`` review decision stored under the
reader's name, which ``study run``, the study's targets and the worklist's "reviewed" never read; without a
choice, the reader's targets are the run's automatic rule applied to their segmentation (the 2 largest measurable
liver lesions). :func:`second_read_targets` gives them with their baseline sum of diameters and, for each, the
lesion of the study's baseline it overlaps most, to show afterwards where the two reads chose differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from hepavol.errors import InputError
from hepavol.study.models import ImagingStudy, Patient, ReviewDecision
from hepavol.study.workspace import Workspace

__all__ = [
    "SECOND_READ_TARGETS",
    "SecondRead",
    "SecondReadTargets",
    "record_second_read_targets",
    "second_read_readers",
    "second_read_targets",
    "second_reads",
]

#: The review field of a blinded reader's own targets (never the study's ``targets``).
SECOND_READ_TARGETS = "second-read-targets"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecondRead:
    """One scan read by the study and by one blinded reader."""

    date: str
    study_pk: int
    reader: str
    study_read_by: str | None  # who made the study's version (None: imported)
    study_tumor_volume_ml: float
    second_tumor_volume_ml: float
    volume_difference_percent: float | None  # (second - study) / study
    tumor_dice: float | None  # None when both masks are empty
    study_lesions: int
    second_lesions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def second_reads(ws: Workspace, pseudonym: str) -> list[SecondRead]:
    """Every (scan, blinded reader) pair of a patient, scans in date order."""
    from hepavol.io import read_image, read_segmentation
    from hepavol.measurement import connected_components
    from hepavol.study.mask_versions import current_version

    parameters = ws.settings.run_parameters()
    tumor_labels = np.asarray([int(v) for v in parameters["tumor_labels"]])
    pairs: list[tuple[str, int, str, str | None, str, str | None, str, str]] = []
    with ws.db.transaction() as session:
        patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
        if patient is None:
            raise InputError(f"no patient '{pseudonym}' in this study.")
        studies = session.scalars(
            select(ImagingStudy).where(ImagingStudy.patient_id == patient.id).order_by(ImagingStudy.study_date)
        )
        for study in studies:
            chosen = next((s for s in study.series if s.chosen), None)
            if chosen is None:
                continue
            primary = current_version(chosen)
            readers = sorted({g.read_by for g in chosen.segmentations if g.read_by})
            for reader in readers:
                second = current_version(chosen, reader)
                if primary is None or second is None:
                    continue
                uid = chosen.series_uid if chosen.kind == "dicom" else None
                pairs.append((study.study_date.isoformat(), study.id, chosen.path, uid, primary.path,
                              primary.created_by, reader, second.path))  # fmt: skip
    out: list[SecondRead] = []
    for day, study_pk, image_path, uid, primary_path, primary_by, reader, second_path in pairs:
        image = read_image(image_path, series_uid=uid)
        a = np.isin(np.asarray(read_segmentation(primary_path, reference=image.geometry).array), tumor_labels)
        b = np.isin(np.asarray(read_segmentation(second_path, reference=image.geometry).array), tumor_labels)
        voxel_ml = image.geometry.voxel_volume_mm3 / 1000.0
        va, vb = float(a.sum()) * voxel_ml, float(b.sum()) * voxel_ml
        total = int(a.sum() + b.sum())
        out.append(
            SecondRead(
                date=day,
                study_pk=study_pk,
                reader=reader,
                study_read_by=primary_by,
                study_tumor_volume_ml=va,
                second_tumor_volume_ml=vb,
                volume_difference_percent=(vb - va) / va * 100.0 if va > 0 else None,
                tumor_dice=2.0 * float((a & b).sum()) / total if total else None,
                study_lesions=int(connected_components(a).max()) if a.any() else 0,
                second_lesions=int(connected_components(b).max()) if b.any() else 0,
            )
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SecondReadTargets:
    """A blinded reader's RECIST targets on their own baseline segmentation (lengths in mm).

    ``lesions``: every baseline lesion of the reader's segmentation (``lesion_id``, ``long_axis_mm``,
    ``measurable``, ``target``, and ``study_lesion_id``: the study's baseline lesion it overlaps most, or None).
    ``chosen_by_hand``: False when the targets are the automatic rule's. ``sum_of_diameters_mm``: the targets' long
    axes, each rounded half-up to 0.1 mm as the run does. ``study_targets`` / ``study_sum_of_diameters_mm``: the
    study's current analysis (None in a blinded view or without an analysis).
    """

    reader: str
    baseline_date: str
    targets: list[str]
    chosen_by_hand: bool
    sum_of_diameters_mm: float
    lesions: list[dict[str, Any]]
    reason: str | None
    study_targets: list[str] | None = None
    study_sum_of_diameters_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def without_study(self) -> SecondReadTargets:
        """The same without anything of the study's read (for the blinded reader's own page)."""
        lesions = [{**les, "study_lesion_id": None} for les in self.lesions]
        return SecondReadTargets(
            reader=self.reader,
            baseline_date=self.baseline_date,
            targets=self.targets,
            chosen_by_hand=self.chosen_by_hand,
            sum_of_diameters_mm=self.sum_of_diameters_mm,
            lesions=lesions,
            reason=self.reason,
        )


def _latest_targets(session: Any, patient_pk: int, reader: str) -> ReviewDecision | None:
    return session.scalar(
        select(ReviewDecision)
        .where(
            ReviewDecision.patient_id == patient_pk,
            ReviewDecision.field == SECOND_READ_TARGETS,
            ReviewDecision.reviewer == reader,
        )
        .order_by(ReviewDecision.id.desc())
        .limit(1)
    )


def _baseline(session: Any, pseudonym: str, reader: str) -> tuple[Patient, ImagingStudy, Any, Any]:
    from hepavol.study.mask_versions import current_version
    from hepavol.study.runner import latest_eligibility

    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        raise InputError(f"no patient '{pseudonym}' in this study.")
    decision = latest_eligibility(session).get(patient.id)
    if decision is None or decision.baseline_date is None:
        raise InputError(
            f"{pseudonym} has no baseline scan yet (hepavol study eligibility): no targets to choose."
        )
    study = next((s for s in patient.studies if s.study_date == decision.baseline_date), None)
    chosen = None if study is None else next((s for s in study.series if s.chosen), None)
    if study is None or chosen is None:
        raise InputError(f"{pseudonym}'s baseline scan of {decision.baseline_date} has no series chosen.")
    mine, primary = current_version(chosen, reader), current_version(chosen)
    if mine is None:
        raise InputError(f"{pseudonym}'s baseline scan of {decision.baseline_date} has no segmentation to read.")
    return patient, study, chosen, (mine.path, None if primary is None else primary.path)


def second_read_targets(ws: Workspace, pseudonym: str, reader: str) -> SecondReadTargets:
    """A blinded reader's targets on their baseline segmentation, with the study's for comparison."""
    from decimal import ROUND_HALF_UP, Decimal

    from hepavol.followup.pipeline import MAX_TARGETS
    from hepavol.io import read_image, read_segmentation
    from hepavol.measurement import _measure_scan
    from hepavol.study.reading import _row
    from hepavol.study.runner import latest_eligibility

    parameters = ws.settings.run_parameters()
    liver_label = int(parameters["liver_label"])
    tumor_labels = tuple(int(v) for v in parameters["tumor_labels"])
    with ws.db.transaction() as session:
        patient, study, chosen, (mine_path, primary_path) = _baseline(session, pseudonym, reader)
        decision = _latest_targets(session, patient.id, reader)
        stored = decision.new_value if decision is not None else None
        reason = decision.reason if decision is not None and stored is not None else None
        analysis = _row(session, ws, patient, latest_eligibility(session))[1]
        study_targets = list(analysis.targets) if analysis is not None else None
        timepoints = analysis.result.get("timepoints", []) if analysis is not None else []
        study_sum = timepoints[0].get("sum_of_diameters_mm") if timepoints else None
        image_path, uid, day = chosen.path, chosen.series_uid if chosen.kind == "dicom" else None, study.study_date
    image = read_image(image_path, series_uid=uid)
    mine, crop = _measure_scan(
        read_segmentation(mine_path, reference=image.geometry),
        image,
        liver_label=liver_label,
        tumor_labels=tumor_labels,
    )
    theirs = None
    if primary_path is not None:
        _, theirs = _measure_scan(
            read_segmentation(primary_path, reference=image.geometry),
            image,
            liver_label=liver_label,
            tumor_labels=tumor_labels,
        )
    if isinstance(stored, list):
        targets, by_hand = [str(t) for t in stored], True
    else:
        candidates = [x for x in mine.lesions if x.measurable and x.in_liver is not False]
        candidates.sort(key=lambda x: -x.long_axis_mm)
        targets, by_hand = [x.lesion_id for x in candidates[:MAX_TARGETS]], False
    lesions = []
    total = Decimal(0)
    for les in mine.lesions:
        overlap = None
        if crop is not None and theirs is not None:
            n = int(les.lesion_id[1:])
            full = np.zeros(image.geometry.shape, np.int32)
            full[crop.box] = crop.array
            other = np.zeros(image.geometry.shape, np.int32)
            other[theirs.box] = theirs.array
            hits = other[full == n]
            hits = hits[hits > 0]
            overlap = f"L{int(np.bincount(hits).argmax())}" if hits.size else None
        is_target = les.lesion_id in targets
        if is_target:
            total += Decimal(repr(float(les.long_axis_mm))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        lesions.append(
            {
                "lesion_id": les.lesion_id,
                "long_axis_mm": les.long_axis_mm,
                "measurable": les.measurable,
                "target": is_target,
                "study_lesion_id": overlap,
            }
        )
    return SecondReadTargets(
        reader=reader,
        baseline_date=day.isoformat(),
        targets=targets,
        chosen_by_hand=by_hand,
        sum_of_diameters_mm=float(total),
        lesions=lesions,
        reason=reason,
        study_targets=study_targets,
        study_sum_of_diameters_mm=study_sum,
    )


def record_second_read_targets(
    ws: Workspace, pseudonym: str, targets: list[str] | str, *, reader: str, reason: str | None
) -> ReviewDecision:
    """Store a blinded reader's own targets (baseline lesion ids of their segmentation, or ``"auto"``).

    Raises
    ------
    InputError
        Unknown patient, empty reason, ids that are not lesions of the reader's baseline segmentation, more than 5.
    """
    from hepavol.study import audit

    if not reason or not reason.strip():
        raise InputError("a review needs a reason (--reason TEXT): it is stored with the decision.")
    auto = targets == "auto" or targets == ["auto"]
    ids: list[str] = []
    if not auto:
        text = targets.split(",") if isinstance(targets, str) else targets
        ids = list(dict.fromkeys(t.strip() for t in text if t.strip()))
        if not ids:
            raise InputError("give the targets as baseline lesion ids (L1,L3) or 'auto'.")
        if len(ids) > 5:
            raise InputError(f"{len(ids)} targets given; RECIST 1.1 allows at most 5 (2 per organ).")
        lesions = [x["lesion_id"] for x in second_read_targets(ws, pseudonym, reader).lesions]
        unknown = [t for t in ids if t not in lesions]
        if unknown:
            raise InputError(
                f"target(s) {', '.join(unknown)} are not lesions of {reader}'s baseline segmentation of {pseudonym} "
                f"(its lesions: {', '.join(lesions) or 'none'}, L1 = the largest)."
            )
    with ws.db.transaction() as session:
        patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
        if patient is None:
            raise InputError(f"no patient '{pseudonym}' in this study.")
        previous = _latest_targets(session, patient.id, reader)
        row = ReviewDecision(
            patient_id=patient.id,
            field=SECOND_READ_TARGETS,
            old_value=previous.new_value if previous is not None else None,
            new_value=None if auto else ids,
            reason=reason.strip(),
            reviewer=reader,
        )
        session.add(row)
        audit.record(
            session,
            "review",
            entity="patient",
            key=pseudonym,
            details={"field": SECOND_READ_TARGETS, "old": row.old_value, "new": row.new_value, "blinded": True},
            actor=reader,
        )
        session.flush()
        session.expunge(row)
    return row


def second_read_readers(ws: Workspace, pseudonym: str) -> list[str]:
    """The blinded readers of a patient: who saved a version of one of its scans or chose targets."""
    from hepavol.study.models import Segmentation, Series

    with ws.db.transaction() as session:
        patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
        if patient is None:
            raise InputError(f"no patient '{pseudonym}' in this study.")
        saved = session.scalars(
            select(Segmentation.read_by)
            .join(Series, Segmentation.series_id == Series.id)
            .join(ImagingStudy, Series.study_id == ImagingStudy.id)
            .where(ImagingStudy.patient_id == patient.id, Segmentation.read_by.is_not(None))
        )
        chose = session.scalars(
            select(ReviewDecision.reviewer).where(
                ReviewDecision.patient_id == patient.id, ReviewDecision.field == SECOND_READ_TARGETS
            )
        )
        return sorted({str(r) for r in [*saved, *chose] if r})
