"""Simulated DICOM trees without masks but with a radiologist's RECIST lines in a DICOM SR TID 1500 (highdicom).

The lines are the truth's: the long axis of each simulated lesion's mask (``hepavol.measurement`` on the truth
instance map), drawn as a SCOORD POLYLINE on the image of its slice, as a PACS viewer exports them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np


def simulated_tree(out: Path, *, seed: int, index: int, sr: bool = True) -> tuple[Path, dict[str, Any]]:
    """One simulated CT patient (small grid) as a DICOM tree without its SEG, with an SR of the truth's RECIST
    lines in each study (``sr``); the tree's root and the patient's truth record."""
    from hepavol.simulate import simulate_patient

    made = simulate_patient(index, out / "sim", seed=seed, modality="ct", size="small", fmt="dicom")
    root = out / "tree"
    patient = root / made.truth["patient_id"]
    for scan in made.truth["scans"]:
        study = Path(scan["image"]).parent
        shutil.copytree(made.folder / scan["image"], patient / scan["image"])
        if sr:
            lines = truth_lines(made.folder / scan["instances"])
            write_recist_sr(patient / scan["image"], lines, patient / study / "sr" / "SR.dcm")
    return root, {**made.truth, "folder": str(made.folder)}


def truth_lines(instances: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(lesion label, end A, end B) LPS mm of the long axis of each lesion of a truth instance map."""
    from hepavol.io import read_image
    from hepavol.measurement import measure_scan

    m = measure_scan(read_image(instances), instances=True, liver_label=65535)  # label n = lesion n (no liver)
    return [
        (str(les.label), np.asarray(les.long_axis_endpoints_mm[0]), np.asarray(les.long_axis_endpoints_mm[1]))
        for les in m.lesions
    ]


def _headers(series: Path) -> list[Any]:
    import pydicom

    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(series.glob("*.dcm"))]


def image_point(ds: Any, lps: np.ndarray) -> tuple[float, float, float]:
    """(column, row) SCOORD coordinates of an LPS point on image ``ds`` and its distance from the image plane."""
    origin = np.asarray(ds.ImagePositionPatient, dtype=float)
    row_dir = np.asarray(ds.ImageOrientationPatient[:3], dtype=float)
    col_dir = np.asarray(ds.ImageOrientationPatient[3:], dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    d = np.asarray(lps, dtype=float) - origin
    return float(d @ row_dir / dc + 0.5), float(d @ col_dir / dr + 0.5), float(abs(d @ np.cross(row_dir, col_dir)))


def write_recist_sr(
    series: Path,
    lines: list[tuple[str, np.ndarray, np.ndarray]],
    path: Path,
    *,
    image_references: bool = True,
    shift_columns: float = 0.0,
) -> Path:
    """A TID 1500 Enhanced SR with one measurement group per line: NUM Long Axis (mm) INFERRED FROM a SCOORD
    POLYLINE SELECTED FROM the image of the line's slice (built with highdicom; the references removed with
    pydicom when ``image_references`` is False). ``shift_columns`` moves every point along the columns."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    headers = _headers(series)
    groups = []
    for label, a, b in lines:
        ds = min(headers, key=lambda h: image_point(h, a)[2])
        ca, ra, _ = image_point(ds, a)
        cb, rb, _ = image_point(ds, b)
        scoord = hd.sr.ScoordContentItem(
            name=codes.DCM.ImageRegion,
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.array([[ca + shift_columns, ra], [cb + shift_columns, rb]]),
            pixel_origin_interpretation=hd.sr.PixelOriginInterpretationValues.VOLUME,
            relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
        )
        scoord.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.ImageContentItem(
                    name=codes.DCM.SourceOfMeasurement,
                    referenced_sop_class_uid=ds.SOPClassUID,
                    referenced_sop_instance_uid=ds.SOPInstanceUID,
                    relationship_type=hd.sr.RelationshipTypeValues.SELECTED_FROM,
                )
            ],
            is_root=False,
        )
        num = hd.sr.NumContentItem(
            name=hd.sr.CodedConcept("103339001", "SCT", "Long Axis"),
            value=float(np.linalg.norm(b - a)),
            unit=hd.sr.CodedConcept("mm", "UCUM", "millimeter"),
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
        num.ContentSequence = hd.sr.ContentSequence([scoord], is_root=False)
        group = hd.sr.ContainerContentItem(
            name=codes.DCM.MeasurementGroup, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        group.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.TextContentItem(
                    name=codes.DCM.TrackingIdentifier,
                    value=f"lesion {label}",
                    relationship_type=hd.sr.RelationshipTypeValues.HAS_OBS_CONTEXT,
                ),
                num,
            ],
            is_root=False,
        )
        groups.append(group)
    measurements = hd.sr.ContainerContentItem(
        name=codes.DCM.ImagingMeasurements, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    measurements.ContentSequence = hd.sr.ContentSequence(groups, is_root=False)
    root = hd.sr.ContainerContentItem(name=codes.DCM.ImagingMeasurementReport, template_id="1500")
    root.ContentSequence = hd.sr.ContentSequence([measurements], is_root=False)
    sr = hd.sr.EnhancedSR(
        evidence=headers,
        content=root,
        series_instance_uid=hd.UID(),
        series_number=300,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hepavol tests",
        is_complete=True,
    )
    if not image_references:
        for group in sr.ContentSequence[0].ContentSequence:
            for item in group.get("ContentSequence", []):
                if item.ValueType == "NUM":
                    for sc in item.ContentSequence:
                        del sc.ContentSequence
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path, enforce_file_format=True)
    return path


def truth_record(tree_truth: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(tree_truth))


def write_recist_gsps(series: Path, lines: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path:
    """A Grayscale Softcopy Presentation State (pydicom) with the lines as graphic annotations in PIXEL units on
    the image of each line's slice: the first as a POLYLINE, the others as an ELLIPSE whose major axis is the line
    (minor axis half as long), and one annotation in DISPLAY units (screen coordinates: not a seed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    headers = _headers(series)
    first = headers[0]
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "PR"
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime"):
        if keyword in first:
            setattr(ds, keyword, getattr(first, keyword))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 400
    ds.InstanceNumber = 1
    ds.ContentLabel = "RECIST"
    annotations = []
    for i, (_label, a, b) in enumerate(lines):
        image = min(headers, key=lambda h: image_point(h, a)[2])
        ca, ra, _ = image_point(image, a)
        cb, rb, _ = image_point(image, b)
        graphic = Dataset()
        graphic.GraphicAnnotationUnits = "PIXEL"
        graphic.GraphicDimensions = 2
        if i == 0:
            graphic.GraphicType = "POLYLINE"
            graphic.NumberOfGraphicPoints = 2
            graphic.GraphicData = [ca, ra, cb, rb]
        else:
            mc, mr = (ca + cb) / 2, (ra + rb) / 2
            dc, dr = (cb - ca) / 4, (rb - ra) / 4  # half of the half-axis, perpendicular
            graphic.GraphicType = "ELLIPSE"
            graphic.NumberOfGraphicPoints = 4
            graphic.GraphicData = [ca, ra, cb, rb, mc - dr, mr + dc, mc + dr, mr - dc]
        graphic.GraphicFilled = "N"
        reference = Dataset()
        reference.ReferencedSOPClassUID = image.SOPClassUID
        reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
        annotation = Dataset()
        annotation.GraphicLayer = "RECIST"
        annotation.ReferencedImageSequence = DicomSequence([reference])
        annotation.GraphicObjectSequence = DicomSequence([graphic])
        annotations.append(annotation)
    screen = Dataset()
    screen.GraphicAnnotationUnits = "DISPLAY"
    screen.GraphicDimensions = 2
    screen.GraphicType = "POLYLINE"
    screen.NumberOfGraphicPoints = 2
    screen.GraphicData = [0.1, 0.1, 0.3, 0.3]
    annotations[0].GraphicObjectSequence.append(screen)
    ds.GraphicAnnotationSequence = DicomSequence(annotations)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
