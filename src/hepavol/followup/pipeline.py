"""``hepavol follow-up``: one patient's scans through time, measured, aligned, tracked and assessed.

Steps for a manifest (CSV ``date,image,seg`` with optional ``patient_id``; paths relative to the manifest):

1. Each scan is read and measured (:func:`hepavol.measurement.measure_scan`).
2. Each follow-up is registered to the baseline on the whole-liver masks
   (:func:`hepavol.followup.registration.register_to_baseline`).
3. Lesions are tracked (:func:`hepavol.tracking.track_lesions`) on their centroids mapped into the **baseline
   LPS frame** and their masks resampled onto the baseline grid. Every ``centroid_mm`` reported by this module is
   in the baseline scan's LPS frame (mm).
   A reader's ``links`` (``{date: {"L2": "L3"}}``: merge, split, new, disappeared; see :mod:`hepavol.tracking`)
   replace the automatic matches they name, and everything below is computed on the relinked tracks.
4. RECIST 1.1 (:func:`hepavol.response.recist.assess_patient`):

   - targets: up to ``MAX_TARGETS`` (2) baseline liver lesions, the largest measurable by long axis
     (``measurable`` from ``measure_scan``: long axis ≥ 10 mm and ≥ 2 slice thicknesses), unless ``targets``
     names them. A target's diameter is its long axis rounded half-up to 0.1 mm; a lesion in fragments is the sum
     of its fragments' long axes; a target that merged into another target is 0 mm (the merged lesion is
     measured once, on the other target); a target that merged into a non-target lesion takes that merged
     lesion's long axis (measured as one).
   - non-targets: all other baseline lesions, as one entry "multiple liver metastases" whose status is derived
     from their total volume (*hepavol's rule*): ``absent`` when it is 0; ``progression`` (unequivocal) when it is
     at least 73 % above its nadir (smallest total on study before this scan, baseline included; the EORTC
     equivalent of a 20 % diameter increase, SCIENCE.md §1.4); ``present`` otherwise.
   - new lesions: every track first seen after baseline is an unequivocal new lesion on the scans showing it
     (any segmented lesion counts; there is no minimum size).
5. Volumetry: total tumour volume (all lesions) with its change vs baseline and nadir and the volumetric response
   (:func:`hepavol.response.volumetric.assess_volumes`); TGR (Ferté 2014, RECIST and volumetric) vs baseline and
   vs the previous scan; hepatic tumour load; lesion counts.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import InputError, TimelineError
from hepavol.followup.registration import PreparedBaseline, Registration, prepare_baseline, register_to_baseline
from hepavol.geometry import Geometry
from hepavol.measurement import LesionMapCrop, LesionMeasurement, ScanMeasurement, _measure_scan
from hepavol.table import future_date_warning, read_table
from hepavol.tracking import MAX_DISTANCE_MM, LesionObservation, TrackingResult, track_lesions
from hepavol.volume import Volume

if TYPE_CHECKING:
    from hepavol.response.recist import NewLesionStatus

__all__ = [
    "MAX_TARGETS",
    "NON_TARGET_PD_PERCENT",
    "FollowUpResult",
    "LesionTrackResult",
    "Manifest",
    "ManifestRow",
    "ReaderMarks",
    "ScanData",
    "TimepointResult",
    "TrackPoint",
    "read_manifest",
    "run_followup",
]

#: Number of target lesions chosen automatically (RECIST 1.1: at most 2 per organ; all are in the liver).
MAX_TARGETS = 2
#: Rise of the non-target total volume over its nadir (percent, inclusive) that is unequivocal progression.
NON_TARGET_PD_PERCENT = Decimal(73)
NON_TARGET_ID = "NT-liver"


# ---------------------------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestRow:
    """One scan of the manifest: its date, image and segmentation (absolute paths) and CSV line number.

    ``series_uid`` picks one series when ``image`` is a DICOM folder holding several (the study workspace sets it).
    """

    date: datetime.date
    image: Path
    seg: Path
    line: int
    series_uid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A patient's scans in date order (baseline first)."""

    path: Path
    patient_id: str | None
    rows: tuple[ManifestRow, ...]
    warnings: tuple[str, ...] = ()  # dates after today (kept as given)


def _parse_date(text: str, where: str) -> datetime.date:
    value = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise InputError(f"{where}: date {text!r} is not a date; write it as YYYY-MM-DD (e.g. 2024-03-18)")


def read_manifest(path: str | os.PathLike[str], *, today: datetime.date | None = None) -> Manifest:
    """Read a follow-up manifest: CSV with columns ``date,image,seg`` and optionally ``patient_id``.

    The file is read by :func:`hepavol.table.read_table` (UTF-8 or Windows-1252; ``,``, ``;`` or tab). A date
    after ``today`` (default: the computer's date) is kept with a warning in :attr:`Manifest.warnings`.

    Paths are relative to the manifest's folder (absolute paths are kept). Rows must be in date order with one
    scan per date.

    Raises
    ------
    InputError
        The manifest or a file it names does not exist, a column is missing, a date cannot be read, the patient
        ids differ between rows.
    TimelineError
        Dates out of order or repeated.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Manifest '{p}' does not exist. Give a CSV file with columns date,image,seg.")
    table = read_table(p, "follow-up manifest")
    missing = [c for c in ("date", "image", "seg") if c not in table.keys]
    if missing:
        raise InputError(
            f"Manifest '{p}', line {table.header_line} lacks column(s) {', '.join(missing)} (found: "
            f"{', '.join(table.header) or 'none'}). The header must be date,image,seg (optional patient_id)."
        )
    raw = [(record, line) for line, record in table.records()]
    if not raw:
        raise InputError(f"Manifest '{p}' has no scan; add one row per scan (baseline first).")
    rows: list[ManifestRow] = []
    warnings: list[str] = []
    ids = {r.get("patient_id", "") for r, _ in raw}
    if len(ids) > 1:
        raise InputError(
            f"Manifest '{p}' names several patients ({', '.join(sorted(repr(i) for i in ids))}); a manifest holds "
            "the scans of one patient."
        )
    for r, line in raw:
        where = f"{p}, line {line}"
        date = _parse_date(r["date"], where)
        if rows and date == rows[-1].date:
            raise TimelineError(
                f"{where}: date {date.isoformat()} is repeated (line {rows[-1].line}); give one scan per date "
                "(remove the duplicate row or correct its date)."
            )
        if rows and date < rows[-1].date:
            raise TimelineError(
                f"{where}: date {date.isoformat()} comes before {rows[-1].date.isoformat()} on line "
                f"{rows[-1].line}; list the scans in date order, baseline first."
            )
        files = []
        for column in ("image", "seg"):
            if not r[column]:
                raise InputError(f"{where}: the {column} column is empty; give the {column} path of this scan.")
            f = Path(r[column])
            f = f if f.is_absolute() else p.parent / f
            if not f.exists():
                raise InputError(
                    f"{where}: {column} file '{r[column]}' ({f}) does not exist; paths are relative to the "
                    "manifest's folder."
                )
            files.append(f)
        rows.append(ManifestRow(date=date, image=files[0], seg=files[1], line=line))
        warning = future_date_warning(where, "date", date, today=today)
        if warning:
            warnings.append(warning)
    patient = ids.pop()
    return Manifest(path=p, patient_id=patient or None, rows=tuple(rows), warnings=tuple(warnings))


# ---------------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackPoint:
    """A tracked lesion on one scan (0 when gone or merged; ``centroid_mm`` in the baseline frame, or None)."""

    date: datetime.date
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    centroid_mm: tuple[float, float, float] | None
    fragments: tuple[str, ...]
    merged_into: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "volume_ml": self.volume_ml,
            "long_axis_mm": self.long_axis_mm,
            "short_axis_mm": self.short_axis_mm,
            "centroid_mm": None if self.centroid_mm is None else list(self.centroid_mm),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionTrackResult:
    """One lesion through time: measurements from the scan that first shows it."""

    lesion_id: str
    tracking_uid: str
    status: str
    target: bool
    first_index: int
    points: tuple[TrackPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "tracking_uid": self.tracking_uid,
            "status": self.status,
            "target": self.target,
            "measurements": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TimepointResult:
    """Everything assessed on one scan; responses are None at baseline."""

    date: datetime.date
    total_tumor_volume_ml: float
    liver_volume_ml: float | None
    hepatic_tumor_load_class: str | None
    lesion_count: int
    new_lesion_ids: tuple[str, ...]
    gone_lesion_ids: tuple[str, ...]
    sum_of_diameters_mm: float | None
    target_response: str | None
    non_target_response: str | None
    non_target_status: str | None
    overall_response: str | None
    volume_change_from_baseline_percent: float | None
    volume_change_from_nadir_percent: float | None
    volumetric_response: str | None
    tgr_recist_percent_per_month: float | None
    tgr_volume_percent_per_month: float | None
    tgr_recist_percent_per_month_vs_previous: float | None
    tgr_volume_percent_per_month_vs_previous: float | None
    registration: Registration
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "total_tumor_volume_ml": self.total_tumor_volume_ml,
            "lesion_count": self.lesion_count,
            "new_lesion_ids": list(self.new_lesion_ids),
            "sum_of_diameters_mm": self.sum_of_diameters_mm,
            "overall_response": self.overall_response,
            "volume_change_from_baseline_percent": self.volume_change_from_baseline_percent,
            "volumetric_response": self.volumetric_response,
            "tgr_recist_percent_per_month": self.tgr_recist_percent_per_month,
            "tgr_volume_percent_per_month": self.tgr_volume_percent_per_month,
            "tgr_recist_percent_per_month_vs_previous": self.tgr_recist_percent_per_month_vs_previous,
            "tgr_volume_percent_per_month_vs_previous": self.tgr_volume_percent_per_month_vs_previous,
        }


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScanData:
    """What the report needs of one scan: its image, lesion map (``L<n>`` = value n) and measurements."""

    date: datetime.date
    image: Volume
    lesion_map: Volume
    measurement: ScanMeasurement


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class FollowUpResult:
    """The follow-up of one patient (see the module docstring).

    ``scans`` holds every scan's measurement; their image and lesion map only with ``keep_scans=True``.
    """

    patient_id: str | None
    targets: tuple[str, ...]
    lesions: tuple[LesionTrackResult, ...]
    timepoints: tuple[TimepointResult, ...]
    best_overall_response: str
    progression_date: datetime.date | None
    tracking: TrackingResult
    warnings: tuple[str, ...]
    scans: tuple[ScanData, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``hepavol follow-up --json`` (``centroid_mm`` in the baseline LPS frame)."""
        return {
            "patient_id": self.patient_id,
            "targets": list(self.targets),
            "registration": [{"date": tp.date.isoformat(), **tp.registration.to_dict()} for tp in self.timepoints],
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "timepoints": [tp.to_dict() for tp in self.timepoints],
        }


# ---------------------------------------------------------------------------------------------------------------
# The pipeline


def _empty_volume() -> Volume:
    from hepavol.geometry import Geometry, identity_direction

    g = Geometry(
        shape=(1, 1, 1), spacing_mm=(1.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 0.0), direction=identity_direction()
    )
    return Volume(np.zeros((1, 1, 1), np.uint8), g)


_EMPTY = _empty_volume()


def _full_lesion_map(crop: LesionMapCrop | None, shape: tuple[int, int, int]) -> NDArray[np.int32]:
    """The lesion map on the whole grid (value n = lesion ``L<n>``), for the report."""
    out = np.zeros(shape, np.int32)
    if crop is not None:
        out[crop.box] = crop.array
    return out


def _voxel_sets(
    lesion_map: NDArray[Any], n: int, box: tuple[slice, slice, slice], shape: tuple[int, int, int]
) -> list[NDArray[np.int64]]:
    """Flat indices (C order, on a grid of ``shape``) of each lesion's voxels; ``lesion_map`` covers ``box``."""
    local = np.flatnonzero(lesion_map)
    vals = lesion_map.ravel()[local]
    index = np.unravel_index(local, lesion_map.shape)
    idx = np.ravel_multi_index(tuple(i + s.start for i, s in zip(index, box)), shape).astype(np.int64)
    order = np.argsort(vals, kind="stable")
    bounds = np.searchsorted(vals[order], np.arange(1, n + 2))
    return [idx[order[bounds[k] : bounds[k + 1]]] for k in range(n)]


def _on_baseline(
    crop: LesionMapCrop, geometry: Geometry, baseline: Geometry, registration: Registration
) -> tuple[NDArray[Any], tuple[slice, slice, slice]] | None:
    """A follow-up lesion map resampled (nearest neighbour) onto the part of the baseline grid it reaches."""
    import SimpleITK as sitk

    from hepavol.followup.registration import crop_to_sitk, reach_box, resample_crop

    region = reach_box(geometry, crop.box, baseline, registration.matrix_array)
    if region is None:
        return None
    full_box = tuple(slice(0, n) for n in crop.array.shape)
    moving = crop_to_sitk(crop.array, geometry, full_box)  # type: ignore[arg-type]
    moving.SetOrigin(tuple(float(v) for v in geometry.index_to_lps([s.start for s in crop.box])))
    moved = resample_crop(moving, baseline, region, registration.sitk_transform(), sitk.sitkInt32)
    return moved, region


def _d1(value: float) -> Decimal:
    """A diameter rounded half-up to 0.1 mm (RECIST thresholds are then compared exactly)."""
    return Decimal(repr(float(value))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _baseline_key(manifest: Manifest) -> str:
    if manifest.patient_id:
        return manifest.patient_id
    digest = hashlib.sha256(manifest.rows[0].seg.read_bytes() if manifest.rows[0].seg.is_file() else b"")
    digest.update(str(manifest.rows[0].date).encode())
    return "sha256:" + digest.hexdigest()


NON_TARGET_CALLS = ("present", "absent", "progression")
NEW_LESION_CALLS = ("equivocal", "unequivocal")


@dataclass(frozen=True, slots=True)
class ReaderMarks:
    """A reader's RECIST 1.1 calls that replace hepavol's own rules in the assessment.

    ``non_target``: the status of the liver's non-target disease on a scan date (``present``, ``absent`` or
    ``progression``, i.e. unequivocal progression), replacing the volume rule on that date. ``new_lesions``: a
    new lesion's id (``L7``) marked ``equivocal`` (PD only once a later scan confirms it, dated back to its first
    scan, RECIST 1.1 §4.3.2) or ``unequivocal`` (the default for a lesion first seen after baseline).
    """

    non_target: Mapping[datetime.date, str] = field(default_factory=dict)
    new_lesions: Mapping[str, str] = field(default_factory=dict)

    def new_lesion_status(self, lesion_id: str) -> NewLesionStatus:
        from hepavol.response.recist import NewLesionStatus

        equivocal = self.new_lesions.get(lesion_id) == "equivocal"
        return NewLesionStatus.EQUIVOCAL if equivocal else NewLesionStatus.PRESENT

    def check(self, dates: Sequence[datetime.date], new_ids: Sequence[str], has_non_targets: bool) -> None:
        """Refuse marks that name no scan, no new lesion, or an unknown call (InputError naming the value)."""
        for date, call in self.non_target.items():
            if call not in NON_TARGET_CALLS:
                raise InputError(
                    f"non-target call '{call}' on {date} must be one of {', '.join(NON_TARGET_CALLS)}."
                )
            if date not in dates:
                raise InputError(
                    f"non-target call on {date}: the patient has no scan that day (scans: "
                    f"{', '.join(d.isoformat() for d in dates)})."
                )
            if date == dates[0] and call != "present":
                raise InputError(
                    f"non-target call '{call}' on the baseline {date}: non-target disease at baseline is present "
                    "by definition (RECIST 1.1 §4.3.2); mark a follow-up date."
                )
            if not has_non_targets:
                raise InputError(
                    f"non-target call on {date}: the patient has no non-target lesion (every baseline lesion is a "
                    "target)."
                )
        for lesion_id, call in self.new_lesions.items():
            if call not in NEW_LESION_CALLS:
                raise InputError(
                    f"new-lesion call '{call}' for {lesion_id} must be one of {', '.join(NEW_LESION_CALLS)}."
                )
            if lesion_id not in new_ids:
                raise InputError(
                    f"new-lesion call for {lesion_id}: it is not a lesion first seen after baseline (new lesions: "
                    f"{', '.join(new_ids) or 'none'})."
                )


def run_followup(
    manifest: Manifest | str | os.PathLike[str],
    *,
    targets: Sequence[str] | None = None,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    affine: bool = False,
    resample_seg: bool = False,
    max_distance_mm: float = MAX_DISTANCE_MM,
    keep_scans: bool = False,
    reader_marks: ReaderMarks | None = None,
    links: Mapping[datetime.date, Mapping[str, str]] | None = None,
) -> FollowUpResult:
    """Measure, register, track and assess every scan of one patient (see the module docstring).

    Parameters
    ----------
    manifest : Manifest or path
        The scans (:func:`read_manifest`).
    targets : sequence of str, optional
        Baseline lesion ids (``L1`` …) to use as RECIST targets instead of the automatic choice.
    liver_label : int
        Label of the liver in the segmentations.
    tumor_labels : sequence of int
        Labels of tumour voxels.
    affine : bool
        Add an affine stage to the rigid registration.
    resample_seg : bool
        Resample segmentations that are not on their image's grid (nearest neighbour).
    max_distance_mm : float
        Largest centroid distance (mm, after registration) for two non-overlapping lesions to match.
    keep_scans : bool
        Keep each scan's image and lesion map in the result (for the report).
    reader_marks : ReaderMarks, optional
        A reader's RECIST calls that replace hepavol's rules: the non-target status on given dates, and new
        lesions marked equivocal or unequivocal.
    links : mapping of date to mapping of str to str, optional
        A reader's relinks of the lesions of follow-up scans, by scan date: ``{"L2": "L3"}`` (the scan's lesion
        L2 is track L3; two lesions on one track are its fragments), ``{"L2": "new"}``, ``{"L4": "L4+L5"}``
        (tracks L4 and L5 merged into the scan's lesion L4) and ``{"none": "L3"}`` (track L3 has no lesion on
        that scan). See :mod:`hepavol.tracking`.

    Returns
    -------
    FollowUpResult

    Raises
    ------
    InputError
        A bad manifest, an unreadable file, a segmentation without liver, unknown target ids.
    TimelineError
        Dates out of order or repeated.
    """
    from hepavol.io import read_image, read_segmentation

    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    warnings: list[str] = list(m.warnings)
    scans: list[ScanData] = []
    observations: list[list[LesionObservation]] = []
    registrations: list[Registration] = []
    baseline_liver: Volume | None = None
    prepared_baseline: PreparedBaseline | None = None
    baseline_seg: Volume | None = None
    for t, row in enumerate(m.rows):
        image = read_image(row.image, series_uid=row.series_uid)
        seg = read_segmentation(row.seg, reference=image.geometry, resample=resample_seg)
        labels = np.asarray(seg.array)
        scan, crop = _measure_scan(seg, image, liver_label=liver_label, tumor_labels=tumor_labels)
        if scan.liver_volume_ml is None:
            present = sorted(int(v) for v in np.unique(labels) if v != 0)
            raise InputError(
                f"{m.path}, line {row.line} ({row.date.isoformat()}): segmentation '{row.seg}' has no liver "
                f"(no voxel with label {liver_label}; labels present: {present}). Every scan needs the liver, to "
                "align it to baseline and for the tumour load: pass --liver-label N if the liver has another "
                "value, or segment the liver (hepavol segment liver)."
            )
        warnings += [f"{row.date.isoformat()}: {w}" for w in scan.warnings]
        liver = labels == liver_label
        for tumor_label in tumor_labels:
            liver |= labels == tumor_label
        liver_volume = seg.with_array(liver)
        on_baseline: tuple[NDArray[Any], tuple[slice, slice, slice]] | None
        if t == 0:
            registration = Registration.identity()
            baseline_liver, baseline_seg = liver_volume, seg
            on_baseline = None if crop is None else (crop.array, crop.box)
            centroids = [lesion.centroid_mm for lesion in scan.lesions]
        else:
            assert baseline_liver is not None
            assert baseline_seg is not None
            if prepared_baseline is None:  # once for every follow-up
                prepared_baseline = prepare_baseline(baseline_liver)
            registration = register_to_baseline(prepared_baseline, liver_volume, affine=affine)
            warnings += [f"{row.date.isoformat()}: {w}" for w in registration.warnings]
            on_baseline = (
                None if crop is None else _on_baseline(crop, seg.geometry, baseline_seg.geometry, registration)
            )
            centroids = [tuple(registration.to_baseline(lesion.centroid_mm)) for lesion in scan.lesions]
        registrations.append(registration)
        n = len(scan.lesions)
        if on_baseline is None:
            voxels = [np.zeros(0, np.int64) for _ in range(n)]
        else:
            assert baseline_seg is not None
            voxels = _voxel_sets(on_baseline[0], n, on_baseline[1], baseline_seg.geometry.shape)
        lesion_map = seg.with_array(_full_lesion_map(crop, seg.geometry.shape)) if keep_scans else _EMPTY
        observations.append(
            [
                LesionObservation(
                    key=lesion.lesion_id,
                    centroid_mm=tuple(float(v) for v in c),  # type: ignore[arg-type]
                    volume_ml=lesion.volume_ml,
                    voxels=v,
                )
                for lesion, c, v in zip(scan.lesions, centroids, voxels)
            ]
        )
        scans.append(
            ScanData(
                date=row.date,
                image=image if keep_scans else _EMPTY,
                lesion_map=lesion_map,
                measurement=scan,
            )
        )
    dates = [row.date for row in m.rows]
    by_index: dict[int, Mapping[str, str]] = {}
    for date, scan_links in (links or {}).items():
        if date not in dates:
            raise InputError(
                f"links on {date}: the patient has no scan that day (scans: "
                f"{', '.join(d.isoformat() for d in dates)})."
            )
        if scan_links:
            by_index[dates.index(date)] = scan_links
    tracking = track_lesions(
        observations,
        patient_id=_baseline_key(m),
        max_distance_mm=max_distance_mm,
        links=by_index,
        scan_names=[d.isoformat() for d in dates],
    )
    return _assess(m, scans, observations, registrations, tracking, targets, warnings, keep_scans, reader_marks)


def _track_points(
    tracking: TrackingResult,
    scans: Sequence[ScanData],
    observations: Sequence[Sequence[LesionObservation]],
) -> dict[str, list[TrackPoint | None]]:
    out: dict[str, list[TrackPoint | None]] = {}
    for track in tracking.tracks:
        points: list[TrackPoint | None] = []
        for t, scan in enumerate(scans):
            if t < track.first_index:
                points.append(None)
                continue
            by_key: dict[str, LesionMeasurement] = {les.lesion_id: les for les in scan.measurement.lesions}
            obs = {o.key: o for o in observations[t]}
            parts = [by_key[k] for k in track.keys[t]]
            if parts:
                vol = sum(p.volume_ml for p in parts)
                largest = max(parts, key=lambda p: p.volume_ml)
                centre = (
                    np.sum([np.array(obs[p.lesion_id].centroid_mm) * p.volume_ml for p in parts], axis=0) / vol
                )
                points.append(
                    TrackPoint(
                        date=scan.date,
                        volume_ml=vol,
                        long_axis_mm=sum(p.long_axis_mm for p in parts),
                        short_axis_mm=largest.short_axis_mm,
                        centroid_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
                        fragments=tuple(track.keys[t]),
                        merged_into=None,
                    )
                )
            else:
                points.append(
                    TrackPoint(
                        date=scan.date,
                        volume_ml=0.0,
                        long_axis_mm=0.0,
                        short_axis_mm=0.0,
                        centroid_mm=None,
                        fragments=(),
                        merged_into=track.merged_into[t],
                    )
                )
        out[track.lesion_id] = points
    return out


def _choose_targets(
    tracking: TrackingResult, scans: Sequence[ScanData], targets: Sequence[str] | None, manifest: Manifest
) -> tuple[str, ...]:
    baseline = {les.lesion_id: les for les in scans[0].measurement.lesions}
    at_baseline = {tr.lesion_id: baseline[tr.keys[0][0]] for tr in tracking.tracks if tr.keys[0]}
    if targets is not None:
        chosen = tuple(dict.fromkeys(t.strip() for t in targets if t.strip()))
        unknown = [t for t in chosen if t not in at_baseline]
        if unknown:
            raise InputError(
                f"target lesion(s) {', '.join(unknown)} are not baseline lesions of {manifest.path}; baseline "
                f"lesions are {', '.join(at_baseline) or 'none'} (largest first)."
            )
        return chosen
    candidates = [(lid, les) for lid, les in at_baseline.items() if les.measurable and les.in_liver is not False]
    candidates.sort(key=lambda item: -item[1].long_axis_mm)
    return tuple(lid for lid, _ in candidates[:MAX_TARGETS])


def _assess(
    manifest: Manifest,
    scans: Sequence[ScanData],
    observations: Sequence[Sequence[LesionObservation]],
    registrations: Sequence[Registration],
    tracking: TrackingResult,
    targets: Sequence[str] | None,
    warnings: list[str],
    keep_scans: bool,
    reader_marks: ReaderMarks | None = None,
) -> FollowUpResult:
    from hepavol.response.growth import tgr_recist, tgr_volume
    from hepavol.response.recist import Assessment, NewLesion, NonTargetLesion, TargetLesion, assess_patient
    from hepavol.response.volumetric import VolumePoint, assess_volumes

    chosen = _choose_targets(tracking, scans, targets, manifest)
    points = _track_points(tracking, scans, observations)
    tracks = {tr.lesion_id: tr for tr in tracking.tracks}
    non_targets = [tr.lesion_id for tr in tracking.tracks if tr.first_index == 0 and tr.lesion_id not in chosen]
    new_ids = [tr.lesion_id for tr in tracking.tracks if tr.first_index > 0]
    dates = [s.date for s in scans]
    marks = reader_marks or ReaderMarks()
    marks.check(dates, new_ids, bool(non_targets))

    def target_diameter(lid: str, t: int) -> Decimal:
        p = points[lid][t]
        assert p is not None
        if p.fragments:
            return _d1(p.long_axis_mm)
        into = p.merged_into
        if into is not None and into not in chosen:
            q = points[into][t]
            return _d1(q.long_axis_mm) if q is not None else Decimal(0)
        return Decimal(0)

    def volume(lid: str, t: int) -> float:
        p = points[lid][t]
        return 0.0 if p is None else p.volume_ml

    assessments = []
    nt_totals: list[Fraction] = []
    nt_status: list[str | None] = []
    for t, date in enumerate(dates):
        target_rows = tuple(
            TargetLesion(lesion_id=lid, organ="liver", diameter_mm=target_diameter(lid, t)) for lid in chosen
        )
        nt_total = Fraction(Decimal(repr(sum(volume(lid, t) for lid in non_targets))))
        status = None
        if non_targets:
            if t == 0:
                status = "present"
            else:
                nadir = min(nt_totals)
                if nt_total == 0:
                    status = "absent"
                elif nadir > 0 and nt_total - nadir >= Fraction(NON_TARGET_PD_PERCENT) / 100 * nadir:
                    status = "progression"
                else:
                    status = "present"
        if date in marks.non_target:  # the reader's call replaces the volume rule on this date
            status = marks.non_target[date]
        nt_totals.append(nt_total)
        nt_status.append(status)
        nt_rows = (
            (NonTargetLesion(lesion_id=NON_TARGET_ID, organ="liver", status=status),) if status is not None else ()
        )
        new_rows = tuple(
            NewLesion(lesion_id=lid, organ="liver", status=marks.new_lesion_status(lid))
            for lid in new_ids
            if tracks[lid].present(t)
        )
        assessments.append(Assessment(date=date, targets=target_rows, non_targets=nt_rows, new_lesions=new_rows))
    recist = assess_patient(assessments, patient_id=manifest.patient_id or "")
    warnings += list(recist.warnings)
    ttv = [s.measurement.total_tumor_volume_ml for s in scans]
    # the volumetric criteria count unequivocal new lesions only (RECIST 1.1's rule for PD, SCIENCE.md §1.5)
    unequivocal = [lid for lid in new_ids if marks.new_lesions.get(lid) != "equivocal"]
    new_present = [any(tracks[lid].present(t) for lid in unequivocal) for t in range(len(dates))]
    volumetric = assess_volumes(
        [VolumePoint(date=d, volume_ml=v, new_lesions=n) for d, v, n in zip(dates, ttv, new_present)]
    )
    baseline_sum = recist.baseline_sum_mm
    sums: list[Decimal | None] = [baseline_sum] + [tp.sum_of_diameters_mm for tp in recist.timepoints]

    def tgr(fn: Any, a: Any, b: Any, days: int) -> float | None:
        if a is None or b is None:
            return None
        return fn(float(a), float(b), days).percent_per_month

    timepoints = []
    for t, date in enumerate(dates):
        present = [tr.lesion_id for tr in tracking.tracks if tr.present(t)]
        new_here = [e.lesion_id for e in tracking.events if e.timepoint_index == t and e.kind == "new"]
        gone = [e.lesion_id for e in tracking.events if e.timepoint_index == t and e.kind == "disappeared"]
        scan = scans[t].measurement
        rtp = recist.timepoints[t - 1] if t else None
        vtp = volumetric[t - 1] if t else None
        days0 = (date - dates[0]).days
        daysp = (date - dates[t - 1]).days if t else 0
        timepoints.append(
            TimepointResult(
                date=date,
                total_tumor_volume_ml=ttv[t],
                liver_volume_ml=scan.liver_volume_ml,
                hepatic_tumor_load_class=scan.hepatic_tumor_load_class,
                lesion_count=len(present),
                new_lesion_ids=tuple(new_here),
                gone_lesion_ids=tuple(gone),
                sum_of_diameters_mm=None if sums[t] is None else float(sums[t]),  # type: ignore[arg-type]
                target_response=None if rtp is None else rtp.target_response.value,
                non_target_response=None if rtp is None else rtp.non_target_response.value,
                non_target_status=nt_status[t],
                overall_response=None if rtp is None else rtp.overall_response.value,
                volume_change_from_baseline_percent=None if vtp is None else vtp.change_from_baseline_percent,
                volume_change_from_nadir_percent=None if vtp is None else vtp.change_from_nadir_percent,
                volumetric_response=None if vtp is None else vtp.response.value,
                tgr_recist_percent_per_month=None if t == 0 else tgr(tgr_recist, sums[0], sums[t], days0),
                tgr_volume_percent_per_month=None if t == 0 else tgr(tgr_volume, ttv[0], ttv[t], days0),
                tgr_recist_percent_per_month_vs_previous=(
                    None if t == 0 else tgr(tgr_recist, sums[t - 1], sums[t], daysp)
                ),
                tgr_volume_percent_per_month_vs_previous=(
                    None if t == 0 else tgr(tgr_volume, ttv[t - 1], ttv[t], daysp)
                ),
                registration=registrations[t],
                notes=() if rtp is None else rtp.notes,
            )
        )
    lesions = tuple(
        LesionTrackResult(
            lesion_id=tr.lesion_id,
            tracking_uid=tr.tracking_uid,
            status=tr.status,
            target=tr.lesion_id in chosen,
            first_index=tr.first_index,
            points=tuple(p for p in points[tr.lesion_id] if p is not None),
        )
        for tr in tracking.tracks
    )
    return FollowUpResult(
        patient_id=manifest.patient_id,
        targets=chosen,
        lesions=lesions,
        timepoints=tuple(timepoints),
        best_overall_response=recist.best_overall_response.value,
        progression_date=recist.progression_date,
        tracking=tracking,
        warnings=tuple(warnings),
        scans=tuple(scans),
    )
