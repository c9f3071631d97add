"""A follow-up as DICOM: per scan a SEG and a TID 1500 SR, every lesion with the same TrackingUID on every scan.

:func:`write_followup_dicom` runs :func:`hepavol.followup.run_followup` on a manifest whose images are DICOM series
(the SEG and SR must reference the acquired instances) and writes, for each scan, into one folder:

``<date>_SEG.dcm``
    Binary DICOM SEG on that scan's series (:func:`hepavol.io.seg_write.build_segmentation`): segment 1 the liver
    (liver label only; TrackingID ``liver``, one TrackingUID for the follow-up like a lesion's), then one segment per *tracked* lesion present on the scan, in track order. Its TrackingID
    is the track's lesion id (``L1, L2, ...`` as the follow-up numbers them, not the scan's own numbering) and its
    TrackingUID the track's UID (:func:`hepavol.tracking.tracking_uid`), the same on every scan.
``<date>_SR.dcm``
    TID 1500 Comprehensive 3D SR referencing that SEG (:func:`hepavol.io.sr_write.build_report`): under
    "Imaging Measurements" per lesion a volumetric group with the follow-up's volume of the lesion and planar
    group(s) with its long and short axes drawn on the source slice; under "Derived Imaging Measurements" the
    RECIST 1.1 sum of the target lesions' long axes (unrounded) and the total tumour volume; under "Qualitative
    Evaluations" the target, non-target, overall and volumetric responses (none at baseline) and the disappeared
    lesions; time point context (TID 1502) ``baseline``, ``FU1``, ``FU2``, ... of type Baseline or Posttreatment
    in every lesion group.

Split and merged lesions (hepavol's choice, following RECIST 1.1: the long axes of a fragmented lesion add up,
coalesced lesions are measured as one):

- A lesion in fragments is **one segment** (the union of its fragments) with its track's TrackingUID. Its
  volumetric group holds the fragments' total volume, and it has one planar group per fragment, all with the
  same tracking identifier, so a viewer draws each fragment's axes.
- A lesion that **merged** into another has no segment of its own from then on: its voxels are part of the
  segment of the lesion it merged into, and carry that lesion's TrackingUID; it does not appear in that scan's SR.
- A lesion that **disappeared** has no segment either, but keeps a record in the SR with its TrackingUID: a
  qualitative evaluation "Tracked lesion status" = "Disappeared" with its tracking identifier and UID, a long
  axis of 0 mm (RECIST 1.1 records a disappeared target lesion as 0 mm) and a volume of 0 mm3, so the lesion's
  history ends with its disappearance rather than silently. It is not a measurement group: a group without
  image coordinates makes OHIF fail (:mod:`hepavol.io.sr_write`).

Every object is built before the first file is written, and each file is written atomically, so a failure
leaves no partial set of files from this call.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepavol.errors import InputError
from hepavol.io.seg_write import SegExport, build_segmentation, load_source_datasets, write_dataset
from hepavol.io.sr_write import AbsentLesion, LesionFinding, TimePoint, TimePointAssessment, build_report
from hepavol.tracking import MAX_DISTANCE_MM

if TYPE_CHECKING:
    from hepavol.followup.pipeline import FollowUpResult, Manifest, TimepointResult

__all__ = ["FollowUpDicom", "TimepointDicom", "write_followup_dicom"]

_TARGET_VALUES = ("CR", "PR", "SD", "PD")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TimepointDicom:
    """The SEG and SR of one scan.

    ``lesions`` describes the SR's lesions (tracking id and UID, segment number, ``volume_mm3``, and per planar
    piece the axes in mm and their SCOORD end points); ``timepoint`` is the follow-up's assessment of the scan.
    """

    date: datetime.date
    time_point_id: str
    seg: SegExport
    sr_path: Path
    sr_sop_instance_uid: str
    sr_series_instance_uid: str
    lesions: tuple[dict[str, Any], ...]
    timepoint: TimepointResult


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class FollowUpDicom:
    """What :func:`write_followup_dicom` wrote: the follow-up result and one SEG + SR per scan (baseline first)."""

    result: FollowUpResult
    timepoints: tuple[TimepointDicom, ...]


def _check_dicom_images(manifest: Manifest) -> None:
    from hepavol.io.dicom_series import is_dicom_file

    for row in manifest.rows:
        if not (row.image.is_dir() or (row.image.is_file() and is_dicom_file(row.image))):
            raise InputError(
                f"{manifest.path}, line {row.line} ({row.date.isoformat()}): image '{row.image}' is not a DICOM "
                "series folder. A DICOM SEG and SR must reference the DICOM instances the segmentation was drawn "
                "on, so every image of the manifest must be a DICOM series folder (e.g. from 'hepavol pacs "
                "pull'); use 'hepavol follow-up' for NIfTI images."
            )


def _target_sum_mm(result: FollowUpResult, date: datetime.date) -> float:
    """The RECIST 1.1 sum of the target lesions' long axes on one scan, unrounded (mm).

    hepavol's stored values are never rounded (:mod:`hepavol.io.sr_write`). The follow-up decides the responses on
    each target diameter rounded half-up to 0.1 mm (:mod:`hepavol.followup.pipeline`), so this sum differs from
    ``TimepointResult.sum_of_diameters_mm`` by at most 0.05 mm per target. As there: a lesion in fragments counts
    the sum of its fragments' long axes, a target merged into a non-target lesion counts that lesion's long axis,
    a target merged into another target or gone counts 0 mm.
    """
    points = {lesion.lesion_id: {p.date: p for p in lesion.points} for lesion in result.lesions}
    targets = {lesion.lesion_id for lesion in result.lesions if lesion.target}
    total = 0.0
    for lid in sorted(targets):
        point = points[lid].get(date)
        if point is None:
            continue
        if point.fragments:
            total += float(point.long_axis_mm)
        elif point.merged_into is not None and point.merged_into not in targets:
            into = points[point.merged_into].get(date)
            total += 0.0 if into is None else float(into.long_axis_mm)
    return total


def _time_point_id(index: int) -> str:
    return "baseline" if index == 0 else f"FU{index}"


def write_followup_dicom(
    manifest: Manifest | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    targets: Sequence[str] | None = None,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    affine: bool = False,
    resample_seg: bool = False,
    max_distance_mm: float = MAX_DISTANCE_MM,
    derive_frame_of_reference: bool = True,
    deidentify: str | None = None,
) -> FollowUpDicom:
    """Run the follow-up of a manifest and write one DICOM SEG and one TID 1500 SR per scan into ``out_dir``.

    See the module docstring for the content and for split and merged lesions.

    Parameters
    ----------
    manifest : Manifest or path
        CSV ``date,image,seg`` (:func:`hepavol.followup.read_manifest`) whose images are DICOM series folders.
    out_dir : str or os.PathLike
        Output folder (created); files ``<YYYY-MM-DD>_SEG.dcm`` and ``<YYYY-MM-DD>_SR.dcm``, written atomically.
    targets, liver_label, tumor_labels, affine, resample_seg, max_distance_mm
        As in :func:`hepavol.followup.run_followup`.
    derive_frame_of_reference : bool
        A scan series without FrameOfReferenceUID gets a derived one (warning) when True, is refused when False
        (:func:`hepavol.io.seg_write.load_source_datasets`).

    Returns
    -------
    FollowUpDicom

    Raises
    ------
    InputError
        An image of the manifest is not a DICOM series folder (or is multi-frame or was resampled), or any error
        of :func:`hepavol.followup.run_followup`.
    TimelineError
        Dates out of order or repeated.
    """
    from hepavol.followup.pipeline import Manifest, _baseline_key, read_manifest, run_followup
    from hepavol.io.segmentation import read_segmentation
    from hepavol.tracking import tracking_uid

    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    _check_dicom_images(m)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output folder '{out}' is a file; give a folder for the SEG and SR files.")
    result = run_followup(
        m,
        targets=targets,
        liver_label=liver_label,
        tumor_labels=tumor_labels,
        affine=affine,
        resample_seg=resample_seg,
        max_distance_mm=max_distance_mm,
        keep_scans=True,
    )
    points = {lesion.lesion_id: {p.date: p for p in lesion.points} for lesion in result.lesions}
    # the liver is tracked too: one TrackingUID on every scan, made as the lesions' are (same patient key)
    liver_uid = tracking_uid(_baseline_key(m), "liver")
    built: list[tuple[TimepointDicom, Any, Any]] = []
    for t, (row, scan, tp) in enumerate(zip(m.rows, result.scans, result.timepoints)):
        image = scan.image
        sources = load_source_datasets(image, derive_frame_of_reference=derive_frame_of_reference)
        labels = read_segmentation(row.seg, reference=image.geometry, resample=resample_seg)
        lesion_map = np.asarray(scan.lesion_map.array)
        local = {les.lesion_id: n for n, les in enumerate(scan.measurement.lesions, start=1)}
        segments = np.zeros(lesion_map.shape, np.uint16)
        kinds: list[tuple[str, int]] = []
        liver = np.asarray(labels.array) == liver_label
        if liver.any():
            segments[liver] = 1
            kinds.append(("liver", int(np.count_nonzero(liver))))
        lut = np.zeros(len(local) + 1, np.uint16)
        findings: list[LesionFinding] = []
        absent: list[AbsentLesion] = []
        by_key = {les.lesion_id: les for les in scan.measurement.lesions}
        for lesion in result.lesions:
            point = points[lesion.lesion_id].get(scan.date)
            if point is not None and not point.fragments and point.merged_into is None:
                absent.append(AbsentLesion(tracking_id=lesion.lesion_id, tracking_uid=lesion.tracking_uid))
            if point is None or not point.fragments:
                continue  # not yet seen, disappeared or merged into another lesion
            number = len(kinds) + 1
            lut[[local[k] for k in point.fragments]] = number
            kinds.append(("lesion", sum(by_key[k].voxel_count for k in point.fragments)))
            findings.append(
                LesionFinding(
                    tracking_id=lesion.lesion_id,
                    tracking_uid=lesion.tracking_uid,
                    segment_number=number,
                    volume_mm3=point.volume_ml * 1000.0,
                    planar=tuple(by_key[k] for k in point.fragments),
                )
            )
        if not np.all(lut[1:]):
            raise AssertionError("a lesion of the scan belongs to no track")  # pragma: no cover
        tumour = lesion_map > 0
        segments[tumour] = lut[lesion_map[tumour]]
        tp_id = _time_point_id(t)
        seg, infos = build_segmentation(
            sources,
            segments,
            kinds,
            tracking_uids={"liver": liver_uid, **{f.tracking_id: f.tracking_uid for f in findings}},
            lesion_ids=[f.tracking_id for f in findings],
            series_description=f"hepavol segmentation {tp_id}",
        )
        assessment = TimePointAssessment(
            total_tumor_volume_mm3=tp.total_tumor_volume_ml * 1000.0,
            sum_of_diameters_mm=None if tp.sum_of_diameters_mm is None else _target_sum_mm(result, scan.date),
            target_response=tp.target_response if tp.target_response in _TARGET_VALUES else None,
            non_target_response=tp.non_target_response,
            overall_response=tp.overall_response if tp.overall_response != "ND" else None,
            volumetric_response=tp.volumetric_response if tp.volumetric_response in _TARGET_VALUES else None,
        )
        sr, lesions = build_report(
            image,
            sources,
            seg,
            findings,
            assessment,
            time_point=TimePoint(time_point_id=tp_id, baseline=t == 0),
            absent=absent,
            series_description=f"hepavol measurement report {tp_id}",
        )
        day = scan.date.isoformat()
        seg_export = SegExport(
            path=out / f"{day}_SEG.dcm",
            sop_instance_uid=str(seg.SOPInstanceUID),
            series_instance_uid=str(seg.SeriesInstanceUID),
            segments=infos,
            dataset=seg,
        )
        done = TimepointDicom(
            date=scan.date,
            time_point_id=tp_id,
            seg=seg_export,
            sr_path=out / f"{day}_SR.dcm",
            sr_sop_instance_uid=str(sr.SOPInstanceUID),
            sr_series_instance_uid=str(sr.SeriesInstanceUID),
            lesions=tuple(lesions),
            timepoint=tp,
        )
        built.append((done, seg, sr))
    out.mkdir(parents=True, exist_ok=True)
    for done, seg, sr in built:
        assert done.seg.path is not None
        write_dataset(seg, done.seg.path, deidentify=deidentify)
        write_dataset(sr, done.sr_path, deidentify=deidentify)
    return FollowUpDicom(result=result, timepoints=tuple(done for done, _, _ in built))
