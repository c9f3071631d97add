"""Segmentation versions: a reader's edited label map saved as a new version of a scan's segmentation.

A version is never overwritten: each save writes a new label map into the workspace
(``segmentations/<pseudonym>/<date>_v<N>.nii.gz``, private to the user like every workspace file), adds a
``segmentations`` row (``source`` "review", the reader, the version it was edited from, the reader's note) that
becomes the scan's active segmentation, and one audit entry, all in one transaction. The earlier versions stay,
inactive, with their files.

A **blinded second read** (``blinded_reader``) starts from the scan's latest imported segmentation, never from
the study's edited versions, and keeps its own chain: its versions are stored with ``read_by`` and are never
active, so ``study run`` and every export go on measuring the study's own read; :func:`current_version` gives
either chain's head.

A save is refused when the scan's active segmentation is no longer the one the reader started from (another
reader or browser saved in between: reload and edit again; nothing is merged silently), or when the patient's read
is signed off. After a save, :func:`reanalyse` recomputes the patient (``study run`` on that patient alone).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.hashing import hash_path
from hepavol.study.models import ImagingStudy, Patient, Segmentation, Series
from hepavol.study.review import require_open
from hepavol.study.workspace import Workspace
from hepavol.volume import Volume

__all__ = [
    "SavedVersion",
    "current_version",
    "reanalyse",
    "save_segmentation_version",
    "segmentation_versions",
]

SOURCE = "review"


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A saved segmentation version: its database id, its number among the scan's versions, its file name."""

    segmentation_pk: int
    version: int
    file_name: str
    changed_voxels: int


def _scan(session: Session, pseudonym: str, study_pk: int) -> tuple[Patient, ImagingStudy, Series]:
    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        raise InputError(f"no patient '{pseudonym}' in this study.")
    study = session.get(ImagingStudy, study_pk)
    if study is None or study.patient_id != patient.id:
        raise InputError(f"scan {study_pk} is not a scan of {pseudonym}: reload the patient.")
    series = next((s for s in study.series if s.chosen), None)
    if series is None:
        raise InputError(f"the scan of {study.study_date} of {pseudonym} has no series chosen for measurement.")
    return patient, study, series


def current_version(series: Series, blinded_reader: str | None = None) -> Segmentation | None:
    """The head of a read's chain on a series: the active segmentation (the study's read), or for a blinded
    reader their latest version (saved in the app or imported with ``study import-seg --reader``), else the
    latest segmentation imported into the study's read (what they start from)."""
    if blinded_reader is None:
        return next((g for g in reversed(series.segmentations) if g.active), None)
    own = [g for g in series.segmentations if g.read_by == blinded_reader]
    if own:
        return own[-1]
    return next((g for g in reversed(series.segmentations) if g.source != SOURCE and g.read_by is None), None)


def save_segmentation_version(
    ws: Workspace,
    pseudonym: str,
    study_pk: int,
    labels: Volume,
    *,
    reader: str,
    based_on: int | None,
    liver_label: int,
    tumor_labels: tuple[int, ...],
    changed_voxels: int,
    note: str | None = None,
    blinded_reader: str | None = None,
) -> SavedVersion:
    """Save ``labels`` (on the scan's image grid) as the scan's new active segmentation (module docstring).

    ``based_on`` is the segmentation id the reader started from (None for a scan that had none);
    ``blinded_reader`` saves into that reader's blinded chain instead of the study's read.

    Raises
    ------
    InputError
        Another version was saved in between, the read is signed off, or the scan is not the patient's.
    """
    from hepavol.io import write_image

    with ws.db.transaction() as session:  # checks first, so that a refused save writes nothing
        patient, study, series = _scan(session, pseudonym, study_pk)
        if blinded_reader is None:
            require_open(session, patient, "editing its segmentations")
        n = len(series.segmentations) + 1
        day = study.study_date.isoformat()
    folder = ws.root / "segmentations" / pseudonym
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{day}_{study_pk}_v{n}.nii.gz"
    if path.exists():
        path = folder / f"{day}_{study_pk}_v{n}_{os.getpid()}.nii.gz"
    data = np.asarray(labels.array)
    store: NDArray[np.integer] = data.astype(np.uint8 if data.max(initial=0) < 256 else np.uint16)
    write_image(labels.with_array(store), path)
    try:
        content_hash = hash_path(path)
        with ws.db.transaction() as session:
            patient, study, series = _scan(session, pseudonym, study_pk)
            session.refresh(series, with_for_update=True)  # PostgreSQL: one save of a series at a time
            if blinded_reader is None:
                require_open(session, patient, "editing its segmentations")
            active = current_version(series, blinded_reader)
            if (active.id if active is not None else None) != based_on:
                who = f" by {active.created_by}" if active is not None and active.created_by else ""
                when = f" at {active.created_at:%H:%M:%S} UTC" if active is not None else ""
                raise InputError(
                    f"the segmentation of {pseudonym}'s scan of {day} was changed since you opened it (a new "
                    f"version{who}{when}): your edits were not saved. Reload the scan and edit again."
                )
            same = next((g for g in series.segmentations if g.content_hash == content_hash), None)
            if same is not None:  # one row per content on a series (the schema's unique constraint)
                raise InputError(
                    f"the edited segmentation of {pseudonym}'s scan of {day} is identical to an earlier one "
                    f"(segmentation {same.id}, {same.source}, {same.created_at:%Y-%m-%d %H:%M} UTC): nothing was "
                    "saved. Edit further, or discard the edits."
                )
            if blinded_reader is None:
                for other in series.segmentations:
                    other.active = False
            seg = Segmentation(
                series_id=series.id,
                source=SOURCE,
                path=str(path),
                content_hash=content_hash,
                sop_instance_uid=None,
                liver_label=liver_label,
                tumor_labels=list(tumor_labels),
                active=blinded_reader is None,
                created_by=reader,
                based_on_id=based_on,
                note=note,
                read_by=blinded_reader,
            )
            session.add(seg)
            session.flush()
            audit.record(
                session,
                "segmentation-version",
                entity="patient",
                key=pseudonym,
                details={"scan": day, "version": n, "based_on": based_on, "changed_voxels": changed_voxels,
                         "content_hash": content_hash, "note": note, "blinded": blinded_reader is not None},
                actor=reader,
            )  # fmt: skip
            return SavedVersion(seg.id, n, path.name, changed_voxels)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def segmentation_versions(
    ws: Workspace, pseudonym: str, study_pk: int, *, blinded_reader: str | None = None
) -> list[dict[str, object]]:
    """The segmentations of a scan's chosen series in one read, oldest first (no paths: file names only).

    The study's read lists every version but blinded ones; a blinded reader sees the imported ones and their own.
    """
    with ws.db.transaction() as session:
        _patient, _study, series = _scan(session, pseudonym, study_pk)
        head = current_version(series, blinded_reader)
        shown = [
            (i, g)
            for i, g in enumerate(series.segmentations)
            if (g.read_by is None if blinded_reader is None else g.read_by in (None, blinded_reader))
            and (blinded_reader is None or g.read_by == blinded_reader or g.source != SOURCE)
        ]
        return [
            {
                "segmentation_pk": g.id,
                "version": i + 1,
                "source": g.source,
                "reader": g.created_by,
                "based_on": g.based_on_id,
                "note": g.note,
                "active": head is not None and g.id == head.id,
                "at": g.created_at.isoformat(),
                "file_name": Path(g.path).name if g.source == SOURCE else None,
            }
            for i, g in shown
        ]


def reanalyse(ws: Workspace, pseudonym: str) -> str:
    """Recompute one patient after an edit (``study run`` on it alone, the study's own read only: the named
    readers' reads are left to ``study run``); what happened, in words."""
    from hepavol.study.runner import run_study

    summary = run_study(ws, patients=[pseudonym], workers=1, readers=False)
    if summary.failed:
        return f"the analysis failed: {summary.failed[0][1]}"
    if summary.not_ready:
        return f"not analysed: {summary.not_ready[0][1]}"
    if summary.computed:
        return "analysis updated"
    if summary.eligible == 0:
        return "not analysed (the patient is not eligible)"
    return "analysis up to date"
