"""Import scans and segmentations into a study: from manifests (NIfTI/NRRD/MHA or DICOM folders) and files.

Every patient identifier is replaced by its pseudonym (keyed hash, :mod:`hepavol.study.pseudonym`) before it
reaches the database; the original id is kept only in the ``identities`` table. Imports are idempotent: the same
files imported twice add nothing. A changed file (same path, new content) updates the stored content hash, which
makes the next ``study run`` recompute that patient. Each patient is imported in one transaction.

Manifest columns (CSV, one row per scan; paths relative to the manifest): ``date`` (YYYY-MM-DD), ``image`` (an
image file or a DICOM series folder), optional ``seg`` (label map or DICOM SEG), ``patient_id`` (else
``--patient``), ``modality`` (CT or MR; read from DICOM when the image is DICOM), ``series_uid`` (for a DICOM
folder holding several series). This is the manifest of ``hepavol follow-up`` and of ``hepavol simulate``.

Checks at import (nothing of a refused patient is stored): each image and segmentation file must be one (its header
is read: NIfTI, NRRD, MHA or DICOM); a scan whose content (SHA-256) is already imported as another series is
refused with the manifest line (the same image under a second path would silently become the measured series).
Paths may lead outside the manifest's folder (``../store/ct.nii.gz`` or absolute paths to a shared image store):
they are taken as given, resolved, and stored resolved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.dicom_tree import SeriesFound, read_series
from hepavol.study.hashing import hash_path
from hepavol.study.models import Identity, ImagingStudy, Patient, Segmentation, Series
from hepavol.study.table import read_table
from hepavol.study.workspace import Workspace
from hepavol.table import future_date_warning

__all__ = ["ImportSummary", "ScanRow", "import_scans", "import_segmentations", "read_scan_manifest"]

_MODALITIES = {"ct": "CT", "mr": "MR", "mri": "MR"}


@dataclass(slots=True)
class ImportSummary:
    """What an import added (counts) and what it noticed."""

    patients_new: int = 0
    patients_seen: set[str] = field(default_factory=set)
    studies_new: int = 0
    series_new: int = 0
    series_changed: int = 0
    segmentations_new: int = 0
    seeds_new: int = 0  # RECIST lines of DICOM SR (seeds of study segment)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        seeds = f", {self.seeds_new} new lesion seed(s) from DICOM SR" if self.seeds_new else ""
        return (
            f"{len(self.patients_seen)} patient(s) ({self.patients_new} new), {self.studies_new} new scan(s), "
            f"{self.series_new} new series, {self.series_changed} changed, "
            f"{self.segmentations_new} new segmentation(s){seeds}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRow:
    """One row of a scan manifest (paths resolved)."""

    source: str  # "file:line" for messages
    patient_id: str
    date: dt.date
    image: Path
    seg: Path | None
    modality: str | None
    series_uid: str | None


def _uid(*parts: str) -> str:
    """A deterministic DICOM UID (2.25 + decimal of 128 bits of SHA-256) for things imported from files."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()[:16]
    return "2.25." + str(int.from_bytes(digest, "big"))


def read_scan_manifest(path: str | os.PathLike[str], *, patient_id: str | None = None) -> list[ScanRow]:
    """Read a scan manifest (see the module docstring).

    Raises
    ------
    TableError
        Missing or unreadable file, missing columns, malformed CSV (:func:`hepavol.study.table.read_table`).
    InputError
        Unparseable dates, missing paths, unknown modality, no patient id.
    """
    p = Path(path)
    table = read_table(p, "manifest")
    table.require(("date", "image"), "a scan manifest has date,image[,seg][,patient_id][,modality][,series_uid]")
    if not table.rows:
        raise InputError(f"{p}: no scans (the manifest has only a header).")
    out: list[ScanRow] = []
    for line, row in table.records():
        where = f"{p}, line {line}"
        pid = row.get("patient_id") or patient_id
        if not pid:
            raise InputError(f"{where}: no patient id. Add a patient_id column or give --patient ID.")
        try:
            date = dt.date.fromisoformat(row["date"])
        except ValueError:
            raise InputError(f"{where}: date '{row['date']}' is not YYYY-MM-DD.") from None
        image = (p.parent / row["image"]).resolve()
        if not row["image"] or not image.exists():
            raise InputError(
                f"{where}: image '{row['image']}' does not exist (paths are relative to the manifest)."
            )
        seg = None
        if row.get("seg"):
            seg = (p.parent / row["seg"]).resolve()
            if not seg.exists():
                raise InputError(
                    f"{where}: seg '{row['seg']}' does not exist (paths are relative to the manifest)."
                )
        modality = None
        if row.get("modality"):
            modality = _MODALITIES.get(row["modality"].lower())
            if modality is None:
                raise InputError(f"{where}: modality '{row['modality']}' is not CT or MR.")
        out.append(
            ScanRow(
                source=where,
                patient_id=pid,
                date=date,
                image=image,
                seg=seg,
                modality=modality,
                series_uid=row.get("series_uid") or None,
            )
        )
    return out


def series_attributes(series: SeriesFound) -> dict[str, Any]:
    """The stored attributes of a DICOM series (columns of :class:`~hepavol.study.models.Series`)."""
    return {
        "modality": series.modality,
        "description": series.description[:256] or None,
        "n_instances": series.n_instances,
        "slice_thickness_mm": series.slice_thickness_mm,
        "orientation": series.orientation,
        "contrast_phase": series.contrast_phase,
        "mr_sequence": series.mr_sequence,
    }


def patient_for(session: Session, pseudonymiser: Any, original_id: str, summary: ImportSummary) -> Patient:
    """The patient with this original id (created with its pseudonym and identity row if new)."""
    pseudonym = pseudonymiser.pseudonym(original_id)
    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        patient = Patient(pseudonym=pseudonym)
        session.add(patient)
        session.flush()
        session.add(Identity(patient_id=patient.id, original_id=original_id.strip()))
        summary.patients_new += 1
        audit.record(session, "import-patient", entity="patient", key=pseudonym)
    summary.patients_seen.add(pseudonym)
    return patient


def study_for(
    session: Session,
    patient: Patient,
    *,
    study_uid: str,
    date: dt.date,
    modality: str | None,
    description: str | None,
    source: str,
    summary: ImportSummary,
) -> ImagingStudy:
    """The imaging study with this UID (created if new; a study of another patient is an error)."""
    study = session.scalar(select(ImagingStudy).where(ImagingStudy.study_uid == study_uid))
    if study is None:
        study = ImagingStudy(
            patient_id=patient.id,
            study_uid=study_uid,
            study_date=date,
            modality=modality,
            description=description,
            source=source,
        )
        session.add(study)
        session.flush()
        summary.studies_new += 1
    elif study.patient_id != patient.id:
        raise InputError(
            f"study {study_uid} ({date.isoformat()}) is already in the workspace under another patient. The same "
            "StudyInstanceUID cannot belong to two patients: check the patient ids of the import."
        )
    return study


def series_for(
    session: Session,
    study: ImagingStudy,
    *,
    series_uid: str,
    path: Path,
    kind: str,
    content_hash: str,
    chosen: bool,
    choice_reason: str | None,
    attributes: dict[str, Any],
    summary: ImportSummary,
) -> Series:
    """The series with this UID (created if new; its path and hash updated if its content changed)."""
    series = session.scalar(select(Series).where(Series.series_uid == series_uid))
    if series is None:
        series = Series(
            study_id=study.id,
            series_uid=series_uid,
            path=str(path),
            kind=kind,
            content_hash=content_hash,
            chosen=chosen,
            choice_reason=choice_reason,
            **attributes,
        )
        session.add(series)
        session.flush()
        summary.series_new += 1
        if chosen:
            for other in study.series:
                if other.id != series.id and other.chosen:
                    other.chosen = False
    elif series.content_hash != content_hash or series.path != str(path):
        audit.record(
            session,
            "series-changed",
            entity="series",
            key=series_uid,
            details={"old_hash": series.content_hash, "new_hash": content_hash},
        )
        series.content_hash = content_hash
        series.path = str(path)
        summary.series_changed += 1
    return series


def add_segmentation(
    session: Session,
    series: Series,
    *,
    path: Path,
    source: str,
    content_hash: str,
    liver_label: int,
    tumor_labels: Sequence[int],
    sop_instance_uid: str | None,
    summary: ImportSummary,
    pseudonym: str,
    read_by: str | None = None,
) -> Segmentation:
    """Add a segmentation to a series and make it the active one (unless the same content is already there).

    With ``read_by`` it is a version of that reader's read instead (as a blinded reader's saves in the review
    app: never active, so the study's read and ``study run`` are unchanged).
    """
    existing = session.scalar(
        select(Segmentation).where(Segmentation.series_id == series.id, Segmentation.content_hash == content_hash)
    )
    if existing is not None:
        if existing.read_by != read_by:

            def whose(name: str | None) -> str:
                return "the study's own read" if name is None else f"reader {name}'s read"

            raise InputError(
                f"the segmentation '{path}' of {pseudonym}'s scan is identical to one already in {whose(existing.read_by)} "
                f"(segmentation {existing.id}); it cannot also be {whose(read_by)}. Check that the right reader's "
                "masks are imported."
            )
        return existing
    if read_by is None:
        for other in series.segmentations:
            other.active = False
    seg = Segmentation(
        series_id=series.id,
        source=source,
        path=str(path),
        content_hash=content_hash,
        sop_instance_uid=sop_instance_uid,
        liver_label=liver_label,
        tumor_labels=list(tumor_labels),
        active=read_by is None,
        read_by=read_by,
        created_by=read_by,
    )
    session.add(seg)
    session.flush()
    summary.segmentations_new += 1
    details = {"series": series.series_uid, "source": source, "content_hash": content_hash}
    if read_by is not None:
        details["reader"] = read_by
    audit.record(session, "import-segmentation", entity="patient", key=pseudonym, details=details)
    return seg


def _check_image_header(path: Path, where: str, column: str) -> None:
    """Read the header of an image or label-map file (not its voxels): a file that is not one is refused now,
    at import, rather than when the study runs."""
    import SimpleITK as sitk

    if path.is_dir():
        raise InputError(
            f"{where}: {column} '{path}' is a folder without a DICOM series. Give an image file (NIfTI, NRRD, MHA) "
            "or a folder of DICOM files."
        )
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputError(
                f"{where}: {column} '{path}' cannot be read ({exc.strerror}). Check its permissions."
            ) from None
        raise InputError(
            f"{where}: {column} '{path}' is not an image hepavol can read (no NIfTI, NRRD, MHA or DICOM header). "
            "Check the path in the manifest."
        ) from None
    if reader.GetDimension() not in (3, 4) and column == "image":
        raise InputError(
            f"{where}: image '{path}' is {reader.GetDimension()}D; a scan must be a 3D volume. Check the path."
        )


def _refuse_duplicate(session: Session, row: ScanRow, series_uid: str, content_hash: str) -> None:
    """A scan whose content is already imported as another series (the same image under a second path, or a
    copy) is refused: it would silently become the measured series of its study."""
    other = session.scalar(
        select(Series).where(Series.content_hash == content_hash, Series.series_uid != series_uid).limit(1)
    )
    if other is None:
        return
    study = session.get(ImagingStudy, other.study_id)
    owner = session.get(Patient, study.patient_id) if study is not None else None
    when = f"the scan of {study.study_date.isoformat()}" if study is not None else "a scan"
    who = f" of {owner.pseudonym}" if owner is not None else ""
    raise InputError(
        f"{row.source}: image '{row.image}' has the same content (SHA-256 {content_hash[:12]}...) as {when}{who} "
        "already in the study, imported from another path. A scan is imported once: remove this line, or give "
        "the path it was imported from."
    )


def _seg_source(path: Path) -> tuple[str, str | None]:
    """("dicom-seg", SOPInstanceUID) for a DICOM SEG file, else ("file", None)."""
    if path.is_file() and path.suffix.lower() not in (".gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            return "file", None
        if str(ds.get("SOPClassUID", "")) == "1.2.840.10008.5.1.4.1.1.66.4":
            return "dicom-seg", str(ds.SOPInstanceUID)
    return "file", None


def import_scans(
    ws: Workspace,
    manifests: Sequence[str | os.PathLike[str]],
    *,
    patient_id: str | None = None,
    modality: str | None = None,
) -> ImportSummary:
    """Import the scans (and segmentations) of one or more manifests (see the module docstring)."""
    if patient_id is not None and len(manifests) > 1:
        raise InputError("--patient applies to one manifest; give a patient_id column for several manifests.")
    rows: list[ScanRow] = []
    for m in manifests:
        rows += read_scan_manifest(m, patient_id=patient_id)
    default_modality = None if modality is None else _MODALITIES.get(modality.lower())
    if modality is not None and default_modality is None:
        raise InputError(f"--modality '{modality}' is not CT or MR.")
    pseudonymiser = ws.pseudonymiser()
    summary = ImportSummary()
    summary.warnings += [w for row in rows if (w := future_date_warning(row.source, "date", row.date))]
    settings = ws.settings
    by_patient: dict[str, list[ScanRow]] = {}
    for row in rows:
        by_patient.setdefault(row.patient_id, []).append(row)
    for original_id, patient_rows in by_patient.items():
        prepared = []
        for row in patient_rows:  # read and hash outside the transaction
            # a DICOM series is read as the tree reader reads a PACS export: the same attributes either way
            found: SeriesFound | None = None
            study_description = ""
            if row.image.is_dir() or _is_dicom(row.image):
                try:
                    found, study_description = read_series(row.image, series_uid=row.series_uid)
                except InputError as exc:
                    raise InputError(f"{row.source}: {exc}") from None
            else:
                _check_image_header(row.image, row.source, "image")
            image_hash = hash_path(row.image)
            seg_info = None
            if row.seg is not None:
                source, sop_uid = _seg_source(row.seg)
                if source != "dicom-seg":
                    _check_image_header(row.seg, row.source, "seg")
                seg_info = (row.seg, source, sop_uid, hash_path(row.seg))
            prepared.append((row, found, study_description, image_hash, seg_info))
        with ws.db.transaction() as session:
            patient = patient_for(session, pseudonymiser, original_id, summary)
            for row, found, study_description, image_hash, seg_info in prepared:
                kind = "dicom" if found is not None else "file"
                mod = row.modality or (found.modality if found is not None else None) or default_modality
                study_uid = (found.study_uid if found is not None else None) or _uid(
                    "study", patient.pseudonym, row.date.isoformat()
                )
                series_uid = (found.series_uid if found is not None else None) or _uid(
                    "series", patient.pseudonym, str(row.image)
                )
                study = study_for(
                    session,
                    patient,
                    study_uid=study_uid,
                    date=row.date,
                    modality=mod,
                    description=study_description[:256] or None,
                    source=kind,
                    summary=summary,
                )
                _refuse_duplicate(session, row, series_uid, image_hash)
                series = series_for(
                    session,
                    study,
                    series_uid=series_uid,
                    path=row.image,
                    kind=kind,
                    content_hash=image_hash,
                    chosen=True,
                    choice_reason=f"named in the manifest ({row.source})",
                    attributes={
                        **(series_attributes(found) if found is not None else {}),
                        "modality": mod,
                    },
                    summary=summary,
                )
                if seg_info is not None:
                    seg_path, source, sop_uid, seg_hash = seg_info
                    add_segmentation(
                        session,
                        series,
                        path=seg_path,
                        source=source,
                        content_hash=seg_hash,
                        liver_label=settings.liver_label,
                        tumor_labels=settings.tumor_labels,
                        sop_instance_uid=sop_uid,
                        summary=summary,
                        pseudonym=patient.pseudonym,
                    )
            audit.record(
                session,
                "import-scans",
                entity="patient",
                key=patient.pseudonym,
                details={"scans": len(prepared)},
            )
    return summary


def _is_dicom(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def import_segmentations(
    ws: Workspace,
    table: str | os.PathLike[str] | None = None,
    *,
    seg: str | os.PathLike[str] | None = None,
    patient_id: str | None = None,
    date: str | None = None,
    source: str | None = None,
    reader: str | None = None,
) -> ImportSummary:
    """Attach segmentations to imported scans: one file (``seg``, ``patient_id``, ``date``) or a CSV table
    with columns ``patient_id,date,seg`` (paths relative to the table).

    ``source`` overrides the recorded origin (``hepavol-segment`` for masks made by ``hepavol segment``).
    ``reader`` imports the masks as that reader's read (their segmentation versions, ``read_by``; masks made
    elsewhere by a second reader, or a repeated read ``NAME#2``): the study's own read is left as it is.

    Raises
    ------
    InputError
        Unknown patient or scan date, missing file, bad table.
    """
    entries: list[tuple[str, str, str, Path]] = []  # (where, patient, date, path)
    if table is not None:
        t = Path(table)
        listing = read_table(t, "segmentation list")
        listing.require(("patient_id", "date", "seg"), "a segmentation list has patient_id,date,seg")
        for line, row in listing.records():
            entries.append((f"{t}, line {line}", row["patient_id"], row["date"], t.parent / row["seg"]))
    else:
        if seg is None or patient_id is None or date is None:
            raise InputError(
                "give a CSV table (patient_id,date,seg), or SEG with --patient ID and --date YYYY-MM-DD."
            )
        entries.append(("command line", patient_id, date, Path(seg)))
    if reader is not None:
        from hepavol.study.readers import check_reader_name

        reader = check_reader_name(reader)
    pseudonymiser = ws.pseudonymiser()
    summary = ImportSummary()
    prepared = []
    for where, pid, day, path in entries:
        try:
            when = dt.date.fromisoformat(day)
        except ValueError:
            raise InputError(f"{where}: date '{day}' is not YYYY-MM-DD.") from None
        if not path.exists():
            raise InputError(f"{where}: segmentation '{path}' does not exist.")
        kind, sop_uid = _seg_source(path)
        prepared.append((where, pid, when, path.resolve(), source or kind, sop_uid, hash_path(path)))
    with ws.db.transaction() as session:
        for where, pid, when, path, kind, sop_uid, digest in prepared:
            pseudonym = pseudonymiser.pseudonym(pid)
            patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
            if patient is None:
                raise InputError(f"{where}: patient '{pid}' is not in the study; import its scans first.")
            study = session.scalar(
                select(ImagingStudy).where(ImagingStudy.patient_id == patient.id, ImagingStudy.study_date == when)
            )
            chosen = [s for s in study.series if s.chosen] if study is not None else []
            if not chosen:
                dates = sorted(s.study_date.isoformat() for s in patient.studies)
                raise InputError(
                    f"{where}: patient '{pid}' has no scan with a chosen series on {when.isoformat()} "
                    f"(scans: {', '.join(dates) or 'none'})."
                )
            summary.patients_seen.add(pseudonym)
            add_segmentation(
                session,
                chosen[0],
                path=path,
                source=kind,
                content_hash=digest,
                liver_label=ws.settings.liver_label,
                tumor_labels=ws.settings.tumor_labels,
                sop_instance_uid=sop_uid,
                summary=summary,
                pseudonym=pseudonym,
                read_by=reader,
            )
    return summary
