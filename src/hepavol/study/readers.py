"""Each reader's read of a study, measured apart: the paired-measurement table of ``hepavol study agreement``.

A study's readers are the study's own read (``study``: the active segmentations ``study run`` measures) and every
reader with segmentation versions of their own (``read_by``: a blinded read saved in the review app, or masks
imported with ``hepavol study import-seg --reader NAME``; a repeated read of reader ``A`` is named ``A#2``). Reads
are never mixed: a reader's scan is measured on the head of that reader's own chain only, and a scan the reader has
no version of is a scan they did not read. ``[readers] primary_reader`` in ``study.toml`` names the read that
``study export`` and ``study agreement`` take by default (the study's own read unless set).

Each eligible patient is measured per reader with the code of ``study run``
(:func:`hepavol.study.runner.analyse_patient`: measure every scan, register, track, RECIST 1.1) on the scans from
the baseline on that the reader read. Targets: the study's (reviewed or automatic) for the study's read; a blinded
reader's own choice (:func:`hepavol.study.second_reads.record_second_read_targets`), else the same automatic rule
on their baseline segmentation.

``study run`` stores each named reader's analysis (``analyses.reader``; :func:`reader_job` is the task, the
reader's own targets and the reader's name part of its ``input_hash``). :func:`analyse_reader` takes a stored
analysis whose inputs are current (:func:`stored_result` reads it back as the run computed it) and measures only
the patients whose stored analysis is missing or out of date, without storing them (it says which).

Lesion ids in the table (:mod:`hepavol.agreement.reads`) must name the same lesion for both readers: the second
reader's tracks are matched to the first's one to one, nearest centroid first (in the baseline frame, on the date
both tracks start, within the study's ``max_distance_mm``); an unmatched lesion of the second reader keeps its
track id prefixed with the reader's name (``B:L4``), so it pairs with nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.agreement.reads import LesionRead, ReaderReads, base_reader, reads_from_rows
from hepavol.errors import InputError
from hepavol.study.models import (
    ACCEPTED,
    Analysis,
    EligibilityDecision,
    ImagingStudy,
    LesionMeasurement,
    Patient,
    ScanMeasurement,
    Segmentation,
    Series,
    TimepointAssessment,
    Track,
)
from hepavol.study.workspace import STUDY_READ, Workspace

__all__ = [
    "READS_COLUMNS",
    "ReaderAnalysis",
    "StudyAgreement",
    "agreement_partner",
    "agreement_reads",
    "analyse_reader",
    "check_reader_name",
    "choose_readers",
    "named_readers",
    "paired_reads",
    "reader_job",
    "stored_result",
    "study_agreement",
    "study_readers",
]

#: The columns of ``DIR/reads.csv`` (the input table of ``hepavol agreement``).
READS_COLUMNS = ("patient_id", "date", "reader", "lesion_id", "volume_ml", "long_axis_mm", "target")


def check_reader_name(name: str) -> str:
    """A reader's name as given on the command line, checked (stripped; no comma; not the study's own read).

    Raises
    ------
    InputError
        Empty, with a comma, longer than 128 characters, or ``study``.
    """
    text = name.strip()
    if not text or "," in text or len(text) > 128:
        raise InputError(
            f"reader name {name!r} is not valid: give a name of 1-128 characters without commas (e.g. B, or A#2 "
            "for reader A's repeated read)."
        )
    if text == STUDY_READ:
        raise InputError(
            f"reader name {STUDY_READ!r} is the study's own read: import its masks without --reader, or give the "
            "second reader another name."
        )
    return text


def study_readers(ws: Workspace) -> list[str]:
    """The study's readers: ``study`` (when any scan has an active segmentation) then the named readers, sorted."""
    with ws.db.transaction() as session:
        named = sorted(
            {
                str(r)
                for r in session.scalars(select(Segmentation.read_by).where(Segmentation.read_by.is_not(None)))
            }
        )
        own = session.scalar(select(Segmentation.id).where(Segmentation.active.is_(True)).limit(1))
    return ([STUDY_READ] if own is not None else []) + named


def named_readers(ws: Workspace) -> list[str]:
    """The study's named readers (every reader but the study's own read), sorted: the reads ``study run`` adds."""
    return [r for r in study_readers(ws) if r != STUDY_READ]


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def choose_readers(
    ws: Workspace, *, readers: Sequence[str] | None = None, repeat: str | None = None
) -> tuple[str, str]:
    """The two reads to compare: ``readers`` (two names), ``repeat`` (``A`` and ``A#2``), or by default the
    primary reader and the one other reader of the study.

    Raises
    ------
    InputError
        Both options, an unknown reader, one reader only, or more than two and none chosen.
    """
    names = study_readers(ws)
    primary = ws.settings.primary_reader

    def known(name: str, option: str) -> str:
        if name not in names:
            raise InputError(
                f"{option}: unknown reader {name!r}; the readers of this study are {_shown(names)} ('{STUDY_READ}' "
                "is the study's own read). Check the spelling, or import that reader's masks with hepavol study "
                "import-seg --reader NAME."
            )
        return name

    if readers is not None and repeat is not None:
        raise InputError("give either --readers A,B or --repeat A, not both.")
    if repeat is not None:
        first = known(repeat.strip(), "--repeat")
        second = f"{first}#2"
        if second not in names:
            raise InputError(
                f"--repeat {first}: no repeated read {second!r} in this study (readers: {_shown(names)}); import it "
                f"with hepavol study import-seg TABLE --reader '{second}'."
            )
        return first, second
    if readers is not None:
        chosen = [r.strip() for r in readers if r.strip()]
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise InputError(f"--readers needs two different reader names, e.g. --readers study,B; got {chosen}.")
        return known(chosen[0], "--readers"), known(chosen[1], "--readers")
    if len(names) < 2:
        raise InputError(
            f"this study has one reader only ({_shown(names)}): agreement needs a second read of the same scans. "
            "Import a second reader's masks with hepavol study import-seg TABLE --reader NAME, or read blinded in "
            "the review app (hepavol study serve --blinded --reader NAME)."
        )
    known(primary, "[readers] primary_reader in study.toml")
    others = [n for n in names if n != primary and base_reader(n) == n]
    if len(others) != 1:
        raise InputError(
            f"this study has {len(names)} readers ({_shown(names)}); choose two with --readers A,B (or a repeated "
            "read with --repeat A)."
        )
    return primary, others[0]


@dataclass(slots=True)
class ReaderAnalysis:
    """One reader's analysis of the eligible patients they read (``results``: pseudonym → the run's result)."""

    reader: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[str, EligibilityDecision] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, reason)
    stored: list[str] = field(default_factory=list)  # patients taken from the analysis study run stored
    measured_now: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, why): measured, not stored

    def describe_measured_now(self) -> str | None:
        """One line on the patients measured now because their stored analysis is missing or out of date."""
        if not self.measured_now:
            return None
        who = "the study's own read" if self.reader == STUDY_READ else f"reader {self.reader}"
        shown = ", ".join(f"{p} ({why})" for p, why in self.measured_now)
        return (
            f"{who}: {len(self.measured_now)} patient(s) measured now, their stored analysis was not up to date: "
            f"{shown}; run hepavol study run to store them"
        )


def _reader_scans(
    session: Session, patient: Patient, since: dt.date, reader: str, *, mixed_modalities: bool = False
) -> list[Any]:
    """A named reader's scans of a patient from ``since`` on: the head of their own chain on each chosen series
    (scans of another modality than the first one's left out unless ``mixed_modalities``, as ``study run``)."""
    from hepavol.study.runner import scan_modality, segmentation_input

    scans = []
    studies = session.scalars(
        select(ImagingStudy).where(ImagingStudy.patient_id == patient.id).order_by(ImagingStudy.study_date)
    )
    first_modality: str | None = None
    for study in studies:
        if study.study_date < since:
            continue
        modality = scan_modality(study)
        if first_modality is None:
            first_modality = modality
        elif modality != first_modality and not mixed_modalities:
            continue
        series: Series | None = next((s for s in study.series if s.chosen), None)
        if series is None:
            continue
        own = [g for g in series.segmentations if g.read_by == reader]
        if not own:
            continue
        seg = own[-1]
        scans.append(segmentation_input(study, series, seg, ACCEPTED))
    return scans


def reader_job(
    session: Session, settings: Any, patient: Patient, decision: EligibilityDecision, reader: str
) -> tuple[Any, str | None]:
    """The task of measuring named ``reader``'s read of an eligible patient (a
    :class:`~hepavol.study.runner.PatientJob` with ``reader`` set), or None and why the reader's read cannot be
    measured (no segmentation of the baseline scan: a patient they did not read).

    Its ``input_hash`` covers the reader's scans (the heads of their own chains), the study's settings, the
    reader's own target choice (``reader_targets``: :func:`hepavol.study.second_reads.record_second_read_targets`)
    and the reader's name.
    """
    from hepavol.study.hashing import hash_json
    from hepavol.study.runner import PatientJob
    from hepavol.study.second_reads import _latest_targets

    base = decision.baseline_date
    scans = (
        []
        if base is None
        else _reader_scans(session, patient, base, reader, mixed_modalities=settings.mixed_modalities)
    )
    if not scans or scans[0].date != base:
        return None, f"{reader} has no segmentation of the baseline scan {base}"
    parameters = settings.run_parameters()
    chosen = _latest_targets(session, patient.id, reader)
    if chosen is not None and isinstance(chosen.new_value, list):
        parameters["reader_targets"] = [str(t) for t in chosen.new_value]
    digest = hash_json({"scans": [s.key() for s in scans], "parameters": parameters, "reader": reader})
    job = PatientJob(
        patient_pk=patient.id,
        pseudonym=patient.pseudonym,
        scans=tuple(scans),
        parameters=parameters,
        input_hash=digest,
        reader=reader,
    )
    return job, None


def stored_result(session: Session, analysis: Analysis) -> dict[str, Any]:
    """A stored analysis read back in the shape :func:`hepavol.study.runner.analyse_patient` returns it (the keys
    this module and :func:`hepavol.study.export.reader_tables` use: time points, per-scan measurements with their
    lesions, each scan's lesion → track, tracks with their points, targets, progression date), from the rows
    ``study run`` wrote."""
    followup_tps = {tp["date"]: tp for tp in (analysis.result or {}).get("timepoints", [])}
    timepoints = []
    for tp in session.scalars(
        select(TimepointAssessment)
        .where(TimepointAssessment.analysis_id == analysis.id)
        .order_by(TimepointAssessment.study_date)
    ):
        day = tp.study_date.isoformat()
        timepoints.append(
            {
                "date": day,
                **{c: getattr(tp, c) for c in _TIMEPOINT_FIELDS},
                "new_lesion_ids": list(followup_tps.get(day, {}).get("new_lesion_ids", [])),
                "liver_dice_after": tp.registration_liver_dice,
            }
        )
    measurements, track_of = [], []
    for scan in session.scalars(
        select(ScanMeasurement).where(ScanMeasurement.analysis_id == analysis.id).order_by(ScanMeasurement.id)
    ):
        lesions = list(
            session.scalars(
                select(LesionMeasurement)
                .where(LesionMeasurement.scan_measurement_id == scan.id)
                .order_by(LesionMeasurement.id)
            )
        )
        measurements.append(
            {
                **{c: getattr(scan, c) for c in _SCAN_FIELDS},
                "lesions": [{c: getattr(les, c) for c in _LESION_FIELDS} for les in lesions],
            }
        )
        track_of.append({les.lesion_id: les.track_id for les in lesions if les.track_id is not None})
    tracks = [
        {
            "lesion_id": t.track_id,
            "tracking_uid": t.tracking_uid,
            "status": t.status,
            "target": t.target,
            "points": [
                {"date": p.study_date.isoformat(), **{c: getattr(p, c) for c in _POINT_FIELDS}} for p in t.points
            ],
        }
        for t in session.scalars(select(Track).where(Track.analysis_id == analysis.id).order_by(Track.id))
    ]
    return {
        "followup": analysis.result,
        "timepoints": timepoints,
        "tracks": tracks,
        "measurements": measurements,
        "track_of": track_of,
        "best_overall_response": analysis.best_overall_response,
        "progression_date": None if analysis.progression_date is None else analysis.progression_date.isoformat(),
        "targets": list(analysis.targets),
        "warnings": list(analysis.warnings),
    }


_TIMEPOINT_FIELDS = (
    "total_tumor_volume_ml",
    "liver_volume_ml",
    "hepatic_tumor_load_class",
    "lesion_count",
    "sum_of_diameters_mm",
    "target_response",
    "non_target_response",
    "overall_response",
    "volume_change_from_baseline_percent",
    "volume_change_from_nadir_percent",
    "volumetric_response",
    "tgr_recist_percent_per_month",
    "tgr_volume_percent_per_month",
)
_SCAN_FIELDS = (
    "liver_volume_ml",
    "total_tumor_volume_ml",
    "tumor_burden_percent",
    "hepatic_tumor_load_class",
    "lesion_count",
    "warnings",
)
_LESION_FIELDS = (
    "lesion_id",
    "label",
    "volume_ml",
    "voxel_count",
    "long_axis_mm",
    "short_axis_mm",
    "slice_index",
    "long_axis_endpoints_mm",
    "short_axis_endpoints_mm",
    "max_diameter_3d_mm",
    "centroid_mm",
    "mean_hu",
    "sd_hu",
    "measurable",
    "in_liver",
    "touches_border",
)
_POINT_FIELDS = ("volume_ml", "long_axis_mm", "short_axis_mm", "centroid_mm", "fragments", "merged_into")


def analyse_reader(ws: Workspace, reader: str) -> ReaderAnalysis:
    """Every eligible patient's analysis on ``reader``'s segmentations (module docstring): the one ``study run``
    stored when its inputs are current, else measured now (listed in ``measured_now``, not stored); patients the
    reader could not be measured on (no baseline read, a scan not ready) are listed in ``left_out``."""
    from hepavol.study.runner import (
        _job,
        analyse_job,
        current_inputs,
        latest_eligibility,
        of_read,
        stored_analysis,
    )

    out = ReaderAnalysis(reader)
    found: dict[str, dict[str, Any] | None] = {}
    missing: list[tuple[Any, str]] = []
    with ws.db.transaction() as session:
        decisions = latest_eligibility(session)
        for patient in session.scalars(select(Patient).order_by(Patient.pseudonym)):
            decision = decisions.get(patient.id)
            if decision is None or not decision.eligible or decision.baseline_date is None:
                continue
            session.expunge(decision)
            out.decisions[patient.pseudonym] = decision
            if reader == STUDY_READ:
                scans, problems = current_inputs(
                    session, patient, decision.baseline_date, mixed_modalities=ws.settings.mixed_modalities
                )
                if problems:
                    out.left_out.append((patient.pseudonym, "; ".join(problems)))
                    continue
                job = _job(session, patient, scans, ws.settings)
            else:
                job, why = reader_job(session, ws.settings, patient, decision, reader)
                if job is None:
                    out.left_out.append((patient.pseudonym, str(why)))
                    continue
            stored = stored_analysis(session, job)
            if stored is not None:
                found[patient.pseudonym] = stored_result(session, stored)
                out.stored.append(patient.pseudonym)
                continue
            earlier = session.scalar(
                select(Analysis.id).where(Analysis.patient_id == patient.id, of_read(job.reader)).limit(1)
            )
            found[patient.pseudonym] = None
            missing.append((job, "inputs changed since its analysis" if earlier is not None else "not analysed"))
    for job, why in missing:
        found[job.pseudonym] = analyse_job(job)
        out.measured_now.append((job.pseudonym, why))
    out.results = {p: r for p, r in found.items() if r is not None}
    return out


def _lesion_rows(pseudonym: str, reader: str, result: dict[str, Any], rename: dict[str, str]) -> list[LesionRead]:
    targets = set(result["targets"])
    dates = [dt.date.fromisoformat(tp["date"]) for tp in result["timepoints"]]
    rows: dict[dt.date, list[LesionRead]] = {d: [] for d in dates}
    for track in result["tracks"]:
        for point in track["points"]:
            day = dt.date.fromisoformat(point["date"])
            rows.setdefault(day, []).append(
                LesionRead(
                    patient_id=pseudonym,
                    date=day,
                    reader=reader,
                    lesion_id=rename.get(track["lesion_id"], track["lesion_id"]),
                    volume_ml=float(point["volume_ml"]),
                    long_axis_mm=float(point["long_axis_mm"]),
                    target=track["lesion_id"] in targets,
                )
            )
    out: list[LesionRead] = []
    for day in sorted(rows):
        found = rows[day]
        if not found:  # read, no lesion found
            out.append(LesionRead(patient_id=pseudonym, date=day, reader=reader, lesion_id="", volume_ml=0.0,
                                  long_axis_mm=None, target=None))  # fmt: skip
        out.extend(found)
    return out


def _start(track: dict[str, Any]) -> tuple[str, tuple[float, float, float] | None]:
    first = track["points"][0] if track["points"] else {"date": "", "centroid_mm": None}
    c = first.get("centroid_mm")
    return str(first["date"]), None if c is None else (float(c[0]), float(c[1]), float(c[2]))


def match_tracks(
    first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]], *, reader: str, max_distance_mm: float
) -> dict[str, str]:
    """The second reader's track ids renamed to the first's (module docstring): second id → id in the table."""
    pairs = []
    for a in first:
        day_a, ca = _start(a)
        for b in second:
            day_b, cb = _start(b)
            if day_a == day_b and ca is not None and cb is not None:
                distance = math.dist(ca, cb)
                if distance <= max_distance_mm:
                    pairs.append((distance, a["lesion_id"], b["lesion_id"]))
    rename: dict[str, str] = {}
    used: set[str] = set()
    for _distance, ida, idb in sorted(pairs):
        if ida not in used and idb not in rename:
            used.add(ida)
            rename[idb] = ida
    for b in second:
        rename.setdefault(b["lesion_id"], f"{reader}:{b['lesion_id']}")
    return rename


def agreement_reads(
    ws: Workspace, first: ReaderAnalysis, second: ReaderAnalysis
) -> tuple[list[LesionRead], ReaderReads, ReaderReads]:
    """The paired-measurement rows of two readers' analyses (first reader's rows first) and their reads."""
    rows_a: list[LesionRead] = []
    rows_b: list[LesionRead] = []
    for pseudonym, result in first.results.items():
        rows_a += _lesion_rows(pseudonym, first.reader, result, {})
    for pseudonym, result in second.results.items():
        theirs = first.results.get(pseudonym)
        rename = (
            match_tracks(theirs["tracks"], result["tracks"], reader=second.reader,
                         max_distance_mm=ws.settings.max_distance_mm)
            if theirs is not None
            else {t["lesion_id"]: f"{second.reader}:{t['lesion_id']}" for t in result["tracks"]}
        )  # fmt: skip
        rows_b += _lesion_rows(pseudonym, second.reader, result, rename)
    a = reads_from_rows(first.reader, rows_a, targets_marked=True, source="the study")
    b = reads_from_rows(second.reader, rows_b, targets_marked=True, source="the study")
    return rows_a + rows_b, a, b


def paired_reads(
    ws: Workspace, first: ReaderAnalysis, second: ReaderAnalysis
) -> tuple[list[LesionRead], ReaderReads, ReaderReads]:
    """:func:`agreement_reads`, checked to have scans read by both.

    Raises
    ------
    InputError
        The two reads have no scan in common.
    """
    rows, a, b = agreement_reads(ws, first, second)
    if not set(a.scans) & set(b.scans):
        raise InputError(
            f"readers {first.reader!r} ({len(a.scans)} scans of eligible patients) and {second.reader!r} "
            f"({len(b.scans)} scans) have no scan in common: agreement needs the same scans read by both. Import "
            "the second reader's masks of the same scans (hepavol study import-seg TABLE --reader NAME)."
        )
    return rows, a, b


def agreement_partner(ws: Workspace, reader: str, chosen: str | None = None) -> tuple[str | None, str | None]:
    """The read ``study export`` compares ``reader``'s with (``<stem>_agreement.json``): ``chosen``
    (``--agreement-with``), else the study's one other reader (a repeated read ``A#2`` is not another reader).
    Returns the reader, or None and why no agreement is written (one reader only, or several to choose from).

    Raises
    ------
    InputError
        ``chosen`` is not a reader of the study, or is ``reader`` itself.
    """
    names = study_readers(ws)
    if chosen is not None:
        name = chosen.strip()
        if name not in names:
            raise InputError(
                f"--agreement-with: unknown reader {name!r}; the readers of this study are {_shown(names)} "
                f"('{STUDY_READ}' is the study's own read)."
            )
        if name == reader:
            raise InputError(f"--agreement-with {name}: that is the exported read itself; give the other reader.")
        return name, None
    others = [n for n in names if n != reader and base_reader(n) == n]
    if not others:
        return None, f"the study has one reader only ({_shown(names)})"
    if len(others) > 1:
        return None, (
            f"the study has {len(others)} other readers besides {reader} ({_shown(others)}): choose one with "
            "--agreement-with NAME"
        )
    return others[0], None


@dataclass(frozen=True, slots=True)
class StudyAgreement:
    """What :func:`study_agreement` wrote: the agreement run and the table of paired measurements."""

    run: Any  # hepavol.agreement.pipeline.AgreementRun
    reads_csv: Path
    left_out: tuple[tuple[str, str, str], ...]  # (reader, pseudonym, reason)
    notes: tuple[str, ...] = ()  # a read's patients measured now (their stored analysis not up to date)


def study_agreement(
    ws: Workspace,
    out_dir: str | os.PathLike[str],
    *,
    readers: Sequence[str] | None = None,
    repeat: str | None = None,
    pdf: bool = True,
    use_chromium: bool = True,
    early_window_days: tuple[int, int] | None = None,
) -> StudyAgreement:
    """Measure two reads of the study and run ``hepavol agreement``'s analysis on them: ``DIR/reads.csv`` (the
    paired-measurement table) and everything :func:`hepavol.agreement.pipeline.run_agreement` writes.

    Raises
    ------
    InputError
        One reader only, an unknown reader, or two reads with no scan in common.
    """
    from hepavol._atomic import write_text_atomic
    from hepavol.agreement.pipeline import run_agreement
    from hepavol.cohort._serialize import csv_text
    from hepavol.study.eligibility import EARLY_WINDOW_DAYS

    name_a, name_b = choose_readers(ws, readers=readers, repeat=repeat)
    first, second = analyse_reader(ws, name_a), analyse_reader(ws, name_b)
    rows, a, b = paired_reads(ws, first, second)
    run = run_agreement(
        a,
        b,
        out_dir,
        early_window_days=early_window_days or EARLY_WINDOW_DAYS,
        pdf=pdf,
        use_chromium=use_chromium,
        source_name=f"study {ws.root.name}",
    )
    table = [
        {
            "patient_id": r.patient_id,
            "date": r.date.isoformat(),
            "reader": r.reader,
            "lesion_id": r.lesion_id,
            "volume_ml": r.volume_ml if r.lesion_id else None,
            "long_axis_mm": r.long_axis_mm,
            "target": None if r.target is None else ("yes" if r.target else "no"),
        }
        for r in rows
    ]
    reads_csv = Path(out_dir) / "reads.csv"
    write_text_atomic(reads_csv, csv_text(table, READS_COLUMNS))
    left = tuple((x.reader, p, why) for x in (first, second) for p, why in x.left_out)
    notes = tuple(n for n in (first.describe_measured_now(), second.describe_measured_now()) if n)
    return StudyAgreement(run=run, reads_csv=reads_csv, left_out=left, notes=notes)
