"""``hepavol study import DICOM_ROOT``: a PACS export into the study database.

The tree is read header by header (:func:`hepavol.study.dicom_tree.scan_dicom_tree`), grouped into patients,
studies and series, and one series per study is chosen by the rules of ``study.toml [series_selection]``
(:func:`hepavol.study.dicom_tree.choose_series`: axial, thinnest, portal-venous CT or the MR sequence named).
One exception, which a radiologist would expect: when the rule's choice has no segmentation but a DICOM SEG in the
export references another image series of the same study, that segmented series is measured instead, and the
reason says so. The DICOM SEG objects referencing the chosen series are imported as its segmentations.

Every series found is recorded (chosen or not, with the reason), the chosen series with the SHA-256 of its files
(a changed file makes the next run recompute the patient). Patient names are never stored; patient ids are
replaced by pseudonyms. Files are not copied: the database refers to them where they are.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hepavol.study import audit
from hepavol.study.dicom_tree import (
    ReportFound,
    ReportLine,
    SegFound,
    SelectionRules,
    SeriesFound,
    StudyFound,
    TreeScan,
    scan_dicom_tree,
)
from hepavol.study.hashing import hash_files, hash_json, hash_path
from hepavol.study.importer import (
    ImportSummary,
    add_segmentation,
    patient_for,
    series_attributes,
    series_for,
    study_for,
)
from hepavol.study.redact import PathRedactor
from hepavol.study.seeds import add_seed
from hepavol.study.workspace import Workspace

__all__ = ["import_dicom_tree", "measured_series", "report_seeds"]


def measured_series(study: StudyFound) -> tuple[SeriesFound | None, str]:
    """The series to measure in a study and why (the rule's choice, or the segmented series; module docstring)."""
    segmented = {uid for seg in study.segs for uid in seg.referenced_series_uids}
    chosen, reason = study.chosen, study.choice_reason
    if chosen is not None and chosen.series_uid in segmented:
        return chosen, reason
    candidates = [s for s in study.series if s.series_uid in segmented]
    if candidates:
        best = max(candidates, key=lambda s: s.n_instances)
        rule = "no series met the rules" if chosen is None else f"the rules chose '{chosen.description}'"
        return best, (
            f"'{best.description}' ({best.modality}, {best.n_instances} images) is the series a DICOM SEG of the "
            f"study segments; {rule} ({reason}), which has no segmentation"
        )
    return chosen, reason


def _line_seed(
    report: ReportFound, line: ReportLine, study: StudyFound, chosen: SeriesFound | None
) -> dict[str, Any]:
    """The seed of one SR line (``add_seed`` arguments); ``problem`` says why it cannot be used."""
    import pydicom

    from hepavol.io.sr_read import image_points_to_lps

    m = line.measurement
    value = f" {m.value_mm:.1f} mm" if m.value_mm is not None else ""
    if report.kind == "gsps":
        origin = f"GSPS {report.sop_instance_uid}, graphic annotation {m.group} ({m.concept})"
        what = "graphic annotation names no single image (ReferencedImageSequence)"
    else:
        origin = f"SR {report.sop_instance_uid}, measurement group {m.group} ({m.concept}{value})"
        what = "SCOORD names no image (no SELECTED FROM IMAGE reference)"
    seed: dict[str, Any] = {
        "source": "gsps" if report.kind == "gsps" else "dicom-sr",
        "origin": origin,
        "kind": "line",
        "coordinates": "lps",
        "points": [],
        "lesion_ref": m.tracking_uid or m.tracking_id,
        "referenced_series_uid": line.referenced_series_uid,
        "frame_of_reference_uid": m.frame_of_reference_uid or line.referenced_frame_of_reference_uid,
        "problem": None,
    }

    def refuse(problem: str) -> dict[str, Any]:
        return {**seed, "problem": problem}

    if chosen is None:
        return refuse("the study has no series to measure, so its lines cannot be used")
    labels = {s.series_uid: s.label() for s in study.series}
    if m.is_3d:
        seed["points"] = [list(p) for p in m.points]
        frame = m.frame_of_reference_uid
    elif m.referenced_sop_uid is None:
        return refuse(
            f"its {what}, so the line cannot be placed in the patient frame. Export it with its image "
            "references, or give the line in a seed CSV (hepavol study import-seeds)."
        )
    elif line.referenced_path is None:
        return refuse(
            f"it was drawn on image {m.referenced_sop_uid}, which is not in the export: export that image's series "
            "with the SR."
        )
    else:
        try:
            ds = pydicom.dcmread(line.referenced_path, stop_before_pixels=True)
            position = [float(v) for v in ds.ImagePositionPatient]
            orientation = [float(v) for v in ds.ImageOrientationPatient]
            spacing = [float(v) for v in ds.PixelSpacing]
            rows, columns = int(ds.Rows), int(ds.Columns)
        except (AttributeError, OSError, ValueError, TypeError, pydicom.errors.InvalidDicomError):
            return refuse(
                f"its image {m.referenced_sop_uid} has no readable ImagePositionPatient, ImageOrientationPatient, "
                "PixelSpacing, Rows and Columns, so the line cannot be placed in the patient frame"
            )
        outside = [p for p in m.points if not (0.0 <= p[0] <= columns and 0.0 <= p[1] <= rows)]
        if outside:
            c, r = outside[0]
            return refuse(
                f"the line lies outside the image it was drawn on: (column, row) ({c:.1f}, {r:.1f}), but the image "
                f"has {columns} columns and {rows} rows. Check the measurement in the viewer that made it."
            )
        seed["points"] = image_points_to_lps(m.points, position=position, orientation=orientation,
                                             pixel_spacing=spacing)  # fmt: skip
        frame = line.referenced_frame_of_reference_uid
    if line.referenced_series_uid not in (None, chosen.series_uid):
        where = labels.get(line.referenced_series_uid or "", f"series {line.referenced_series_uid}")
        if frame and frame == chosen.frame_of_reference_uid:
            seed["origin"] = (
                f"{origin}; drawn on {where}, mapped to the measured series {chosen.label()} through their shared "
                "frame of reference"
            )
        else:
            return refuse(
                f"it was drawn on {where} (FrameOfReferenceUID {frame or 'missing'}), not on the measured series "
                f"{chosen.label()} (FrameOfReferenceUID {chosen.frame_of_reference_uid or 'missing'}): the two series "
                "share no frame of reference, so the line cannot be mapped. Measure the lesion on the measured series, "
                "or have the rules choose that series (study.toml [series_selection])."
            )
    elif m.is_3d and frame != chosen.frame_of_reference_uid:
        return refuse(
            f"its 3D coordinates are in FrameOfReferenceUID {frame or 'missing'}, not in that of the measured series "
            f"{chosen.label()} ({chosen.frame_of_reference_uid or 'missing'}): they cannot be mapped"
        )
    return seed


def report_seeds(study: StudyFound, chosen: SeriesFound | None) -> list[dict[str, Any]]:
    """The seeds (``add_seed`` arguments) of a study's reports: one per measurement group's line (its long axis;
    a short axis is the same lesion), each with the reason it cannot be used, if any."""
    seeds = []
    for report in study.reports:
        long_groups = {ln.measurement.group for ln in report.lines if not ln.measurement.short_axis}
        for line in report.lines:
            m = line.measurement
            if m.short_axis and m.group in long_groups and m.group != 0:
                continue
            seeds.append(_line_seed(report, line, study, chosen))
    return seeds


def _light_hash(series: SeriesFound) -> str:
    """A cheap fingerprint of a series that is not measured (file names and sizes)."""
    return hash_json(sorted((p.name, p.stat().st_size) for p in series.files))


def unreadable_warnings(tree: TreeScan, pseudonymiser: Any) -> list[str]:
    """One warning per study whose measured series has unreadable files or folders beside or below its files
    (the series may be incomplete), and one naming the other unreadable entries (by path relative to the import
    root, patient folders shown by pseudonym)."""
    unreadable = [path for path, reason in tree.skipped if reason.startswith("cannot be read")]
    if not unreadable:
        return []
    labels: dict[str, str] = {}
    series_of: list[tuple[Path, str]] = []  # (series folder, "<pseudonym>, study of DATE")
    for patient in tree.patients:
        pseudonym = pseudonymiser.pseudonym(patient.original_id)
        folders = [study.folder for study in patient.studies]
        if folders:
            common = Path(os.path.commonpath([str(f) for f in folders]))
            if common != tree.root:
                labels[str(common)] = f"<{pseudonym}>"
        for study in patient.studies:
            series, _reason = measured_series(study)
            if series is not None:
                series_of.append((series.folder, f"{pseudonym}, study of {study.date.isoformat()}"))
    labels.setdefault(str(tree.root), "<import root>")
    redactor = PathRedactor(labels)
    warnings: list[str] = []
    left = set(unreadable)
    for folder, who in series_of:
        inside = [p for p in unreadable if p.parent == folder or folder in p.parents]
        if inside:
            left -= set(inside)
            warnings.append(
                f"{who}: {len(inside)} file(s) or folder(s) in the folder of its measured series cannot be read "
                f"(e.g. {redactor.text(str(inside[0]))}); the series may be incomplete. Give your user read access "
                "(chmod -R u+rX) and import again."
            )
    if left:
        shown = ", ".join(redactor.text(str(p)) for p in sorted(left)[:5])
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        warnings.append(
            f"{len(left)} file(s) or folder(s) cannot be read: {shown}{more}. Give your user read access "
            "(chmod -R u+rX) and import again if they hold images of the study."
        )
    return warnings


def import_dicom_tree(
    ws: Workspace, root: str | os.PathLike[str], *, workers: int = 4, progress: bool = False
) -> ImportSummary:
    """Import a DICOM folder tree (see the module docstring); one transaction per patient."""
    rules = SelectionRules.from_mapping(ws.settings.series_selection)

    def show(done: int, total: int) -> None:
        if progress:
            sys.stderr.write(f"\rreading DICOM headers {done}/{total}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    tree = scan_dicom_tree(root, rules=rules, progress=show, workers=workers)
    pseudonymiser = ws.pseudonymiser()
    summary = ImportSummary()
    summary.warnings += [f"{n} file(s) skipped: {reason}" for reason, n in tree.skipped_counts]
    summary.warnings += unreadable_warnings(tree, pseudonymiser)
    for patient_found in tree.patients:
        prepared: list[
            tuple[
                StudyFound,
                SeriesFound | None,
                str,
                str | None,
                Sequence[tuple[SegFound, str]],
                list[dict[str, Any]],
            ]
        ] = []
        for study in patient_found.studies:  # hash outside the transaction
            series, reason = measured_series(study)
            content = None if series is None else hash_files(series.files, root=series.folder)
            own = (
                [] if series is None else [s for s in study.segs if series.series_uid in s.referenced_series_uids]
            )
            prepared.append(
                (
                    study,
                    series,
                    reason,
                    content,
                    [(s, hash_path(s.path)) for s in own],
                    report_seeds(study, series),
                )
            )
            for seg in study.segs:
                if series is None or series.series_uid not in seg.referenced_series_uids:
                    summary.warnings.append(
                        f"study of {study.date.isoformat()}: DICOM SEG '{seg.description}' references a series "
                        "that is not measured; not imported"
                    )
        with ws.db.transaction() as session:
            patient = patient_for(session, pseudonymiser, patient_found.original_id, summary)
            for study, chosen, reason, content, segs, seeds in prepared:
                row = study_for(
                    session,
                    patient,
                    study_uid=study.study_uid,
                    date=study.date,
                    modality=chosen.modality if chosen is not None else study.modality or None,
                    description=study.description[:256] or None,
                    source="dicom",
                    summary=summary,
                )
                for series in study.series:
                    is_chosen = chosen is not None and series.series_uid == chosen.series_uid
                    db_series = series_for(
                        session,
                        row,
                        series_uid=series.series_uid,
                        path=series.folder,
                        kind="dicom",
                        content_hash=content if is_chosen and content is not None else _light_hash(series),
                        chosen=is_chosen,
                        choice_reason=reason if is_chosen else None,
                        attributes=series_attributes(series),
                        summary=summary,
                    )
                    if is_chosen and not db_series.chosen:  # the rules now choose this series
                        for other in row.series:
                            other.chosen = other.id == db_series.id
                        db_series.choice_reason = reason
                    if not is_chosen:
                        continue
                    for seg, digest in segs:
                        add_segmentation(
                            session,
                            db_series,
                            path=seg.path,
                            source="dicom-seg",
                            content_hash=digest,
                            liver_label=ws.settings.liver_label,
                            tumor_labels=ws.settings.tumor_labels,
                            sop_instance_uid=seg.sop_instance_uid,
                            summary=summary,
                            pseudonym=patient.pseudonym,
                        )
                for seed in seeds:
                    _row, new = add_seed(session, row, **seed)
                    summary.seeds_new += int(new)
                    if new and seed["problem"]:
                        summary.warnings.append(
                            f"{patient.pseudonym}, study of {study.date.isoformat()}: {seed['origin']}: "
                            f"{seed['problem']}; not used as a seed"
                        )
                if chosen is None:
                    summary.warnings.append(
                        f"{patient.pseudonym}, study of {study.date.isoformat()}: no series to measure ({reason})"
                    )
            audit.record(
                session,
                "import-dicom",
                entity="patient",
                key=patient.pseudonym,
                details={"root_sha256": hash_json(str(tree.root))[:16], "studies": len(prepared)},
            )
    return summary
