"""Lesion seeds a site already has: RECIST lines (and points) that ``hepavol study segment`` grows lesions from.

Seeds come from DICOM SR TID 1500 linear measurements (picked up by ``study import`` from the DICOM tree, see
:mod:`hepavol.study.dicom_import`) and from a CSV (``hepavol study import-seeds SEEDS_CSV``) for reads made in
other tools. A seed belongs to a scan (imaging study) and is stored once (its ``seed_hash``: importing the same
seeds again adds nothing). A seed that cannot be used (its line is on a series with another frame of reference,
its SR names no image...) is stored with the reason in ``problem``, so that ``study segment`` reports it.

CSV columns, one row per lesion:

- ``patient_id`` (the original id, as in the imaging import) and ``date`` (YYYY-MM-DD, the scan's date);
- either ``x1,y1,z1,x2,y2,z2``: the two ends of the lesion's RECIST line (longest diameter, on one axial slice) in
  the scan's DICOM patient frame (LPS, mm), or ``slice1,row1,column1,slice2,row2,column2``: the same as voxel
  indices (0-based) of the scan's measured series; leave the second point empty for a seed point inside the
  lesion (``x1,y1,z1`` or ``slice1,row1,column1`` only);
- optional ``lesion_id``: two rows with the same id on one scan are one lesion (the longer line is used).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.hashing import hash_json
from hepavol.study.models import ImagingStudy, LesionSeed, Patient
from hepavol.study.table import read_table
from hepavol.study.workspace import Workspace

__all__ = ["INDEX_COLUMNS", "LPS_COLUMNS", "SeedSummary", "add_seed", "import_seed_table"]

LPS_COLUMNS = ("x1", "y1", "z1", "x2", "y2", "z2")
INDEX_COLUMNS = ("slice1", "row1", "column1", "slice2", "row2", "column2")


@dataclass(slots=True)
class SeedSummary:
    """What a seed import added."""

    seeds_new: int = 0
    seeds_seen: int = 0
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.seeds_seen} seed(s) ({self.seeds_new} new, {len(self.problems)} that cannot be used)"


def add_seed(
    session: Session,
    study: ImagingStudy,
    *,
    source: str,
    origin: str,
    kind: str,
    coordinates: str,
    points: list[list[float]],
    lesion_ref: str | None = None,
    referenced_series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    problem: str | None = None,
) -> tuple[LesionSeed, bool]:
    """Store a seed of a scan unless the same one is stored (in the caller's transaction); (row, is_new)."""
    digest = hash_json(
        {
            "source": source,
            "kind": kind,
            "coordinates": coordinates,
            "points": [[round(v, 4) for v in p] for p in points],
            "lesion_ref": lesion_ref,
            "series": referenced_series_uid,
            "problem": problem,
        }
    )
    same = session.scalar(
        select(LesionSeed).where(LesionSeed.study_id == study.id, LesionSeed.seed_hash == digest)
    )
    if same is not None:
        return same, False
    seed = LesionSeed(
        patient_id=study.patient_id,
        study_id=study.id,
        source=source,
        origin=origin,
        lesion_ref=lesion_ref,
        kind=kind,
        coordinates=coordinates,
        points_lps_mm=points,
        referenced_series_uid=referenced_series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        problem=problem,
        seed_hash=digest,
    )
    session.add(seed)
    session.flush()
    return seed, True


def _numbers(row: dict[str, str], columns: tuple[str, ...], where: str) -> list[list[float]]:
    values: list[float | None] = []
    for name in columns:
        text = (row.get(name) or "").strip()
        if not text:
            values.append(None)
            continue
        try:
            v = float(text)
        except ValueError:
            raise InputError(f"{where}: {name} '{text}' is not a number.") from None
        if not math.isfinite(v):
            raise InputError(f"{where}: {name} '{text}' is not a finite number.")
        values.append(v)
    first, second = values[:3], values[3:]
    if any(v is None for v in first):
        missing = [n for n, v in zip(columns[:3], first) if v is None]
        raise InputError(f"{where}: {', '.join(missing)} empty; a seed needs at least its first point.")
    if all(v is None for v in second):
        return [[float(v) for v in first if v is not None]]
    if any(v is None for v in second):
        missing = [n for n, v in zip(columns[3:], second) if v is None]
        raise InputError(
            f"{where}: {', '.join(missing)} empty: give both ends of the RECIST line, or leave "
            f"{', '.join(columns[3:])} all empty for a seed point."
        )
    return [[float(v) for v in first if v is not None], [float(v) for v in second if v is not None]]


def import_seed_table(ws: Workspace, path: str | os.PathLike[str]) -> SeedSummary:
    """Import the seeds of a CSV (module docstring), all in one transaction.

    Raises
    ------
    InputError
        Missing columns, both coordinate sets or neither, bad numbers, a half-given line, unknown patient or date.
    """
    p = Path(path)
    table = read_table(p, "seed table")
    has_lps = all(c in table.keys for c in LPS_COLUMNS[:3])
    has_index = all(c in table.keys for c in INDEX_COLUMNS[:3])
    usage = (
        "a seed table has patient_id,date and either x1,y1,z1,x2,y2,z2 (LPS mm) or slice1,row1,column1,slice2,"
        "row2,column2 (voxel indices of the measured series), optionally lesion_id"
    )
    table.require(("patient_id", "date"), usage)
    if has_lps == has_index:
        which = "both" if has_lps else "neither"
        raise InputError(
            f"{p}: the table has {which} x1,y1,z1 (LPS mm) and slice1,row1,column1 (voxel indices); {usage}."
        )
    columns = LPS_COLUMNS if has_lps else INDEX_COLUMNS
    coordinates = "lps" if has_lps else "index"
    rows: list[tuple[str, str, dt.date, list[list[float]], str | None]] = []
    for line, row in table.records():
        where = f"{p.name}, line {line}"
        try:
            day = dt.date.fromisoformat(row["date"].strip())
        except ValueError:
            raise InputError(f"{where}: date '{row['date']}' is not YYYY-MM-DD.") from None
        points = _numbers(row, columns, where)
        rows.append((where, row["patient_id"].strip(), day, points, (row.get("lesion_id") or "").strip() or None))
    if not rows:
        raise InputError(f"{p}: no seeds (the table has only a header).")
    pseudonymiser = ws.pseudonymiser()
    summary = SeedSummary()
    with ws.db.transaction() as session:
        per_patient: dict[str, int] = {}
        for where, pid, day, points, lesion in rows:
            pseudonym = pseudonymiser.pseudonym(pid)
            patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
            if patient is None:
                raise InputError(f"{where}: patient '{pid}' is not in the study; import its scans first.")
            study = next((s for s in patient.studies if s.study_date == day), None)
            if study is None:
                dates = ", ".join(s.study_date.isoformat() for s in patient.studies) or "none"
                raise InputError(f"{where}: {pseudonym} has no scan on {day.isoformat()} (scans: {dates}).")
            _seed, new = add_seed(
                session,
                study,
                source="csv",
                origin=where,
                kind="line" if len(points) == 2 else "point",
                coordinates=coordinates,
                points=points,
                lesion_ref=lesion,
            )
            summary.seeds_seen += 1
            summary.seeds_new += int(new)
            per_patient[pseudonym] = per_patient.get(pseudonym, 0) + int(new)
        for pseudonym, n in per_patient.items():
            audit.record(session, "import-seeds", entity="patient", key=pseudonym,
                         details={"source": "csv", "new": n, "table_sha256": hash_json(p.name)[:16]})  # fmt: skip
    return summary


def seed_dict(seed: LesionSeed) -> dict[str, Any]:
    """A seed as the segmentation task gets it (JSON-ready)."""
    return {
        "seed_pk": seed.id,
        "source": seed.source,
        "origin": seed.origin,
        "kind": seed.kind,
        "coordinates": seed.coordinates,
        "points": [list(map(float, p)) for p in seed.points_lps_mm],
        "lesion_ref": seed.lesion_ref,
        "series_uid": seed.referenced_series_uid,
    }
