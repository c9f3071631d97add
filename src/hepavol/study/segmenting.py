"""``hepavol study segment``: hepavol proposes a segmentation for every imported scan without an accepted one.

For each scan (the chosen series of an imaging study) that has no accepted segmentation:

1. the **liver**, automatically (:func:`hepavol.segmentation.segment_liver`, what ``hepavol segment liver`` does),
   on CT and MR;
2. a **lesion from each seed** the site already has (:mod:`hepavol.study.seeds`: RECIST lines from DICOM SR TID
   1500 linear measurements picked up by ``study import``, or a CSV imported with ``study import-seeds``), grown by
   :func:`hepavol.segmentation.segment_lesion` from the line (or from the point);
3. the lesions **carried forward**: every lesion of an accepted segmentation of an earlier scan of the patient,
   mapped to this scan through the registration of the two livers and segmented there with its earlier shape
   as the prior; one that is no longer visible is proposed as *disappeared* (listed in the provenance), never
   as an empty mask;
4. **candidates** (:mod:`hepavol.study.candidates`): regions of the liver that look like the patient's lesions but
   are not segmented, listed in the provenance with a confidence for the reader, never added on their own.

The result is one label map per scan (liver ``liver_label``, lesions ``tumor_labels[0]`` of ``study.toml``),
written into the workspace (``segmentations/<pseudonym>/<date>_<scan>_proposed_<hash>.nii.gz``) and stored as a
**proposed** segmentation (:mod:`hepavol.study.proposals`) with its provenance: method, parameters, every seed used
or refused with the reason, the carried-forward lesions, hepavol's version, the worker and times.

Seeds that cannot be used are refused with the reason and the others go on: a line outside the image, a line
whose ends are on two slices, two lines for one lesion (crossing lines on one slice, or two seeds whose lesions
are the same), a line on a series of another frame of reference, an SR without image references (those two are
found by ``study import``).

Like ``study run``, each patient is one task under a lease (two processes share the work), the scans of a
patient are stored in one transaction, and each scan's task has an input hash (image, seeds, accepted earlier
masks, parameters): a scan whose proposal on the same inputs is stored is skipped, so a killed run resumes where
it stopped and only scans whose inputs changed are segmented again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol._version import __version__
from hepavol.errors import HepavolError, InputError
from hepavol.study import audit
from hepavol.study.execution import open_executor, run_tasks, worker_name
from hepavol.study.hashing import hash_json, hash_path
from hepavol.study.leases import Leases
from hepavol.study.models import PROPOSED, ImagingStudy, LesionSeed, Patient, Series, utcnow
from hepavol.study.proposals import add_proposal
from hepavol.study.redact import PathRedactor, scan_labels
from hepavol.study.runner import _signals_as_exit, error_text
from hepavol.study.seeds import seed_dict
from hepavol.study.workspace import Workspace

__all__ = [
    "METHOD",
    "ScanTask",
    "SegmentJob",
    "SegmentSummary",
    "plan_segment",
    "segment_patient",
    "segment_study",
]

METHOD = "hepavol study segment"

#: The parameters of the segmenters (their defaults; part of each scan's input hash).
PARAMETERS: dict[str, Any] = {
    "liver": {"function": "segment_liver", "band_k": 2.5, "erosion_mm": 8.0, "working_spacing_mm": 2.5},
    "lesion": {"function": "segment_lesion", "band_k": 2.5, "max_diameter_mm": 120.0},
    "same_lesion_overlap": 0.5,  # two seeds whose lesions overlap by this fraction of the smaller are one lesion
    "carry_forward": {"visible_sigma": 2.0, "margin_mm": 5.0, "margin_fraction": 0.5, "edge_fraction": 0.5},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanTask:
    """One scan to segment: its image, the seeds and earlier accepted lesions to use, its input hash."""

    study_pk: int
    series_pk: int
    date: dt.date
    image: str
    series_uid: str | None
    image_hash: str
    seeds: tuple[dict[str, Any], ...]
    priors: tuple[dict[str, Any], ...]  # accepted earlier scans: {"date", "image", "series_uid", "seg", ...}
    input_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentJob:
    """The scans of one patient to segment (oldest first)."""

    patient_pk: int
    pseudonym: str
    scans: tuple[ScanTask, ...]
    parameters: dict[str, Any]


@dataclass(slots=True)
class SegmentSummary:
    """What a ``study segment`` run did (counts of scans unless said otherwise)."""

    patients: int = 0
    proposed: int = 0  # proposals stored by this run
    up_to_date: int = 0  # a proposal on the same inputs was stored before
    accepted: int = 0  # scans with an accepted segmentation: left alone
    no_series: int = 0  # scans without a chosen series
    lesions_from_seeds: int = 0
    lesions_carried_forward: int = 0
    disappeared: int = 0
    candidates: int = 0  # regions that look like the patient's lesions, listed (not segmented)
    refused_seeds: list[tuple[str, str, str]] = field(default_factory=list)  # (pseudonym, date, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (pseudonym, error)
    elsewhere: int = 0  # patients leased by another run
    interrupted: bool = False


# ---------------------------------------------------------------------------------------------------------------
# Planning (in the calling process, from the database only)


def _accepted(series: Series) -> bool:
    return any(g.active and g.state != PROPOSED for g in series.segmentations)


def _chosen(study: ImagingStudy) -> Series | None:
    return next((s for s in study.series if s.chosen), None)


def _priors(studies: Sequence[ImagingStudy], before: dt.date, settings: Any) -> list[dict[str, Any]]:
    """The accepted segmentations of the patient's scans before ``before`` (the source of carried lesions)."""
    priors = []
    for study in studies:
        if study.study_date >= before:
            continue
        series = _chosen(study)
        if series is None:
            continue
        seg = next((g for g in reversed(series.segmentations) if g.active and g.state != PROPOSED), None)
        if seg is None:
            continue
        priors.append(
            {
                "date": study.study_date.isoformat(),
                "image": series.path,
                "series_uid": series.series_uid if series.kind == "dicom" else None,
                "image_hash": series.content_hash,
                "seg": seg.path,
                "seg_hash": seg.content_hash,
                "liver_label": seg.liver_label,
                "tumor_labels": list(seg.tumor_labels or settings.tumor_labels),
            }
        )
    return priors


def _parameters(ws: Workspace) -> dict[str, Any]:
    return {**PARAMETERS, "liver_label": ws.settings.liver_label, "tumor_label": ws.settings.tumor_labels[0]}


def plan_segment(
    ws: Workspace, *, patients: Sequence[str] | None = None
) -> tuple[list[SegmentJob], SegmentSummary]:
    """The scans to segment, per patient (see the module docstring), and what is left alone."""
    summary = SegmentSummary()
    jobs: list[SegmentJob] = []
    parameters = _parameters(ws)
    with ws.db.transaction() as session:
        query = select(Patient).order_by(Patient.pseudonym)
        if patients:
            known = set(session.scalars(select(Patient.pseudonym).where(Patient.pseudonym.in_(list(patients)))))
            unknown = sorted(set(patients) - known)
            if unknown:
                raise InputError(f"unknown patient(s) {unknown}: give pseudonyms as 'hepavol study status' lists.")
            query = query.where(Patient.pseudonym.in_(list(patients)))
        for patient in session.scalars(query):
            summary.patients += 1
            studies = list(patient.studies)
            tasks: list[ScanTask] = []
            for study in studies:
                series = _chosen(study)
                if series is None:
                    summary.no_series += 1
                    continue
                if _accepted(series):
                    summary.accepted += 1
                    continue
                seeds = _seeds(session, study, patient.pseudonym, summary)
                priors = _priors(studies, study.study_date, ws.settings)
                digest = hash_json(
                    {
                        "image_hash": series.content_hash,
                        "series_uid": series.series_uid,
                        "seeds": [{k: v for k, v in s.items() if k not in ("seed_pk", "origin")} for s in seeds],
                        "priors": [{k: p[k] for k in ("date", "image_hash", "seg_hash")} for p in priors],
                        "parameters": parameters,
                    }
                )
                done = any((g.provenance or {}).get("input_hash") == digest for g in series.segmentations)
                if done:
                    summary.up_to_date += 1
                    continue
                tasks.append(
                    ScanTask(
                        study_pk=study.id,
                        series_pk=series.id,
                        date=study.study_date,
                        image=series.path,
                        series_uid=series.series_uid if series.kind == "dicom" else None,
                        image_hash=series.content_hash,
                        seeds=tuple(seeds),
                        priors=tuple(priors),
                        input_hash=digest,
                    )
                )
            if tasks:
                jobs.append(SegmentJob(patient_pk=patient.id, pseudonym=patient.pseudonym, scans=tuple(tasks),
                                       parameters=parameters))  # fmt: skip
    return jobs, summary


def _seeds(session: Session, study: ImagingStudy, pseudonym: str, summary: SegmentSummary) -> list[dict[str, Any]]:
    """The usable seeds of a scan (refused ones go to the summary with their reason)."""
    rows = session.scalars(select(LesionSeed).where(LesionSeed.study_id == study.id).order_by(LesionSeed.id))
    seeds = []
    for seed in rows:
        if seed.problem:
            summary.refused_seeds.append(
                (pseudonym, study.study_date.isoformat(), f"{seed.origin}: {seed.problem}")
            )
        else:
            seeds.append(seed_dict(seed))
    return seeds


# ---------------------------------------------------------------------------------------------------------------
# The task (a worker process; reads image files only)


@dataclass(slots=True)
class _Placed:
    seed: dict[str, Any]
    lps: list[NDArray[np.float64]]
    index: list[NDArray[np.int64]]

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.lps[1] - self.lps[0])) if len(self.lps) == 2 else 0.0

    @property
    def centre(self) -> NDArray[np.float64]:
        return np.mean(np.stack(self.lps), axis=0)


def _describe(seed: dict[str, Any]) -> str:
    return f"{seed['origin']} ({'RECIST line' if seed['kind'] == 'line' else 'seed point'})"


def _cross(a: _Placed, b: _Placed) -> bool:
    """Whether two lines on one slice cross or touch (in the slice's row/column plane)."""
    p, q = a.index[0][1:].astype(float), a.index[1][1:].astype(float)
    r, s = b.index[0][1:].astype(float), b.index[1][1:].astype(float)

    def orient(o: NDArray[np.float64], u: NDArray[np.float64], v: NDArray[np.float64]) -> float:
        return float((u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0]))

    d1, d2, d3, d4 = orient(r, s, p), orient(r, s, q), orient(p, q, r), orient(p, q, s)
    return d1 * d2 <= 0 and d3 * d4 <= 0


def place_seeds(image: Any, seeds: Sequence[dict[str, Any]]) -> tuple[list[_Placed], list[str]]:
    """Seeds on the image grid; the reasons for the refused ones (outside the image, ends on two slices, two
    lines for one lesion: the longer line of a lesion is kept)."""
    from hepavol.segmentation import point_to_index

    g = image.geometry
    placed: list[_Placed] = []
    refused: list[str] = []
    for seed in seeds:
        points = [np.asarray(p, dtype=float) for p in seed["points"]]
        lps = [np.asarray(g.index_to_lps(p), dtype=float) if seed["coordinates"] == "index" else p for p in points]
        try:
            index = [
                point_to_index(image, p, what="end of the RECIST line" if seed["kind"] == "line" else "seed point")
                for p in lps
            ]
        except InputError as exc:
            refused.append(f"{_describe(seed)}: {exc}")
            continue
        if len(index) == 2 and index[0][0] != index[1][0]:
            refused.append(
                f"{_describe(seed)}: its ends are on slices {int(index[0][0])} and {int(index[1][0])}; a RECIST line "
                "lies on one axial slice (its longest in-plane diameter). Measure it on one slice."
            )
            continue
        placed.append(_Placed(seed, lps, index))
    kept: list[_Placed] = []
    for item in sorted(placed, key=lambda s: -s.length_mm):  # the longer line of a lesion is kept
        twin = None
        for other in kept:
            same_ref = item.seed["lesion_ref"] and item.seed["lesion_ref"] == other.seed["lesion_ref"]
            if same_ref and item.seed["source"] == other.seed["source"]:
                twin = other
                break
            if (
                len(item.index) == 2
                and len(other.index) == 2
                and item.index[0][0] == other.index[0][0]
                and _cross(item, other)
            ):
                refused.append(
                    f"{_describe(item.seed)}: two lines for one lesion: it crosses {_describe(other.seed)} on slice "
                    f"{int(item.index[0][0])}. A lesion has one RECIST line (its longest diameter); the longer "
                    f"({other.length_mm:.1f} mm against {item.length_mm:.1f} mm) is used. Remove the other line, or "
                    "give both the same lesion_id."
                )
                twin = other
                break
        if twin is None:
            kept.append(item)
    order = {id(s): i for i, s in enumerate(seeds)}
    kept.sort(key=lambda s: order[id(s.seed)])
    return kept, refused


def _segment_scan(scan: ScanTask, parameters: dict[str, Any]) -> dict[str, Any]:
    from hepavol.io import read_image
    from hepavol.segmentation import segment_lesion, segment_liver
    from hepavol.volume import Volume

    image = read_image(scan.image, series_uid=scan.series_uid)
    lp = parameters["liver"]
    liver = segment_liver(image, band_k=lp["band_k"], erosion_mm=lp["erosion_mm"],
                          working_spacing_mm=lp["working_spacing_mm"])  # fmt: skip
    placed, refused = place_seeds(image, scan.seeds)
    lesions: list[dict[str, Any]] = []
    masks: list[NDArray[np.bool_]] = []
    centres = [p.centre for p in placed]
    lesion_p = parameters["lesion"]
    spacing_min = min(image.geometry.spacing_mm)
    for i, item in enumerate(placed):
        others = [c for j, c in enumerate(centres) if j != i]
        if len(item.lps) == 2 and item.length_mm < 2.0 * spacing_min:  # a line of a voxel or two: its midpoint
            item = _Placed(item.seed, [item.centre], [item.index[0]])
        try:
            if len(item.lps) == 2:
                result = segment_lesion(image, recist_lps_mm=(item.lps[0], item.lps[1]), other_lesions_lps_mm=others,
                                        max_diameter_mm=lesion_p["max_diameter_mm"], band_k=lesion_p["band_k"])  # fmt: skip
            else:
                result = segment_lesion(image, seed_lps_mm=item.lps[0], other_lesions_lps_mm=others,
                                        max_diameter_mm=lesion_p["max_diameter_mm"], band_k=lesion_p["band_k"])  # fmt: skip
        except InputError as exc:
            refused.append(f"{_describe(item.seed)}: the lesion could not be grown from it: {exc}")
            continue
        except Exception as exc:  # a fault of the segmenter on one lesion: the scan's other lesions go on
            refused.append(f"{_describe(item.seed)}: internal error while growing its lesion: {error_text(exc)}")
            continue
        mask = np.asarray(result.mask)
        twin = next(
            (
                k
                for k, m in enumerate(masks)
                if (m & mask).sum() >= parameters["same_lesion_overlap"] * min(m.sum(), mask.sum()) > 0
            ),
            None,
        )
        if twin is not None:
            refused.append(
                f"{_describe(item.seed)}: two seeds for one lesion: its lesion is the one grown from "
                f"{lesions[twin]['origin']} (they overlap); that one is kept. Remove one of the two seeds."
            )
            continue
        masks.append(mask)
        lesions.append(
            {
                "origin": item.seed["origin"],
                "seed_pk": item.seed["seed_pk"],
                "source": item.seed["source"],
                "lesion_ref": item.seed["lesion_ref"],
                "kind": item.seed["kind"],
                "points_lps_mm": [[round(float(v), 3) for v in p] for p in item.lps],
                "method": "segment_lesion from the RECIST line"
                if len(item.lps) == 2
                else "segment_lesion from a point",
                "volume_ml": round(result.volume_ml, 4),
                "seed_index": list(result.seed_index),
                "leaked": result.leaked,
                "warnings": list(result.warnings),
            }
        )
    carried, disappeared, carried_masks, carry_warnings = _carry_forward(
        image, liver.mask, scan, masks, parameters
    )
    from hepavol.study.candidates import find_candidates

    candidates = find_candidates(image, np.asarray(liver.mask), [*masks, *carried_masks])
    labels = np.zeros(image.geometry.shape, dtype=np.uint8)
    labels[np.asarray(liver.mask)] = parameters["liver_label"]
    for mask in (*masks, *carried_masks):
        labels[mask] = parameters["tumor_label"]
    return {
        "study_pk": scan.study_pk,
        "date": scan.date.isoformat(),
        "input_hash": scan.input_hash,
        "labels": Volume(labels, image.geometry),
        "provenance": {
            "method": METHOD,
            "hepavol_version": __version__,
            "input_hash": scan.input_hash,
            "parameters": parameters,
            "liver": {
                "method": "segment_liver (automatic seed)",
                "volume_ml": round(liver.volume_ml, 3),
                "seed_index": list(liver.seed_index),
                "warnings": list(liver.warnings),
            },
            "lesions": lesions,
            "carried_forward": carried,
            "disappeared": disappeared,
            "refused_seeds": refused,
            "candidates": candidates,  # listed for the reader, never in the label map
            "warnings": carry_warnings,
        },
    }


def _carry_forward(
    image: Any,
    liver: NDArray[np.bool_],
    scan: ScanTask,
    seeded: Sequence[NDArray[np.bool_]],
    parameters: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[NDArray[np.bool_]], list[str]]:
    """Lesions of accepted earlier scans carried to this scan (:mod:`hepavol.study.carry`)."""
    if not scan.priors:
        return [], [], [], []
    from hepavol.study.carry import carry_lesions

    return carry_lesions(image, liver, scan.priors, seeded, parameters)


def segment_patient(job: SegmentJob) -> dict[str, Any]:
    """Segment the scans of one patient (a worker's task); per scan the label map and its provenance, or the
    error that stopped that scan."""
    started = utcnow()
    scans: list[dict[str, Any]] = []
    for scan in job.scans:
        t0 = utcnow()
        try:
            result = _segment_scan(scan, job.parameters)
        except HepavolError as exc:
            scans.append({"study_pk": scan.study_pk, "date": scan.date.isoformat(), "error": str(exc)})
            continue
        result["provenance"].update(
            worker=worker_name(), started_at=t0.isoformat(), finished_at=utcnow().isoformat()
        )
        scans.append(result)
    return {"scans": scans, "worker": worker_name(), "started_at": started.isoformat(),
            "finished_at": utcnow().isoformat()}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Storing (the calling process: files first, then one transaction per patient)


def _store(ws: Workspace, job: SegmentJob, result: dict[str, Any], summary: SegmentSummary) -> list[str]:
    """Write the label maps and store the proposals of one patient; the errors of scans that failed."""
    from hepavol.io import write_image

    folder = ws.root / "segmentations" / job.pseudonym
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[tuple[dict[str, Any], Path]] = []
    errors: list[str] = []
    try:
        for scan in result["scans"]:
            if "error" in scan:
                errors.append(f"scan {scan['date']}: {scan['error']}")
                continue
            path = folder / f"{scan['date']}_{scan['study_pk']}_proposed_{scan['input_hash'][:10]}.nii.gz"
            write_image(scan["labels"], path)
            written.append((scan, path))
        with ws.db.transaction() as session:
            for scan, path in written:
                study = session.get(ImagingStudy, scan["study_pk"])
                series = _chosen(study) if study is not None else None
                if series is None:
                    continue
                provenance = scan["provenance"]
                _seg, new = add_proposal(
                    session,
                    series,
                    path=str(path),
                    content_hash=hash_path(path),
                    liver_label=job.parameters["liver_label"],
                    tumor_labels=[job.parameters["tumor_label"]],
                    provenance=provenance,
                    pseudonym=job.pseudonym,
                )
                if new:
                    summary.proposed += 1
                    summary.lesions_from_seeds += len(provenance["lesions"])
                    summary.lesions_carried_forward += len(provenance["carried_forward"])
                    summary.disappeared += len(provenance["disappeared"])
                    summary.candidates += len(provenance["candidates"])
                    summary.refused_seeds += [
                        (job.pseudonym, scan["date"], r) for r in provenance["refused_seeds"]
                    ]
                else:
                    summary.up_to_date += 1
            audit.record(
                session,
                "segment",
                entity="patient",
                key=job.pseudonym,
                details={
                    "scans": len(written),
                    "failed": len(errors),
                    "lesions": sum(len(s["provenance"]["lesions"]) for s, _ in written),
                    "carried_forward": sum(len(s["provenance"]["carried_forward"]) for s, _ in written),
                    "refused_seeds": sum(len(s["provenance"]["refused_seeds"]) for s, _ in written),
                    "worker": result["worker"],
                },
            )
    except BaseException:
        for _scan, path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return errors


def segment_study(
    ws: Workspace,
    *,
    patients: Sequence[str] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    task: Callable[[SegmentJob], dict[str, Any]] = segment_patient,
) -> SegmentSummary:
    """Propose segmentations for every scan that needs one (see the module docstring)."""
    jobs, summary = plan_segment(ws, patients=patients)
    leases = Leases(ws.db)
    total = len(jobs)
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def redactor(job: SegmentJob) -> PathRedactor:
        labels = scan_labels(job.pseudonym, [(s.date.isoformat(), s.image, None) for s in job.scans])
        return PathRedactor(labels, workspace=ws.root)

    def claim(job: SegmentJob) -> bool:
        if leases.claim(job.patient_pk) is not None:
            summary.elsewhere += 1
            advance()
            return False
        return True

    def on_done(job: SegmentJob, result: dict[str, Any]) -> None:
        try:
            errors = _store(ws, job, result, summary)
            summary.failed += [(job.pseudonym, redactor(job).text(e)) for e in errors]
            if errors:
                with ws.db.transaction() as session:
                    audit.record(session, "segment-failed", entity="patient", key=job.pseudonym,
                                 details={"errors": [redactor(job).text(e) for e in errors]})  # fmt: skip
        finally:
            leases.release(job.patient_pk)
            advance()

    def on_error(job: SegmentJob, exc: BaseException) -> None:
        message = redactor(job).text(error_text(exc))
        with ws.db.transaction() as session:
            audit.record(
                session, "segment-failed", entity="patient", key=job.pseudonym, details={"error": message}
            )
        summary.failed.append((job.pseudonym, message))
        leases.release(job.patient_pk)
        advance()

    with ws.db.transaction() as session:
        audit.record(session, "segment-start", details={"patients": total, "scans": sum(len(j.scans) for j in jobs),
                                                         "workers": workers, "scheduler": scheduler})  # fmt: skip
    try:
        with _signals_as_exit(), open_executor(workers=workers, scheduler=scheduler) as (executor, slots):
            run_tasks(executor, slots, jobs, task, claim=claim, on_done=on_done, on_error=on_error,
                      on_idle=lambda inflight: leases.renew(j.patient_pk for j in inflight))  # fmt: skip
    except (KeyboardInterrupt, SystemExit):
        summary.interrupted = True
        raise
    finally:
        leases.release_all()
        with ws.db.transaction() as session:
            audit.record(session, "segment-end", details={"proposed": summary.proposed, "failed": len(summary.failed),
                                                           "interrupted": summary.interrupted})  # fmt: skip
    return summary
