"""Read the linear measurements (RECIST lines) of a DICOM SR TID 1500 Measurement Report.

A radiologist's RECIST read exported from a PACS is a TID 1500 report whose measurement groups (TID 1501, "Measurement
Group" 125007 DCM) hold a NUM length in mm (Long Axis, Short Axis, Length, Diameter...) *inferred from* a SCOORD
POLYLINE on one image (``SELECTED FROM`` an IMAGE item naming the SOP instance) or a SCOORD3D POLYLINE in a frame of
reference. :func:`read_linear_measurements` returns each such line; :func:`image_points_to_lps` maps 2D SCOORD
points to the patient frame.

SCOORD coordinates are (column, row) image coordinates with (0, 0) at the outer corner of the top left pixel
(PS3.3 C.18.6.1.2), so the centre of voxel (row r, column c) is (c + 0.5, r + 0.5), as :mod:`hepavol.io.sr_write`
writes them. The reader is lenient (highdicom's rule): items it does not need are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepavol.errors import InputError

__all__ = [
    "GSPS_SOP_CLASS_UID",
    "SR_SOP_CLASS_UIDS",
    "LinearMeasurement",
    "image_points_to_lps",
    "read_linear_measurements",
    "read_presentation_state_lines",
]

#: Grayscale Softcopy Presentation State Storage.
GSPS_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.11.1"

#: Basic Text, Enhanced, Comprehensive, Comprehensive 3D and Extensible SR Storage.
SR_SOP_CLASS_UIDS = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",
        "1.2.840.10008.5.1.4.1.1.88.22",
        "1.2.840.10008.5.1.4.1.1.88.33",
        "1.2.840.10008.5.1.4.1.1.88.34",
        "1.2.840.10008.5.1.4.1.1.88.35",
    }
)

_GROUP = "125007"  # Measurement Group (DCM)
_TRACKING_ID, _TRACKING_UID = "112039", "112040"
#: Short axis concepts: the same lesion as the group's long axis (SRT G-A186, SCT 103340004).
_SHORT_AXIS = frozenset({"G-A186", "103340004"})
_LONG_AXIS = frozenset({"G-A185", "103339001"})
_MM = {"mm": 1.0, "cm": 10.0, "um": 0.001}


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearMeasurement:
    """One linear measurement of a report.

    Attributes
    ----------
    group : int
        1-based number of its measurement group (0 when it is not in one).
    concept : str
        The NUM's concept name (CodeMeaning), e.g. ``"Long Axis"``, ``"Length"``.
    value_mm : float or None
        The NUM's value in mm (None when its unit is not a length).
    tracking_id, tracking_uid : str or None
        The group's Tracking Identifier and Tracking Unique Identifier.
    graphic_type : str
        ``"POLYLINE"`` (others are not lines).
    points : tuple of tuple of float
        (column, row) image coordinates (2D SCOORD) or (x, y, z) LPS mm (SCOORD3D); the two farthest points of the
        polyline.
    referenced_sop_uid : str or None
        The image the 2D SCOORD was drawn on (None when the SR does not say).
    frame_of_reference_uid : str or None
        The frame of reference of a SCOORD3D.
    short_axis : bool
        A short axis (the group's long axis is the lesion's line).
    """

    group: int
    concept: str
    value_mm: float | None
    tracking_id: str | None
    tracking_uid: str | None
    graphic_type: str
    points: tuple[tuple[float, ...], ...]
    referenced_sop_uid: str | None
    frame_of_reference_uid: str | None
    short_axis: bool

    @property
    def is_3d(self) -> bool:
        return len(self.points[0]) == 3


def _code(item: Any) -> tuple[str, str]:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return "", ""
    return str(seq[0].get("CodeValue", "") or seq[0].get("LongCodeValue", "")), str(seq[0].get("CodeMeaning", ""))


def _farthest(points: Sequence[tuple[float, ...]]) -> tuple[tuple[float, ...], ...]:
    if len(points) <= 2:
        return tuple(points)
    a = np.asarray(points, dtype=float)
    d = np.linalg.norm(a[:, None, :] - a[None, :, :], axis=-1)
    i, j = (int(v) for v in np.unravel_index(int(np.argmax(d)), d.shape))
    return (tuple(points[i]), tuple(points[j]))


def _scoord(item: Any) -> tuple[str, tuple[tuple[float, ...], ...], str | None, str | None] | None:
    """(graphic type, points, referenced SOP instance, frame of reference) of a SCOORD or SCOORD3D item."""
    kind = str(item.get("ValueType", ""))
    if kind not in ("SCOORD", "SCOORD3D"):
        return None
    data = [float(v) for v in (item.get("GraphicData") or [])]
    n = 3 if kind == "SCOORD3D" else 2
    points = [tuple(data[i : i + n]) for i in range(0, len(data) - n + 1, n)]
    sop = None
    for child in item.get("ContentSequence", []) or []:
        if str(child.get("ValueType", "")) == "IMAGE" and child.get("ReferencedSOPSequence"):
            sop = str(child.ReferencedSOPSequence[0].get("ReferencedSOPInstanceUID", "")) or None
    frame = str(item.get("ReferencedFrameOfReferenceUID", "") or "") or None
    return str(item.get("GraphicType", "")), tuple(points), sop, frame


def read_linear_measurements(source: str | os.PathLike[str] | Any) -> list[LinearMeasurement]:
    """The linear measurements (polylines of two or more points) of a TID 1500 report (module docstring).

    Parameters
    ----------
    source : path or pydicom Dataset
        The SR file, or the dataset.

    Raises
    ------
    InputError
        If the file is not a DICOM SR.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(source, pydicom.Dataset):
        ds = source
        where = "the dataset"
    else:
        where = f"'{source}'"
        try:
            ds = pydicom.dcmread(source)
        except (InvalidDicomError, OSError) as exc:
            raise InputError(f"{where} is not a readable DICOM file ({exc}).") from None
    if str(ds.get("SOPClassUID", "")) not in SR_SOP_CLASS_UIDS:
        raise InputError(
            f"{where} is not a DICOM structured report (SOPClassUID {ds.get('SOPClassUID', 'missing')})."
        )
    found: list[LinearMeasurement] = []
    groups = 0

    def walk(items: Any, group: int, tracking: tuple[str | None, str | None]) -> None:
        nonlocal groups
        for item in items or []:
            code, meaning = _code(item)
            kind = str(item.get("ValueType", ""))
            if kind == "CONTAINER" and code == _GROUP:
                groups += 1
                here = groups
                tid = tuid = None
                for child in item.get("ContentSequence", []) or []:
                    c, _m = _code(child)
                    if c == _TRACKING_ID:
                        tid = str(child.get("TextValue", "")) or None
                    elif c == _TRACKING_UID:
                        tuid = str(child.get("UID", "")) or None
                walk(item.get("ContentSequence"), here, (tid, tuid))
                continue
            if kind == "NUM":
                value = None
                mv = item.get("MeasuredValueSequence")
                if mv:
                    units = mv[0].get("MeasurementUnitsCodeSequence")
                    unit = str(units[0].get("CodeValue", "")) if units else ""
                    if unit in _MM and mv[0].get("NumericValue") not in (None, ""):
                        value = float(mv[0].NumericValue) * _MM[unit]
                for child in item.get("ContentSequence", []) or []:
                    coords = _scoord(child)
                    if coords is None or coords[0] != "POLYLINE" or len(coords[1]) < 2:
                        continue
                    found.append(
                        LinearMeasurement(
                            group=group,
                            concept=meaning or code,
                            value_mm=value,
                            tracking_id=tracking[0],
                            tracking_uid=tracking[1],
                            graphic_type=coords[0],
                            points=_farthest(coords[1]),
                            referenced_sop_uid=coords[2],
                            frame_of_reference_uid=coords[3],
                            short_axis=code in _SHORT_AXIS,
                        )
                    )
            if "ContentSequence" in item and kind != "NUM":
                walk(item.ContentSequence, group, tracking)

    walk(ds.get("ContentSequence"), 0, (None, None))
    return found


def read_presentation_state_lines(source: str | os.PathLike[str] | Any) -> list[LinearMeasurement]:
    """The RECIST lines drawn as graphic annotations of a Grayscale Softcopy Presentation State.

    A POLYLINE of two or more points (its two farthest points) or an ELLIPSE (its major axis: the first two of its
    four points, PS3.3 C.10.5.1.2) in PIXEL units on the referenced image(s) of its annotation (a
    GraphicAnnotationSequence item naming one image in ReferencedImageSequence; an annotation on several images is
    ambiguous and is returned without an image reference). Objects in DISPLAY units (relative to the screen) are
    skipped: they are not in image coordinates. Each line is a :class:`LinearMeasurement` (``group`` = the
    annotation's number, ``concept`` ``"polyline"`` or ``"ellipse major axis"``, no value).

    Raises
    ------
    InputError
        If the file is not a GSPS.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(source, pydicom.Dataset):
        ds, where = source, "the dataset"
    else:
        where = f"'{source}'"
        try:
            ds = pydicom.dcmread(source)
        except (InvalidDicomError, OSError) as exc:
            raise InputError(f"{where} is not a readable DICOM file ({exc}).") from None
    if str(ds.get("SOPClassUID", "")) != GSPS_SOP_CLASS_UID:
        raise InputError(
            f"{where} is not a Grayscale Softcopy Presentation State ({ds.get('SOPClassUID', 'missing')})."
        )
    found: list[LinearMeasurement] = []
    for n, annotation in enumerate(ds.get("GraphicAnnotationSequence", []) or [], start=1):
        images = annotation.get("ReferencedImageSequence", []) or []
        sop = str(images[0].get("ReferencedSOPInstanceUID", "")) if len(images) == 1 else None
        for graphic in annotation.get("GraphicObjectSequence", []) or []:
            if str(graphic.get("GraphicAnnotationUnits", "")).upper() != "PIXEL":
                continue
            kind = str(graphic.get("GraphicType", "")).upper()
            data = [float(v) for v in (graphic.get("GraphicData") or [])]
            points = [(data[i], data[i + 1]) for i in range(0, len(data) - 1, 2)]
            if kind == "POLYLINE" and len(points) >= 2:
                line, concept = _farthest(points), "polyline"
            elif kind == "ELLIPSE" and len(points) == 4:
                line, concept = (points[0], points[1]), "ellipse major axis"
            else:
                continue
            found.append(
                LinearMeasurement(
                    group=n,
                    concept=concept,
                    value_mm=None,
                    tracking_id=None,
                    tracking_uid=None,
                    graphic_type=kind,
                    points=tuple(line),
                    referenced_sop_uid=sop or None,
                    frame_of_reference_uid=None,
                    short_axis=False,
                )
            )
    return found


def image_points_to_lps(
    points: Sequence[Sequence[float]],
    *,
    position: Sequence[float],
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
) -> list[list[float]]:
    """LPS mm of 2D SCOORD (column, row) points on an image with ImagePositionPatient ``position``,
    ImageOrientationPatient ``orientation`` and PixelSpacing ``pixel_spacing`` (row spacing, column spacing).

    Examples
    --------
    The centre of the top left pixel, (0.5, 0.5), is the ImagePositionPatient:

    >>> image_points_to_lps([(0.5, 0.5), (10.5, 0.5)], position=(-100, -50, 20), orientation=(1, 0, 0, 0, 1, 0),
    ...                     pixel_spacing=(0.8, 0.7))
    [[-100.0, -50.0, 20.0], [-93.0, -50.0, 20.0]]
    """
    origin = np.asarray(position, dtype=float)
    row_dir = np.asarray(orientation[:3], dtype=float)  # direction of increasing column index
    col_dir = np.asarray(orientation[3:6], dtype=float)  # direction of increasing row index
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    out = []
    for column, row in points:
        p = origin + row_dir * dc * (float(column) - 0.5) + col_dir * dr * (float(row) - 0.5)
        out.append([round(float(v), 6) for v in p])
    return out
