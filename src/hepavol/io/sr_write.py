"""Write a TID 1500 Measurement Report (Comprehensive 3D SR) for one timepoint, via highdicom.sr.

Content (DICOM PS3.16 template ids):

- One **volumetric group** (TID 1411) per lesion: tracking identifier and TrackingUID of the lesion's SEG segment,
  the referenced segment, finding type Neoplasm, Secondary (SCT 14799000), finding site Liver, and its volume
  in mm³ (SCT 118565006 "Volume", UCUM ``mm3``, method "Sum of segmented voxel method for volume", DCM 126030).
- One **planar group** (TID 1410) per lesion: the same tracking identifier, the SEG frame of the lesion on its
  RECIST slice, and the long and short axes (SCT 103339001 "Long Axis" / 103340004 "Short Axis", UCUM ``mm``)
  each inferred from a two-point SCOORD POLYLINE on that source image (so viewers draw a bidirectional
  measurement). SCOORD coordinates are (column, row) image coordinates with (0, 0) at the outer corner of the
  first pixel: hepavol's end points are surface-mesh vertices (pixel-edge midpoints), so one coordinate is an
  integer and the other a half-integer.
- Every lesion group includes the time point context (TID 1502): time point id and type (Baseline or
  Posttreatment) when given.

**Time-point content** goes into the two other containers of TID 1500, not into "Imaging Measurements":

- **Derived Imaging Measurements** (DCM 126011, TID 1500 row 10 → TID 1420 "Measurements Derived From Multiple
  ROI Measurements", a NUM each): the sum of diameters (``99HEPAVOL SOD``, mm: all lesions' long axes in a
  single-scan report, the RECIST 1.1 sum of the target lesions' diameters in a follow-up) and the total tumour
  volume (``99HEPAVOL TTV``, mm³).
  CID 7465 (baseline, extensible) has population statistics only, hence the private concepts. TID 1420 derives
  its NUM "R-INFERRED FROM" the groups it sums; those by-reference items are **not written**, because highdicom
  0.28's reader refuses any content item without a value type ("Item #1 of sequence is not an SR Content Item"):
  the groups summed are those of the report (in a follow-up, its target lesions).
- **Qualitative Evaluations** (UMLS C0034375, TID 1500 rows 12-13, CODE items), when there is one: the RECIST
  target and non-target responses as "Current Response" (DCM 112048) with values from CID 6144 (Target Lesion
  Complete Response / Partial Response / Stable Disease / Progressive Disease; Non-Target Lesion Complete
  Response / Incomplete Response or Stable Disease / Progressive Disease), the RECIST overall response (CR, PR,
  SD, PD, NE, non-CR/non-PD) as ``99HEPAVOL OVRESP`` (CID 6144 has no overall response), the volumetric response
  as ``99HEPAVOL VOLRESP`` with a CID 6144 target value, and per **disappeared lesion** (no voxel left on this
  scan) ``99HEPAVOL LESSTAT`` "Tracked lesion status" = ``99HEPAVOL DISAPPEARED`` with, as HAS PROPERTIES
  children (TID 1500 is extensible), its Tracking Identifier, Tracking Unique Identifier, Long Axis 0 mm (RECIST
  1.1 records a disappeared target lesion as 0 mm) and Volume 0 mm³.

Why (issue 24; checked against OHIF 3.13.2 and 3.12.10 from npm ``@ohif/app``, whose
``extensions/cornerstone-dicom-sr/src/getSopClassHandlerModule.ts`` is in the bundle): OHIF reads only the
"Measurement Group" children of "Imaging Measurements" (``_getMeasurements``), merges them by TrackingUID
(``_getMergedContentSequencesByTrackingUniqueIdentifiers``: a group without one throws), and then reads
``measurement.coords[0].ReferencedSOPSequence`` for every merged group, so a group whose merged content has no
SCOORD (the former time-point groups, the zero groups of disappeared lesions) throws "Cannot read properties of
undefined (reading 'ReferencedSOPSequence')" and the viewer shows an error. Lesion groups are safe: the volumetric
and planar groups of a lesion share its TrackingUID, and the planar group's NUMs are INFERRED FROM SCOORD
polylines on the source image. OHIF ignores the other two containers. dcmqi's ``tid1500reader`` reads the
Imaging Measurements only; highdicom reads the whole report; dciodvfy reports no error; PixelMed (pixelmed-apps
20220618) checks rows 12-13 and has no CID 7465 for TID 1420 (an "Internal Error" line, no error of the report).

Every private code is of the scheme ``99HEPAVOL``, identified in the CodingSchemeIdentificationSequence.

Stored values are not rounded (one rule for every SR, SEG and table: full float precision, DS strings of up to
16 characters as pydicom formats them); readers round for display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.io.seg_write import LESION_CATEGORY, LESION_TYPE, LIVER_TYPE, load_source_datasets, write_dataset
from hepavol.measurement import LesionMeasurement
from hepavol.volume import Volume

__all__ = [
    "LesionFinding",
    "SegSegment",
    "SrExport",
    "TimePoint",
    "TimePointAssessment",
    "build_measurement_report",
    "build_report",
    "read_seg_segments",
    "write_dicom_sr",
]

#: Designator of hepavol's private codes, identified in every SR (CodingSchemeIdentificationSequence).
PRIVATE_CODING_SCHEME = "99HEPAVOL"
#: Private codes for the per-timepoint totals (PS3.16 has no concept for them: CID 7465 has statistics only).
TOTAL_TUMOR_VOLUME = ("TTV", "99HEPAVOL", "Total tumor volume")
SUM_OF_DIAMETERS = ("SOD", "99HEPAVOL", "Sum of diameters")
VOLUMETRIC_RESPONSE = ("VOLRESP", "99HEPAVOL", "Volumetric response")
#: A tracked lesion's status on this scan (qualitative evaluation of a disappeared lesion).
LESION_STATUS = ("LESSTAT", "99HEPAVOL", "Tracked lesion status")
LESION_DISAPPEARED = ("DISAPPEARED", "99HEPAVOL", "Disappeared")
#: TID 1500 containers.
IMAGING_MEASUREMENTS = ("126010", "DCM", "Imaging Measurements")
DERIVED_IMAGING_MEASUREMENTS = ("126011", "DCM", "Derived Imaging Measurements")
QUALITATIVE_EVALUATIONS = ("C0034375", "UMLS", "Qualitative Evaluations")
_RESPONSE_CODES = {
    "CR": ("112041", "DCM", "Target Lesion Complete Response"),
    "PR": ("112042", "DCM", "Target Lesion Partial Response"),
    "SD": ("112044", "DCM", "Target Lesion Stable Disease"),
    "PD": ("112043", "DCM", "Target Lesion Progressive Disease"),
}
_NON_TARGET_CODES = {
    "CR": ("112045", "DCM", "Non-Target Lesion Complete Response"),
    "NON_CR_NON_PD": ("112046", "DCM", "Non-Target Lesion Incomplete Response or Stable Disease"),
    "PD": ("112047", "DCM", "Non-Target Lesion Progressive Disease"),
}
#: RECIST 1.1 overall response (private: CID 6144 codes target and non-target responses only).
OVERALL_RESPONSE = ("OVRESP", "99HEPAVOL", "RECIST 1.1 overall response")
_OVERALL_CODES = {
    "CR": ("CR", "99HEPAVOL", "Complete response"),
    "PR": ("PR", "99HEPAVOL", "Partial response"),
    "SD": ("SD", "99HEPAVOL", "Stable disease"),
    "PD": ("PD", "99HEPAVOL", "Progressive disease"),
    "NE": ("NE", "99HEPAVOL", "Not evaluable"),
    "NON_CR_NON_PD": ("NONCRNONPD", "99HEPAVOL", "Non-CR/non-PD"),
}
#: Device UID of hepavol as SR observer (a fixed UID derived from the name).
_DEVICE_UID_SOURCE = "hepavol-device"


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.sr.coding import Code

    return Code(value, scheme, meaning)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimePoint:
    """Time point context (TID 1502): an id such as ``"baseline"`` or ``"FU1"``, and whether it is the baseline.

    The optional Time Point Order (NUM) is not written: PixelMed's validator takes it for a measurement (TID 1419
    row 5) and reports an error; the id and type identify the time point.
    """

    time_point_id: str
    baseline: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimePointAssessment:
    """The per-timepoint content of a report: totals and responses (None = not written).

    ``target_response`` and ``volumetric_response`` take CR, PR, SD or PD; ``non_target_response`` CR,
    NON_CR_NON_PD or PD; ``overall_response`` CR, PR, SD, PD, NE or NON_CR_NON_PD (RECIST 1.1). Other values
    (NE, ND) of the lesion responses are not written. ``sum_of_diameters_mm`` None omits the measurement.
    """

    total_tumor_volume_mm3: float
    sum_of_diameters_mm: float | None
    target_response: str | None = None
    non_target_response: str | None = None
    overall_response: str | None = None
    volumetric_response: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LesionFinding:
    """One lesion of a report: its SEG segment, identity, volume and in-plane axes.

    ``planar`` holds one measurement per connected piece drawn on the image (one planar group each, all with
    the lesion's tracking identifier): one for a lesion in one piece, several for a lesion in fragments, whose
    long axes add up (RECIST 1.1). Their end points are in the LPS frame of the source series.
    """

    tracking_id: str
    tracking_uid: str
    segment_number: int
    volume_mm3: float
    planar: tuple[LesionMeasurement, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsentLesion:
    """A tracked lesion that has disappeared on this scan (no voxel left): a qualitative evaluation of the report
    ("Tracked lesion status" = "Disappeared") with the lesion's tracking identifier and UID records a volume of
    0 mm3 and a long axis of 0 mm (RECIST 1.1 records a disappeared target lesion as 0 mm), so a reader following
    the TrackingUID sees it go."""

    tracking_id: str
    tracking_uid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SegSegment:
    """A segment of a DICOM SEG as the SR needs it."""

    segment_number: int
    segment_label: str
    kind: str  # "liver", "lesion" or "other"
    tracking_id: str
    tracking_uid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SrExport:
    """What :func:`write_dicom_sr` wrote."""

    path: Path | None
    sop_instance_uid: str
    series_instance_uid: str
    lesions: tuple[dict[str, Any], ...]
    total_tumor_volume_mm3: float
    sum_of_diameters_mm: float
    dataset: Any  # highdicom.sr.Comprehensive3DSR


def read_seg_segments(seg: Any) -> list[SegSegment]:
    """The segments of a SEG dataset: liver (type SCT 10200004), lesion (category SCT 49755003) or other."""
    out = []
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        cat = item.SegmentedPropertyCategoryCodeSequence[0].CodeValue
        typ = item.SegmentedPropertyTypeCodeSequence[0].CodeValue
        kind = "liver" if typ == LIVER_TYPE[0] else "lesion" if cat == LESION_CATEGORY[0] else "other"
        out.append(
            SegSegment(
                segment_number=number,
                segment_label=str(getattr(item, "SegmentLabel", f"segment {number}")),
                kind=kind,
                tracking_id=str(getattr(item, "TrackingID", "") or f"segment {number}"),
                tracking_uid=str(getattr(item, "TrackingUID", "") or ""),
            )
        )
    return out


def _frame_of(seg: Any, segment_number: int, sop_instance_uid: str) -> int | None:
    """1-based frame number of ``segment_number`` on source image ``sop_instance_uid``."""
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    for i, frame in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        ident = frame if "SegmentIdentificationSequence" in frame else shared
        if ident is None or int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment_number:
            continue
        for der in getattr(frame, "DerivationImageSequence", []):
            for src in der.SourceImageSequence:
                if src.ReferencedSOPInstanceUID == sop_instance_uid:
                    return i
    return None


def _pixel_xy(volume: Volume, point_lps: Sequence[float], slice_index: int) -> tuple[float, float]:
    """(column, row) SCOORD image coordinates of an LPS point on slice ``slice_index``."""
    k, r, c = volume.geometry.lps_to_index(tuple(float(v) for v in point_lps))
    if abs(k - slice_index) > 1e-3:
        raise AssertionError(f"point {point_lps} lies at slice {k}, not on slice {slice_index}")
    return float(np.round(c + 0.5, 6)), float(np.round(r + 0.5, 6))


def _add_scoords(group: Any, scoords: dict[str, Any]) -> None:
    """Attach a SCOORD (INFERRED FROM) to each NUM item of ``group`` whose concept code is a key of ``scoords``."""
    from highdicom.sr import ContentSequence

    for item in group[0].ContentSequence:
        code = item.ConceptNameCodeSequence[0].CodeValue
        if item.ValueType == "NUM" and code in scoords:
            if "ContentSequence" not in item:
                item.ContentSequence = ContentSequence(is_root=False, is_sr=False)
            item.ContentSequence.append(scoords.pop(code))
    if scoords:
        raise AssertionError(f"no NUM item for {sorted(scoords)}")


def _drop_segment_number_beside_frame(group: Any) -> None:
    """Remove ReferencedSegmentNumber where ReferencedFrameNumber is present (PS3.3 Table 10-3: one or the other).

    highdicom's ReferencedSegmentationFrame writes both; dciodvfy rejects that. The frame alone identifies the
    segment (each SEG frame belongs to one segment).
    """
    for item in group[0].ContentSequence:
        if item.ValueType != "IMAGE":
            continue
        for ref in item.ReferencedSOPSequence:
            if "ReferencedFrameNumber" in ref and "ReferencedSegmentNumber" in ref:
                del ref.ReferencedSegmentNumber


def _response(name: str, value: str | None, table: dict[str, tuple[str, str, str]]) -> Any:
    """The code of a response value, None for None; InputError naming the argument for an unknown value."""
    if value is None:
        return None
    key = str(value).upper()
    if key not in table:
        raise InputError(f"Argument '{name}' must be one of {sorted(table)}, but it is {value!r}.")
    return _code(*table[key])


def build_measurement_report(
    image: Volume,
    source_datasets: Sequence[Any],
    seg: Any,
    labels: Volume,
    *,
    time_point: TimePoint | None = None,
    recist_response: str | None = None,
    volumetric_response: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 301,
) -> tuple[Any, list[dict[str, Any]], float, float]:
    """Build the TID 1500 SR of one timepoint from the source series and a SEG on it.

    Each lesion segment is measured as one lesion (:func:`hepavol.measurement.measure_scan` with
    ``instances=True``); the timepoint's sum of diameters is the sum of all lesions' long axes.

    Parameters
    ----------
    image : Volume
        The source series (as read by :func:`hepavol.io.read_dicom_series`).
    source_datasets : sequence of pydicom.Dataset
        Its slices in the volume's order.
    seg : pydicom.Dataset
        The DICOM SEG (hepavol's or another with liver/lesion codes) on that series.
    labels : Volume
        ``read_segmentation(seg_file, reference=image.geometry)``: label = segment number.
    time_point : TimePoint, optional
        Time point context; the StudyDate of the source when omitted.
    recist_response, volumetric_response : {"CR", "PR", "SD", "PD"}, optional
        Target responses at this timepoint, written as qualitative evaluations.
    series_instance_uid, sop_instance_uid : str, optional
        UIDs to use; new ones otherwise.
    series_number : int
        SeriesNumber of the SR.

    Returns
    -------
    sr : highdicom.sr.Comprehensive3DSR
    lesions : list of dict
        Per lesion: tracking id/uid, segment number, volume_mm3, long/short axis mm, slice index, SCOORDs.
    total_tumor_volume_mm3, sum_of_diameters_mm : float
    """
    from pydicom.uid import generate_uid

    from hepavol.measurement import measure_scan

    segments = read_seg_segments(seg)
    lesion_segs = {s.segment_number: s for s in segments if s.kind == "lesion"}
    if not lesion_segs:
        raise InputError(
            "The SEG has no lesion segment (segmented property category Morphologically Abnormal Structure, "
            "SCT 49755003); an SR measurement report needs at least one lesion."
        )
    _response("recist_response", recist_response, _RESPONSE_CODES)
    _response("volumetric_response", volumetric_response, _RESPONSE_CODES)
    liver = [s.segment_number for s in segments if s.kind == "liver"]
    arr = np.asarray(labels.array)
    keep = np.isin(arr, np.asarray([*lesion_segs, *liver], dtype=arr.dtype))
    label_map = labels.with_array(np.where(keep, arr, 0).astype(np.uint16))
    liver_label = liver[0] if liver else int(max(s.segment_number for s in segments)) + 1
    scan = measure_scan(label_map, image, liver_label=liver_label, instances=True)
    findings = [
        LesionFinding(
            tracking_id=lesion_segs[les.label].tracking_id,
            tracking_uid=lesion_segs[les.label].tracking_uid or generate_uid(),
            segment_number=les.label,
            volume_mm3=les.volume_ml * 1000.0,
            planar=(les,),
        )
        for les in sorted(scan.lesions, key=lambda m: m.label)
    ]
    total_mm3 = float(sum(f.volume_mm3 for f in findings))
    sod_mm = float(sum(les.long_axis_mm for f in findings for les in f.planar))
    sr, lesions = build_report(
        image,
        source_datasets,
        seg,
        findings,
        TimePointAssessment(
            total_tumor_volume_mm3=total_mm3,
            sum_of_diameters_mm=sod_mm,
            target_response=recist_response,
            volumetric_response=volumetric_response,
        ),
        time_point=time_point,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        series_number=series_number,
    )
    return sr, lesions, total_mm3, sod_mm


def build_report(
    image: Volume,
    source_datasets: Sequence[Any],
    seg: Any,
    findings: Sequence[LesionFinding],
    assessment: TimePointAssessment,
    *,
    time_point: TimePoint | None = None,
    absent: Sequence[AbsentLesion] = (),
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 301,
    series_description: str = "hepavol measurement report",
) -> tuple[Any, list[dict[str, Any]]]:
    """Build the TID 1500 SR of one timepoint from measured lesions and the SEG holding their segments.

    Parameters
    ----------
    image : Volume
        The source series (as read by :func:`hepavol.io.read_dicom_series`).
    source_datasets : sequence of pydicom.Dataset
        Its slices in the volume's order.
    seg : pydicom.Dataset or highdicom.seg.Segmentation
        The DICOM SEG on that series; ``findings[i].segment_number`` are its segments.
    findings : sequence of LesionFinding
        The lesions, in report order (a volumetric group, then one planar group per piece, each). May be empty
        (a follow-up scan on which every lesion has gone: there is then no "Imaging Measurements" container, and
        the derived measurements and qualitative evaluations are still written).
    assessment : TimePointAssessment
        Totals (derived imaging measurements) and responses (qualitative evaluations) of the time point.
    time_point : TimePoint, optional
        Time point context; the StudyDate of the source when omitted.
    absent : sequence of AbsentLesion
        Tracked lesions gone on this scan: one qualitative evaluation each (volume 0 mm3, long axis 0 mm), after
        the responses.
    series_instance_uid, sop_instance_uid : str, optional
        UIDs to use; new ones otherwise.
    series_number : int
        SeriesNumber of the SR.
    series_description : str
        SeriesDescription of the SR.

    Returns
    -------
    sr : highdicom.sr.Comprehensive3DSR
    lesions : list of dict
        Per lesion: tracking id/uid, segment number, volume_mm3, and per planar piece its long/short axis (mm),
        slice index, source SOP instance and SCOORD end points (``planar``); the first piece's values are also
        given at the top level.

    Raises
    ------
    InputError
        An unknown response value, or a lesion without a frame of its segment on its RECIST slice.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    target_code = _response("target_response", assessment.target_response, _RESPONSE_CODES)
    volumetric_code = _response("volumetric_response", assessment.volumetric_response, _RESPONSE_CODES)
    non_target = assessment.non_target_response
    non_target_code = (
        _response("non_target_response", non_target, _NON_TARGET_CODES)
        if non_target is not None and str(non_target).upper() not in ("NE", "ND")
        else None
    )
    overall_code = _response("overall_response", assessment.overall_response, _OVERALL_CODES)

    tp = time_point or TimePoint(time_point_id=str(getattr(source_datasets[0], "StudyDate", "") or "1"))
    tp_type = None
    if tp.baseline is not None:
        tp_type = codes.cid6146.Baseline if tp.baseline else codes.cid6146.Posttreatment
    tpc = hd.sr.TimePointContext(
        time_point=tp.time_point_id,
        time_point_type=tp_type,
    )
    liver_site = hd.sr.FindingSite(anatomic_location=_code(*LIVER_TYPE))
    finding = _code(*LESION_TYPE)
    mm = _code("mm", "UCUM", "millimeter")
    mm3 = _code("mm3", "UCUM", "cubic millimeter")
    long_code = _code("103339001", "SCT", "Long Axis")
    short_code = _code("103340004", "SCT", "Short Axis")
    seg_class = str(seg.SOPClassUID)
    seg_uid = str(seg.SOPInstanceUID)
    groups: list[Any] = []
    lesions: list[dict[str, Any]] = []
    src0 = source_datasets[0]
    for item in findings:
        tracking = hd.sr.TrackingIdentifier(uid=item.tracking_uid, identifier=item.tracking_id)
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg_class,
                    sop_instance_uid=seg_uid,
                    segment_number=item.segment_number,
                    source_series=hd.sr.SourceSeriesForSegmentation(str(src0.SeriesInstanceUID)),
                ),
                time_point_context=tpc,
                finding_type=finding,
                finding_sites=[liver_site],
                measurements=[
                    hd.sr.Measurement(
                        name=codes.SCT.Volume,
                        value=item.volume_mm3,
                        unit=mm3,
                        method=codes.DCM.SumOfSegmentedVoxelMethodForVolume,
                    )
                ],
            )
        )
        pieces = []
        for les in item.planar:
            src = source_datasets[les.slice_index]
            frame = _frame_of(seg, item.segment_number, str(src.SOPInstanceUID))
            if frame is None:
                raise InputError(
                    f"The SEG has no frame of segment {item.segment_number} ({item.tracking_id}) on source image "
                    f"{src.SOPInstanceUID} (slice {les.slice_index}); the SEG does not match the series."
                )
            source_ref = hd.sr.SourceImageForSegmentation.from_source_image(src)
            long_xy = [_pixel_xy(image, p, les.slice_index) for p in les.long_axis_endpoints_mm]
            short_xy = [_pixel_xy(image, p, les.slice_index) for p in les.short_axis_endpoints_mm]

            def scoord(xy: list[tuple[float, float]], src: Any = src) -> Any:
                return hd.sr.CoordinatesForMeasurement(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                    graphic_data=np.asarray(xy, dtype=float),
                    source_image=hd.sr.SourceImageForRegion.from_source_image(src),
                )

            planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_segment=hd.sr.ReferencedSegmentationFrame(
                    sop_class_uid=seg_class,
                    sop_instance_uid=seg_uid,
                    frame_number=frame,
                    segment_number=item.segment_number,
                    source_image=source_ref,
                ),
                time_point_context=tpc,
                finding_type=finding,
                finding_sites=[liver_site],
                measurements=[
                    hd.sr.Measurement(name=long_code, value=les.long_axis_mm, unit=mm),
                    hd.sr.Measurement(name=short_code, value=les.short_axis_mm, unit=mm),
                ],
            )
            # TID 300 allows "INFERRED FROM SCOORD" (TID 320) under each NUM; highdicom refuses referenced
            # coordinates in a planar group's measurements, so the SCOORDs are added to the NUM items here.
            _add_scoords(planar, {long_code.value: scoord(long_xy), short_code.value: scoord(short_xy)})
            _drop_segment_number_beside_frame(planar)
            groups.append(planar)
            pieces.append(
                {
                    "long_axis_mm": les.long_axis_mm,
                    "short_axis_mm": les.short_axis_mm,
                    "slice_index": les.slice_index,
                    "source_sop_instance_uid": str(src.SOPInstanceUID),
                    "long_axis_xy": long_xy,
                    "short_axis_xy": short_xy,
                }
            )
        lesions.append(
            {
                "tracking_id": item.tracking_id,
                "tracking_uid": item.tracking_uid,
                "segment_number": item.segment_number,
                "volume_mm3": item.volume_mm3,
                **(pieces[0] if pieces else {}),
                "planar": pieces,
            }
        )
    # Time-point content outside "Imaging Measurements" (see the module docstring for why): the totals as TID
    # 1420 derived measurements, the responses and the disappeared lesions as qualitative evaluations.
    qualitative: list[Any] = []
    for name, code in (
        (codes.DCM.CurrentResponse, target_code),
        (codes.DCM.CurrentResponse, non_target_code),
        (_code(*OVERALL_RESPONSE), overall_code),
        (_code(*VOLUMETRIC_RESPONSE), volumetric_code),
    ):
        if code is not None:
            qualitative.append(hd.sr.CodeContentItem(name=name, value=code, relationship_type="CONTAINS"))
    for gone in absent:
        qualitative.append(_absent_lesion_item(gone, mm=mm, mm3=mm3, long_code=long_code))
    derived = [
        (SUM_OF_DIAMETERS, assessment.sum_of_diameters_mm, mm),
        (TOTAL_TUMOR_VOLUME, assessment.total_tumor_volume_mm3, mm3),
    ]
    modality = str(getattr(source_datasets[0], "Modality", "CT")).upper()
    procedure = codes.cid100.MRIUnspecifiedBodyRegion if modality == "MR" else codes.cid100.CTUnspecifiedBodyRegion
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[_DEVICE_UID_SOURCE]),
            name="hepavol",
            manufacturer_name="hepavol",
            model_name=f"hepavol {__version__}",
        ),
    )
    if not groups:
        # highdicom needs one imaging measurement; a scan on which every lesion is gone has none: build the report
        # with a placeholder group and drop "Imaging Measurements" (TID 1500 row 6 is needed only without rows 10
        # and 12, which are then present).
        groups = [
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="placeholder"),
                measurements=[hd.sr.Measurement(name=long_code, value=0.0, unit=mm)],
            )
        ]
        placeholder = True
    else:
        placeholder = False
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*source_datasets, seg],
        content=report[0],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer="hepavol",
        is_complete=True,
        series_description=series_description,
    )
    position = next(
        n
        for n, item in enumerate(sr.ContentSequence, start=1)
        if item.ConceptNameCodeSequence[0].CodeValue == IMAGING_MEASUREMENTS[0]
    )
    if placeholder:
        del sr.ContentSequence[position - 1]
    derived_items = [
        hd.sr.NumContentItem(name=_code(*concept), value=float(number), unit=unit, relationship_type="CONTAINS")
        for concept, number, unit in derived
        if number is not None
    ]
    from pydicom.sequence import Sequence as DicomSequence

    extra = [_container(DERIVED_IMAGING_MEASUREMENTS, derived_items)]
    if qualitative:
        extra.append(_container(QUALITATIVE_EVALUATIONS, qualitative))
    sr.ContentSequence = DicomSequence([*sr.ContentSequence, *extra])
    _identify_private_coding_scheme(sr)
    return sr, lesions


def _container(concept: tuple[str, str, str], items: Sequence[Any]) -> Any:
    """A CONTAINS CONTAINER (continuity SEPARATE) of TID 1500 holding ``items``."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    item = hd.sr.ContainerContentItem(name=_code(*concept), relationship_type="CONTAINS")
    container = Dataset()  # plain: it may hold by-reference items, which highdicom's content items refuse
    for element in item:
        container.add(element)
    container.ContentSequence = DicomSequence(items)
    return container


def _absent_lesion_item(gone: AbsentLesion, *, mm: Any, mm3: Any, long_code: Any) -> Any:
    """A qualitative evaluation (TID 1500 row 13) "Tracked lesion status" = "Disappeared" for a lesion with no
    voxel left, with its tracking identifier and TrackingUID and its RECIST 1.1 long axis (0 mm) and volume (0 mm3)
    as properties (TID 1500 is extensible), so a reader following the TrackingUID sees the lesion go."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    item = hd.sr.CodeContentItem(
        name=_code(*LESION_STATUS), value=_code(*LESION_DISAPPEARED), relationship_type="CONTAINS"
    )
    item.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=codes.DCM.TrackingIdentifier, value=gone.tracking_id, relationship_type="HAS PROPERTIES"
            ),
            hd.sr.UIDRefContentItem(
                name=codes.DCM.TrackingUniqueIdentifier,
                value=gone.tracking_uid,
                relationship_type="HAS PROPERTIES",
            ),
            hd.sr.NumContentItem(name=long_code, value=0.0, unit=mm, relationship_type="HAS PROPERTIES"),
            hd.sr.NumContentItem(
                name=_code("118565006", "SCT", "Volume"), value=0.0, unit=mm3, relationship_type="HAS PROPERTIES"
            ),
        ],
        is_root=False,
    )
    return item


def _identify_private_coding_scheme(sr: Any) -> None:
    """CodingSchemeIdentificationSequence (0008,0110) item for 99HEPAVOL (PS3.3 C.12.1.1.2: a coding scheme not
    in PS3.16 Table 8-1 shall be identified), so readers and validators know where the private codes come from."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_CODING_SCHEME
    item.CodingSchemeName = "hepavol private codes"
    item.CodingSchemeVersion = __version__
    item.CodingSchemeResponsibleOrganization = "hepavol developers"
    existing = [
        i
        for i in getattr(sr, "CodingSchemeIdentificationSequence", [])
        if i.CodingSchemeDesignator != item.CodingSchemeDesignator
    ]
    sr.CodingSchemeIdentificationSequence = DicomSequence([*existing, item])


def write_dicom_sr(
    image: Volume,
    seg_path: str | os.PathLike[str],
    path: str | os.PathLike[str] | None,
    *,
    time_point: TimePoint | None = None,
    recist_response: str | None = None,
    volumetric_response: str | None = None,
    derive_frame_of_reference: bool = True,
    deidentify: str | None = None,
) -> SrExport:
    """Write the TID 1500 SR of one timepoint for a DICOM SEG on a DICOM series (atomically).

    Parameters
    ----------
    image : Volume
        The source series, read with :func:`hepavol.io.read_dicom_series`.
    seg_path : str or os.PathLike
        The DICOM SEG file on that series (e.g. written by :func:`hepavol.io.seg_write.write_dicom_seg`).
    path : str or os.PathLike or None
        Output file; ``None`` builds the object without writing it.
    time_point, recist_response, volumetric_response
        See :func:`build_measurement_report`.
    derive_frame_of_reference : bool
        As in :func:`hepavol.io.seg_write.load_source_datasets` (a source without FrameOfReferenceUID).

    Returns
    -------
    SrExport

    Raises
    ------
    InputError
        If the SEG is not a DICOM SEG, has no lesion segment, or does not reference this series.
    """
    import pydicom

    from hepavol.io.segmentation import read_segmentation

    seg = pydicom.dcmread(seg_path)
    if str(getattr(seg, "SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
        raise InputError(f"'{seg_path}' is not a DICOM Segmentation; an SR references the segments of a SEG.")
    sources = load_source_datasets(image, derive_frame_of_reference=derive_frame_of_reference)
    series_uid = str(sources[0].SeriesInstanceUID)
    referenced = {
        str(s.SeriesInstanceUID) for s in getattr(seg, "ReferencedSeriesSequence", []) if "SeriesInstanceUID" in s
    }
    if referenced and series_uid not in referenced:
        raise InputError(
            f"The SEG '{seg_path}' references series {sorted(referenced)}, not the source series {series_uid}. "
            "Give the series the segmentation was made on."
        )
    if not any(s.kind == "lesion" for s in read_seg_segments(seg)):
        raise InputError(
            f"The SEG '{seg_path}' has no lesion segment (segmented property category Morphologically Abnormal "
            "Structure, SCT 49755003); an SR measurement report needs at least one lesion."
        )
    labels = read_segmentation(seg_path, reference=image.geometry)
    sr, lesions, total_mm3, sod_mm = build_measurement_report(
        image,
        sources,
        seg,
        labels,
        time_point=time_point,
        recist_response=recist_response,
        volumetric_response=volumetric_response,
    )
    out = None if path is None else write_dataset(sr, path, deidentify=deidentify)
    return SrExport(
        path=out,
        sop_instance_uid=str(sr.SOPInstanceUID),
        series_instance_uid=str(sr.SeriesInstanceUID),
        lesions=tuple(lesions),
        total_tumor_volume_mm3=total_mm3,
        sum_of_diameters_mm=sod_mm,
        dataset=sr,
    )
