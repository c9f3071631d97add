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
from hepavol.study.models import ACCEPTED, EligibilityDecision, ImagingStudy, Patient, Segmentation, Series
from hepavol.study.workspace import STUDY_READ, Workspace

__all__ = [
    "READS_COLUMNS",
    "ReaderAnalysis",
    "StudyAgreement",
    "agreement_reads",
    "analyse_reader",
    "check_reader_name",
    "choose_readers",
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


def analyse_reader(ws: Workspace, reader: str) -> ReaderAnalysis:
    """Measure every eligible patient on ``reader``'s segmentations (module docstring); patients the reader
    could not be measured on (no baseline read, a scan not ready) are listed in ``left_out``."""
    from hepavol.study.hashing import hash_json
    from hepavol.study.runner import PatientJob, _job, analyse_patient, current_inputs, latest_eligibility
    from hepavol.study.second_reads import _latest_targets

    out = ReaderAnalysis(reader)
    jobs: list[tuple[PatientJob, list[str] | None]] = []
    with ws.db.transaction() as session:
        decisions = latest_eligibility(session)
        for patient in session.scalars(select(Patient).order_by(Patient.pseudonym)):
            decision = decisions.get(patient.id)
            if decision is None or not decision.eligible or decision.baseline_date is None:
                continue
            base = decision.baseline_date
            session.expunge(decision)
            out.decisions[patient.pseudonym] = decision
            if reader == STUDY_READ:
                scans, problems = current_inputs(
                    session, patient, base, mixed_modalities=ws.settings.mixed_modalities
                )
                if problems:
                    out.left_out.append((patient.pseudonym, "; ".join(problems)))
                    continue
                jobs.append((_job(session, patient, scans, ws.settings), None))
                continue
            scans = _reader_scans(session, patient, base, reader, mixed_modalities=ws.settings.mixed_modalities)
            if not scans or scans[0].date != base:
                out.left_out.append(
                    (patient.pseudonym, f"{reader} has no segmentation of the baseline scan {base}")
                )
                continue
            chosen = _latest_targets(session, patient.id, reader)
            stored = chosen.new_value if chosen is not None and isinstance(chosen.new_value, list) else None
            parameters = ws.settings.run_parameters()
            digest = hash_json({"scans": [s.key() for s in scans], "parameters": parameters, "reader": reader})
            job = PatientJob(
                patient_pk=patient.id,
                pseudonym=patient.pseudonym,
                scans=tuple(scans),
                parameters=parameters,
                input_hash=digest,
            )
            jobs.append((job, [str(t) for t in stored] if stored is not None else None))
    for job, own_targets in jobs:
        result = analyse_patient(job)
        if own_targets is not None:  # baseline lesion ids of the reader's segmentation → their tracks
            at_baseline = result["track_of"][0]
            tracked = [at_baseline[t] for t in own_targets if t in at_baseline]
            if tracked != list(result["targets"]):
                job.parameters["targets"] = tracked
                result = analyse_patient(job)
        out.results[job.pseudonym] = result
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


@dataclass(frozen=True, slots=True)
class StudyAgreement:
    """What :func:`study_agreement` wrote: the agreement run and the table of paired measurements."""

    run: Any  # hepavol.agreement.pipeline.AgreementRun
    reads_csv: Path
    left_out: tuple[tuple[str, str, str], ...]  # (reader, pseudonym, reason)


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
    rows, a, b = agreement_reads(ws, first, second)
    common = set(a.scans) & set(b.scans)
    if not common:
        raise InputError(
            f"readers {name_a!r} ({len(a.scans)} scans of eligible patients) and {name_b!r} ({len(b.scans)} scans) "
            "have no scan in common: agreement needs the same scans read by both. Import the second reader's masks "
            "of the same scans (hepavol study import-seg TABLE --reader NAME)."
        )
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
    return StudyAgreement(run=run, reads_csv=reads_csv, left_out=left)
