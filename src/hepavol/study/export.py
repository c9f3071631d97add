"""``hepavol study export``: the per-patient cohort table, and per-lesion and per-time-point tables.

The cohort table has exactly the columns of :data:`hepavol.cohort.table.COLUMNS` (the input of
``hepavol cohort``), one row per eligible patient with an up-to-date analysis:

- ``baseline_date``/``early_date``: from the eligibility decision (baseline = first scan; early = the first scan
  3-6 months after it); ``early_*`` are empty when there is no early scan.
- ``baseline_volume_ml``/``early_volume_ml``: total liver tumour volume of those scans (mL);
  ``baseline_sld_mm``/``early_sld_mm``: RECIST 1.1 sum of target diameters (mm); ``lesion_count`` and
  ``liver_volume_ml``: at baseline.
- ``pfs_event``/``pfs_date``: 1 and the date of RECIST 1.1 progression; else 0 and the date of the last adequate
  scan (the last with an overall response other than NE; the baseline if none).
- ``ki67_percent``, ``cga_ug_l``, ``extra_abdominal``, ``grade``: from the clinical import (empty if unknown).
- ``baseline_target_volume_ml``/``early_target_volume_ml``: the RECIST 1.1 target lesions' volumes summed
  (tracked lesions; a target that disappeared counts 0); ``baseline_three_largest_diameter_sum_mm``/
  ``early_three_largest_diameter_sum_mm``: the longest axial diameters of the three largest liver metastases at
  baseline (by longest diameter, all of them when fewer) summed, and the same tracked lesions at the early scan
  (0 for one that disappeared). The optional columns of :data:`hepavol.cohort.table.OPTIONAL_COLUMNS`.
- ``month12_*``, ``month24_*``, ``month36_*`` (:data:`hepavol.cohort.table.YEARLY_COLUMNS`): the registry's yearly
  time points. The scan nearest to 12, 24 and 36 months after the baseline within ± 3 months (months = days /
  30.4375, both ends inclusive; the earlier of two equally near scans; :func:`yearly_scan`): its date, total
  liver tumour volume, target-lesion volume (as above), lesion count and RECIST 1.1 overall response. Empty when
  the patient had no scan in the window.

Patients appear under their pseudonym only. Patients that are eligible but not analysed, or whose inputs changed
since their analysis, are left out and listed in the returned summary (run ``hepavol study run`` first).
Tables are written atomically as CSV or Parquet (by the file suffix). When the study has a second reader, the
reader agreement of the exported read with theirs is written beside them as ``<stem>_agreement.json`` (the
results.json of ``hepavol study agreement``), in the same all-or-nothing set of files.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol._atomic import AtomicSet, write_bytes_atomic
from hepavol.cohort.table import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    YEARLY_COLUMNS,
    YEARLY_MONTHS,
    YEARLY_WINDOW_MONTHS,
)
from hepavol.errors import InputError
from hepavol.response.growth import DAYS_PER_MONTH
from hepavol.study import audit
from hepavol.study.models import (
    Analysis,
    ClinicalRecord,
    ImagingStudy,
    LesionMeasurement,
    Patient,
    ScanMeasurement,
    TimepointAssessment,
    Track,
)
from hepavol.study.runner import _job, current_inputs, latest_eligibility, stored_analysis
from hepavol.study.workspace import Workspace

__all__ = [
    "LESION_COLUMNS",
    "TIMEPOINT_COLUMNS",
    "ExportSummary",
    "cohort_rows",
    "export_tables",
    "write_table",
]

TIMEPOINT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "date",
    "days_from_baseline",
    "modality",
    "total_tumor_volume_ml",
    "liver_volume_ml",
    "hepatic_tumor_load_class",
    "lesion_count",
    "new_lesion_count",
    "sum_of_diameters_mm",
    "target_response",
    "non_target_response",
    "overall_response",
    "volume_change_from_baseline_percent",
    "volume_change_from_nadir_percent",
    "volumetric_response",
    "tgr_recist_percent_per_month",
    "tgr_volume_percent_per_month",
    "registration_liver_dice",
)

LESION_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "date",
    "lesion_id",
    "scan_lesion_id",
    "volume_ml",
    "long_axis_mm",
    "short_axis_mm",
    "max_diameter_3d_mm",
    "mean_hu",
    "sd_hu",
    "measurable",
    "in_liver",
    "touches_border",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
)


@dataclass(slots=True)
class ExportSummary:
    """What an export wrote, and which patients it left out and why."""

    files: list[Path] = field(default_factory=list)
    patients: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, reason)
    notes: list[str] = field(default_factory=list)  # e.g. a reader's patients measured now, not from study run
    agreement: Path | None = None  # <stem>_agreement.json, when written
    agreement_readers: tuple[str, str] | None = None  # (exported read, the other read)
    no_agreement: str | None = None  # why it was not written


Analysed = list[tuple[Patient, Any, Analysis]]


def _current_analyses(ws: Workspace, session: Session) -> tuple[Analysed, list[tuple[str, str]]]:
    """(patient, eligibility, analysis) of eligible patients with an up-to-date analysis; and those left out."""
    decisions = latest_eligibility(session)
    rows: Analysed = []
    left_out: list[tuple[str, str]] = []
    for patient in session.scalars(select(Patient).order_by(Patient.pseudonym)):
        decision = decisions.get(patient.id)
        if decision is None or not decision.eligible:
            continue
        scans, problems = current_inputs(
            session,
            patient,
            decision.baseline_date,
            accept_proposed=True,
            mixed_modalities=ws.settings.mixed_modalities,
        )
        if problems:
            left_out.append((patient.pseudonym, "; ".join(problems)))
            continue
        analysis = stored_analysis(session, _job(session, patient, scans, ws.settings))
        if analysis is None:
            latest = session.scalar(
                select(Analysis.id)
                .where(Analysis.patient_id == patient.id, Analysis.reader.is_(None))
                .order_by(Analysis.id.desc())
                .limit(1)
            )
            reason = "inputs changed since its analysis" if latest is not None else "not analysed"
            left_out.append((patient.pseudonym, reason + " (run hepavol study run)"))
            continue
        rows.append((patient, decision, analysis))
    return rows, left_out


#: The cohort table's columns as ``hepavol study export`` writes them: the required ones, then the optional ones.
COHORT_COLUMNS: tuple[str, ...] = COLUMNS + OPTIONAL_COLUMNS + YEARLY_COLUMNS


def _tracks(session: Session, analysis: Analysis) -> list[tuple[str, bool, dict[Any, Any]]]:
    tracks = session.scalars(select(Track).where(Track.analysis_id == analysis.id).order_by(Track.id)).all()
    return [(t.track_id, t.target, {p.study_date: p for p in t.points}) for t in tracks]


def lesion_sums(session: Session, analysis: Analysis, baseline: Any, early: Any) -> dict[str, float | None]:
    """The optional cohort columns of one analysis (:func:`lesion_sums_from_tracks` on its stored tracks)."""
    return lesion_sums_from_tracks(_tracks(session, analysis), baseline, early)


def yearly_scan(
    dates: Sequence[dt.date], baseline: dt.date, months: float, *, window_months: float = YEARLY_WINDOW_MONTHS
) -> dt.date | None:
    """The scan nearest to ``months`` after ``baseline`` within ± ``window_months`` (months = days / 30.4375,
    both ends inclusive; the earlier of two equally near scans), or ``None``.

    Examples
    --------
    12 months = 365.25 days, ± 3 months = ± 91.3125 days (274 to 456 days after the baseline):

    >>> b = dt.date(2020, 1, 1)
    >>> days = lambda *ds: [b + dt.timedelta(days=d) for d in ds]
    >>> yearly_scan(days(120, 300, 400), b, 12)  # 65.25 and 34.75 days off: the second
    datetime.date(2021, 2, 4)
    >>> yearly_scan(days(120, 273, 457), b, 12) is None  # 92.25 and 91.75 days off: outside
    True
    >>> yearly_scan(days(355, 375), b, 12)  # 10.25 and 9.75 days off
    datetime.date(2021, 1, 10)
    """
    target, half = months * DAYS_PER_MONTH, window_months * DAYS_PER_MONTH
    near = [(abs((d - baseline).days - target), d) for d in dates if abs((d - baseline).days - target) <= half]
    return min(near)[1] if near else None


def yearly_values(
    tps: dict[dt.date, Any], tracks: Sequence[tuple[str, bool, dict[Any, Any]]], baseline: dt.date
) -> dict[str, Any]:
    """The yearly columns (:data:`~hepavol.cohort.table.YEARLY_COLUMNS`) of one patient from its assessed scans
    (``tps``: date → :class:`~hepavol.study.models.TimepointAssessment`) and tracks."""
    out: dict[str, Any] = dict.fromkeys(YEARLY_COLUMNS)
    for months in YEARLY_MONTHS:
        date = yearly_scan(sorted(d for d in tps if d > baseline), baseline, months)
        if date is None:
            continue
        tp, prefix = tps[date], f"month{months}_"
        out[prefix + "date"] = date.isoformat()
        out[prefix + "volume_ml"] = tp.total_tumor_volume_ml
        out[prefix + "target_volume_ml"] = lesion_sums_from_tracks(tracks, baseline, date)[
            "early_target_volume_ml"
        ]
        out[prefix + "lesion_count"] = tp.lesion_count
        out[prefix + "recist_response"] = tp.overall_response
    return out


def lesion_sums_from_tracks(
    tracks: Sequence[tuple[str, bool, dict[Any, Any]]], baseline: Any, early: Any
) -> dict[str, float | None]:
    """Target-lesion volume and the three largest metastases' diameter sum at ``baseline`` and ``early``.

    ``tracks``: (track id, is target, {date: point}) with points that have ``volume_ml``, ``long_axis_mm``,
    ``fragments`` and ``merged_into`` (:class:`hepavol.study.models.TrackPoint`). As RECIST 1.1 counts lesions:
    a tracked lesion with no point on a date has disappeared (0); one merged into a lesion outside the group counts
    that lesion's value (once per receiving lesion); one merged into a lesion of the group counts 0 (the receiving
    lesion carries the merged size).

    Examples
    --------
    >>> from types import SimpleNamespace as P
    >>> b, e = "b", "e"
    >>> t1 = ("L1", True, {b: P(volume_ml=4.0, long_axis_mm=30.0, fragments=["1"], merged_into=None),
    ...                    e: P(volume_ml=0.0, long_axis_mm=0.0, fragments=[], merged_into="L3")})
    >>> t2 = ("L2", True, {b: P(volume_ml=2.0, long_axis_mm=20.0, fragments=["2"], merged_into=None)})
    >>> t3 = ("L3", False, {b: P(volume_ml=1.0, long_axis_mm=10.0, fragments=["3"], merged_into=None),
    ...                     e: P(volume_ml=6.0, long_axis_mm=35.0, fragments=["3"], merged_into=None)})
    >>> r = lesion_sums_from_tracks([t1, t2, t3], b, e)
    >>> r["baseline_target_volume_ml"], r["early_target_volume_ml"]  # L1 merged into non-target L3; L2 gone
    (6.0, 6.0)
    >>> r["baseline_three_largest_diameter_sum_mm"], r["early_three_largest_diameter_sum_mm"]  # L3 once
    (60.0, 35.0)
    """
    at_base = [(tid, target, pts) for tid, target, pts in tracks if baseline in pts]
    by_id = {tid: pts for tid, _target, pts in tracks}

    def total(group: Sequence[tuple[str, bool, dict[Any, Any]]], date: Any, attr: str) -> float:
        ids = {tid for tid, _t, _p in group}
        counted: set[str] = set()
        value = 0.0
        for _tid, _target, pts in group:
            point = pts.get(date)
            if point is None:
                continue
            if point.fragments:
                value += float(getattr(point, attr))
                continue
            into = point.merged_into
            if into is not None and into not in ids and into not in counted and date in by_id.get(into, {}):
                counted.add(into)
                value += float(getattr(by_id[into][date], attr))
        return value

    out: dict[str, float | None] = dict.fromkeys(OPTIONAL_COLUMNS)
    targets = [item for item in at_base if item[1]]
    if targets:
        out["baseline_target_volume_ml"] = total(targets, baseline, "volume_ml")
        if early is not None:
            out["early_target_volume_ml"] = total(targets, early, "volume_ml")
    if at_base:
        largest = sorted(at_base, key=lambda item: (-item[2][baseline].long_axis_mm, item[0]))[:3]
        out["baseline_three_largest_diameter_sum_mm"] = total(largest, baseline, "long_axis_mm")
        if early is not None:
            out["early_three_largest_diameter_sum_mm"] = total(largest, early, "long_axis_mm")
    return out


def _bool01(value: bool | None) -> int | None:
    return None if value is None else int(value)


def cohort_rows(ws: Workspace, session: Session) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The cohort table's rows (see the module docstring) and the patients left out."""
    analysed, left_out = _current_analyses(ws, session)
    return _cohort_rows(session, analysed, left_out), left_out


def _cohort_rows(session: Session, analysed: Analysed, left_out: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for patient, decision, analysis in analysed:
        tps = {
            tp.study_date: tp
            for tp in session.scalars(
                select(TimepointAssessment).where(TimepointAssessment.analysis_id == analysis.id)
            )
        }
        base = tps.get(decision.baseline_date)
        if base is None:
            left_out.append((patient.pseudonym, f"no assessment of the baseline scan {decision.baseline_date}"))
            continue
        early = tps.get(decision.early_date) if decision.early_date is not None else None
        if analysis.progression_date is not None:
            event, pfs_date = 1, analysis.progression_date
        else:
            adequate = [
                d for d, tp in tps.items() if d == base.study_date or tp.overall_response not in (None, "NE")
            ]
            event, pfs_date = 0, max(adequate)
        tracks = _tracks(session, analysis)
        clinical = session.scalar(select(ClinicalRecord).where(ClinicalRecord.patient_id == patient.id))
        study = session.scalar(select(ImagingStudy).where(ImagingStudy.id == base.study_id))
        modality = study.modality if study is not None else None
        out.append(_cohort_row(patient.pseudonym, modality, base, early, event, pfs_date, tps, tracks, clinical))
    return out


def _cohort_row(
    pseudonym: str,
    modality: str | None,
    base: Any,
    early: Any,
    event: int,
    pfs_date: dt.date,
    tps: dict[dt.date, Any],
    tracks: Sequence[tuple[str, bool, dict[Any, Any]]],
    clinical: ClinicalRecord | None,
) -> dict[str, Any]:
    """One cohort row from a patient's assessed scans (``base``, ``early``, ``tps``: objects with the
    :class:`~hepavol.study.models.TimepointAssessment` attributes) and tracks."""
    return {
        "patient_id": pseudonym,
        "modality": modality,
        "baseline_date": base.study_date.isoformat(),
        "early_date": None if early is None else early.study_date.isoformat(),
        "baseline_volume_ml": base.total_tumor_volume_ml,
        "early_volume_ml": None if early is None else early.total_tumor_volume_ml,
        "baseline_sld_mm": base.sum_of_diameters_mm,
        "early_sld_mm": None if early is None else early.sum_of_diameters_mm,
        "lesion_count": base.lesion_count,
        "liver_volume_ml": base.liver_volume_ml,
        "pfs_event": event,
        "pfs_date": pfs_date.isoformat(),
        "ki67_percent": clinical.ki67_percent if clinical else None,
        "cga_ug_l": clinical.cga_ug_l if clinical else None,
        "extra_abdominal": _bool01(clinical.extra_abdominal) if clinical else None,
        "grade": clinical.grade if clinical else None,
        **lesion_sums_from_tracks(tracks, base.study_date, None if early is None else early.study_date),
        **yearly_values(tps, tracks, base.study_date),
    }


def reader_tables(
    ws: Workspace, session: Session, reader: str, *, analysis: Any = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
    """The cohort, lesion and time-point rows of one reader's read, measured on that reader's segmentation
    versions (``analysis``, default :func:`hepavol.study.readers.analyse_reader`: the analyses ``study run``
    stored for the reader, and those not up to date measured now with its code, not stored), and the patients
    left out."""
    from types import SimpleNamespace

    from hepavol.study.readers import analyse_reader

    if analysis is None:
        analysis = analyse_reader(ws, reader)
    cohort: list[dict[str, Any]] = []
    lesions: list[dict[str, Any]] = []
    timepoints: list[dict[str, Any]] = []
    patients = {p.pseudonym: p for p in session.scalars(select(Patient))}
    for pseudonym, result in analysis.results.items():
        patient, decision = patients[pseudonym], analysis.decisions[pseudonym]
        studies = {s.study_date: s for s in patient.studies}
        tps: dict[dt.date, Any] = {}
        for tp in result["timepoints"]:
            day = dt.date.fromisoformat(tp["date"])
            values = {c: tp.get(c) for c in TIMEPOINT_COLUMNS[4:]}
            values["new_lesion_count"] = len(tp["new_lesion_ids"])
            values["registration_liver_dice"] = tp["liver_dice_after"]
            tps[day] = SimpleNamespace(study_date=day, **values)
        first = min(tps)
        for day, tp in sorted(tps.items()):
            study = studies.get(day)
            timepoints.append(
                {
                    "patient_id": pseudonym,
                    "date": day.isoformat(),
                    "days_from_baseline": (day - first).days,
                    "modality": study.modality if study is not None else None,
                    **{c: getattr(tp, c) for c in TIMEPOINT_COLUMNS[4:]},
                }
            )
        for (day, _tp), measurement, track_of in zip(
            sorted(tps.items()), result["measurements"], result["track_of"], strict=True
        ):
            for les in measurement["lesions"]:
                x, y, z = les["centroid_mm"]
                lesions.append(
                    {
                        "patient_id": pseudonym,
                        "date": day.isoformat(),
                        "lesion_id": track_of.get(les["lesion_id"]),
                        "scan_lesion_id": les["lesion_id"],
                        **{c: les[c] for c in ("volume_ml", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm",
                                               "mean_hu", "sd_hu")},
                        "measurable": int(les["measurable"]),
                        "in_liver": _bool01(les["in_liver"]),
                        "touches_border": int(les["touches_border"]),
                        "centroid_x_mm": x,
                        "centroid_y_mm": y,
                        "centroid_z_mm": z,
                    }
                )  # fmt: skip
        base = tps.get(decision.baseline_date) if decision.baseline_date is not None else None
        if base is None:
            analysis.left_out.append((pseudonym, f"no assessment of the baseline scan {decision.baseline_date}"))
            continue
        early = tps.get(decision.early_date) if decision.early_date is not None else None
        if result["progression_date"] is not None:
            event, pfs_date = 1, dt.date.fromisoformat(result["progression_date"])
        else:
            adequate = [
                d for d, tp in tps.items() if d == base.study_date or tp.overall_response not in (None, "NE")
            ]
            event, pfs_date = 0, max(adequate)
        tracks = [
            (
                t["lesion_id"],
                t["lesion_id"] in result["targets"],
                {
                    dt.date.fromisoformat(pt["date"]): SimpleNamespace(
                        volume_ml=pt["volume_ml"], long_axis_mm=pt["long_axis_mm"], fragments=pt["fragments"],
                        merged_into=pt["merged_into"],
                    )
                    for pt in t["points"]
                },
            )
            for t in result["tracks"]
        ]  # fmt: skip
        clinical = session.scalar(select(ClinicalRecord).where(ClinicalRecord.patient_id == patient.id))
        study = studies.get(base.study_date)
        modality = study.modality if study is not None else None
        cohort.append(_cohort_row(pseudonym, modality, base, early, event, pfs_date, tps, tracks, clinical))
    return cohort, lesions, timepoints, analysis.left_out


def timepoint_rows(session: Session, analysed: Analysed) -> list[dict[str, Any]]:
    """One row per scan of every exported patient (RECIST, volumetry, TGR)."""
    out = []
    for patient, _decision, analysis in analysed:
        tps = session.scalars(
            select(TimepointAssessment)
            .where(TimepointAssessment.analysis_id == analysis.id)
            .order_by(TimepointAssessment.study_date)
        ).all()
        if not tps:
            continue
        first = tps[0].study_date
        for tp in tps:
            study = session.get(ImagingStudy, tp.study_id)
            out.append(
                {
                    "patient_id": patient.pseudonym,
                    "date": tp.study_date.isoformat(),
                    "days_from_baseline": (tp.study_date - first).days,
                    "modality": study.modality if study is not None else None,
                    **{c: getattr(tp, c) for c in TIMEPOINT_COLUMNS[4:]},
                }
            )
    return out


def lesion_rows(session: Session, analysed: Analysed) -> list[dict[str, Any]]:
    """One row per lesion per scan of every exported patient (``lesion_id`` = tracked id, constant over time)."""
    out = []
    for patient, _decision, analysis in analysed:
        scans = session.scalars(
            select(ScanMeasurement).where(ScanMeasurement.analysis_id == analysis.id).order_by(ScanMeasurement.id)
        ).all()
        for scan in scans:
            study = session.get(ImagingStudy, scan.study_id)
            assert study is not None
            lesions = session.scalars(
                select(LesionMeasurement)
                .where(LesionMeasurement.scan_measurement_id == scan.id)
                .order_by(LesionMeasurement.id)
            )
            for les in lesions:
                x, y, z = les.centroid_mm
                out.append(
                    {
                        "patient_id": patient.pseudonym,
                        "date": study.study_date.isoformat(),
                        "lesion_id": les.track_id,
                        "scan_lesion_id": les.lesion_id,
                        "volume_ml": les.volume_ml,
                        "long_axis_mm": les.long_axis_mm,
                        "short_axis_mm": les.short_axis_mm,
                        "max_diameter_3d_mm": les.max_diameter_3d_mm,
                        "mean_hu": les.mean_hu,
                        "sd_hu": les.sd_hu,
                        "measurable": int(les.measurable),
                        "in_liver": _bool01(les.in_liver),
                        "touches_border": int(les.touches_border),
                        "centroid_x_mm": x,
                        "centroid_y_mm": y,
                        "centroid_z_mm": z,
                    }
                )
    return out


def table_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: str | os.PathLike[str]) -> bytes:
    """Rows as CSV (``.csv``, UTF-8) or Parquet (``.parquet``) bytes, by the suffix of ``path``."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns))
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        return buffer.getvalue().encode("utf-8")
    if suffix in (".parquet", ".pq"):
        out = io.BytesIO()
        frame.to_parquet(out, index=False)
        return out.getvalue()
    raise InputError(f"cannot write '{path}': give a .csv or .parquet file name.")


def write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Write rows as CSV (``.csv``) or Parquet (``.parquet``), atomically."""
    data = table_bytes(rows, columns, path)
    write_bytes_atomic(path, data)
    return Path(path)


def _beside(path: Path, kind: str) -> Path:
    return path.with_name(f"{path.stem}_{kind}{path.suffix}")


def export_tables(
    ws: Workspace,
    cohort: str | os.PathLike[str],
    *,
    lesions: str | os.PathLike[str] | None = None,
    timepoints: str | os.PathLike[str] | None = None,
    reader: str | None = None,
    agreement_with: str | None = None,
) -> ExportSummary:
    """Write the cohort table to ``cohort`` and the lesion and time-point tables (default: beside it, named
    ``<stem>_lesions`` and ``<stem>_timepoints`` with the same suffix).

    ``reader`` (default: ``[readers] primary_reader`` of ``study.toml``, else the study's own read) exports that
    reader's read: the study's own read (``study``) from the stored analyses of ``study run``, another reader's
    from the analyses ``study run`` stored for them (:func:`reader_tables`).

    When the study has a second reader (``agreement_with``, else the one other reader:
    :func:`hepavol.study.readers.agreement_partner`), the agreement of the exported read with theirs is written
    beside the tables as ``<stem>_agreement.json``, the results.json that ``hepavol study agreement --readers
    READ,OTHER`` writes, in the same set of files (all appear or none); ``hepavol cohort`` takes its
    repeatability from it. An earlier ``<stem>_agreement.json`` is removed when none is written (it would no
    longer describe the exported read).

    Raises
    ------
    InputError
        A bad file name, or a reader the study does not have.
    """
    from hepavol.cohort.uncertainty import agreement_beside
    from hepavol.study.readers import agreement_partner, analyse_reader, study_readers
    from hepavol.study.workspace import STUDY_READ

    who = (reader or ws.settings.primary_reader).strip()
    if who != STUDY_READ and who not in study_readers(ws):
        option = "--reader" if reader else "[readers] primary_reader in study.toml"
        raise InputError(
            f"{option}: unknown reader {who!r}; the readers of this study are {', '.join(study_readers(ws))} "
            f"('{STUDY_READ}' is the study's own read)."
        )
    path = Path(cohort)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"cannot write '{cohort}': give a .csv or .parquet file name.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot write '{cohort}': cannot create the folder '{path.parent}' ({exc.strerror})."
        ) from None
    summary = ExportSummary()
    partner, summary.no_agreement = agreement_partner(ws, who, agreement_with)
    agreement_path = agreement_beside(path)
    # the reads first, each in its own transaction (SQLite: the export's own transaction holds the write lock
    # from its first statement on)
    read = None if who == STUDY_READ else analyse_reader(ws, who)
    agreement = None
    if partner is not None:
        agreement = _agreement_json(ws, read or analyse_reader(ws, who), analyse_reader(ws, partner), summary)
    elif read is not None:
        summary.notes += [n for n in [read.describe_measured_now()] if n]
    with ws.db.transaction() as session:
        if read is None:
            analysed, summary.left_out = _current_analyses(ws, session)
            rows = _cohort_rows(session, analysed, summary.left_out)
            lesion_table, timepoint_table = lesion_rows(session, analysed), timepoint_rows(session, analysed)
        else:
            rows, lesion_table, timepoint_table, summary.left_out = reader_tables(ws, session, who, analysis=read)
        summary.patients = len(rows)
        tables = [
            (rows, COHORT_COLUMNS, path),
            (lesion_table, LESION_COLUMNS, Path(lesions) if lesions else _beside(path, "lesions")),
            (timepoint_table, TIMEPOINT_COLUMNS, Path(timepoints) if timepoints else _beside(path, "timepoints")),
        ]
        # The tables (and the agreement) are one set: written beside their targets first, the audit entry flushed
        # (a read-only database fails here, before any file appears), then renamed together; a failure leaves the
        # old files.
        with AtomicSet() as files:
            for table, columns, dest in tables:
                files.write_bytes(dest, table_bytes(table, columns, dest))
            if agreement is not None:
                files.write_bytes(agreement_path, agreement)
            written = [dest for _t, _c, dest in tables] + ([agreement_path] if agreement is not None else [])
            audit.record(
                session,
                "export",
                details={
                    "files": [_shown(Path(dest), ws.root) for dest in written],
                    "patients": summary.patients,
                    "left_out": len(summary.left_out),
                    **({} if who == STUDY_READ else {"reader": who}),
                    **({} if agreement is None else {"agreement": [who, partner]}),
                },
            )
            session.flush()
            summary.files = files.commit()
    if agreement is not None:
        summary.agreement, summary.agreement_readers = agreement_path, (who, str(partner))
    elif agreement_path.is_file():
        agreement_path.unlink()
        summary.notes.append(
            f"removed the earlier {agreement_path.name}: it described another read than this export's"
        )
    return summary


def _agreement_json(ws: Workspace, first: Any, second: Any, summary: ExportSummary) -> bytes | None:
    """The results.json of the agreement of two reads (:class:`hepavol.study.readers.ReaderAnalysis`), as
    ``hepavol study agreement`` computes it; None (``summary.no_agreement`` says why) when they share no scan."""
    from hepavol.agreement.analysis import analyse_agreement
    from hepavol.cohort._serialize import json_text
    from hepavol.study.eligibility import EARLY_WINDOW_DAYS
    from hepavol.study.readers import paired_reads

    summary.notes += [n for n in (first.describe_measured_now(), second.describe_measured_now()) if n]
    try:
        _rows, a, b = paired_reads(ws, first, second)
    except InputError as exc:
        summary.no_agreement = str(exc)
        return None
    return json_text(analyse_agreement(a, b, early_window_days=EARLY_WINDOW_DAYS).results()).encode("utf-8")


def _shown(path: Path, root: Path) -> str:
    """A file as the audit trail names it: relative to the study folder, else by its name only."""
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return path.name
