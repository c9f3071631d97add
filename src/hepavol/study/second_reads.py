"""Blinded second reads beside the study's read: where two readers' masks disagree, per scan.

For every scan where a blinded reader saved a version (:mod:`hepavol.study.mask_versions`), the head of their
chain is compared with the study's active segmentation on the same image grid: total tumour volume of each
(mL), the relative difference, the Dice of the two tumour masks, and the lesion counts (26-connected components).
Reader agreement statistics over a cohort (ICC, Bland-Altman) are ``hepavol agreement``'s job; this is the
per-patient view a reader looks at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from hepavol.study.models import ImagingStudy, Patient
from hepavol.study.workspace import Workspace

__all__ = ["SecondRead", "second_reads"]


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
            from hepavol.errors import InputError

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
