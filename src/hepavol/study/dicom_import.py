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
from hepavol.study.dicom_tree import SegFound, SelectionRules, SeriesFound, StudyFound, TreeScan, scan_dicom_tree
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
from hepavol.study.workspace import Workspace

__all__ = ["import_dicom_tree", "measured_series"]


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
        prepared: list[tuple[StudyFound, SeriesFound | None, str, str | None, Sequence[tuple[SegFound, str]]]] = []
        for study in patient_found.studies:  # hash outside the transaction
            series, reason = measured_series(study)
            content = None if series is None else hash_files(series.files, root=series.folder)
            own = (
                [] if series is None else [s for s in study.segs if series.series_uid in s.referenced_series_uids]
            )
            prepared.append((study, series, reason, content, [(s, hash_path(s.path)) for s in own]))
            for seg in study.segs:
                if series is None or series.series_uid not in seg.referenced_series_uids:
                    summary.warnings.append(
                        f"study of {study.date.isoformat()}: DICOM SEG '{seg.description}' references a series "
                        "that is not measured; not imported"
                    )
        with ws.db.transaction() as session:
            patient = patient_for(session, pseudonymiser, patient_found.original_id, summary)
            for study, chosen, reason, content, segs in prepared:
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
