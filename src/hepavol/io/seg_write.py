"""Write a label map as a DICOM Segmentation (binary) on the CT/MR series it was drawn on, via highdicom.

The SEG has one segment for the liver (when the liver label is present) and one per lesion:

- **Liver**: category Anatomical Structure (SCT 91723000), type Liver (SCT 10200004). Its voxels are the liver
  label only (parenchyma without lesions) so that segments never overlap and every voxel has one label when
  the SEG is read back as a label map.
- **Lesions**: category Morphologically Abnormal Structure (SCT 49755003), type Neoplasm, Secondary (SCT
  14799000, CID 7151), anatomic region Liver. A lesion is a connected component of the tumour label(s) (or one
  instance label with ``instances=True``), numbered ``L1, L2, ...`` from the largest, as
  :func:`hepavol.measurement.measure_scan` numbers them. Each lesion segment carries a TrackingID (its lesion id)
  and a TrackingUID (new, or the one given for that lesion id, so a lesion keeps its UID across timepoints).
- **Colours**: every segment has a RecommendedDisplayCIELabValue from a fixed palette (:func:`segment_rgb`), the
  liver's distinct from every lesion's, so viewers do not pick their own.

No private code is used in the SEG (only SNOMED CT), so it needs no CodingSchemeIdentificationSequence; the SR's
private scheme ``99HEPAVOL`` is identified in the SR.

Geometry is right by construction: frame ``k`` of the segmentation array is slice ``k`` of the source volume,
whose files are passed to highdicom in that order; highdicom copies each frame's position and orientation from
its source image and references it (Derivation Image / Source Image Sequence). Empty frames are omitted.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol._atomic import write_bytes_atomic
from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.geometry import check_same_grid
from hepavol.volume import Volume

__all__ = [
    "LESION_CATEGORY",
    "LESION_TYPE",
    "LIVER_CATEGORY",
    "LIVER_TYPE",
    "SegExport",
    "SegmentInfo",
    "build_segmentation",
    "derived_frame_of_reference_uid",
    "load_source_datasets",
    "segment_map",
    "segment_rgb",
    "write_dicom_seg",
]


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.sr.coding import Code

    return Code(value, scheme, meaning)


#: Segmented property category and type of the liver segment (CID 7150 / CID 7151).
LIVER_CATEGORY = ("91723000", "SCT", "Anatomical Structure")
LIVER_TYPE = ("10200004", "SCT", "Liver")
#: Segmented property category and type of a lesion segment (CID 7150 / CID 7151).
LESION_CATEGORY = ("49755003", "SCT", "Morphologically Abnormal Structure")
LESION_TYPE = ("14799000", "SCT", "Neoplasm, Secondary")
#: Recommended display colours (sRGB, written as RecommendedDisplayCIELabValue): the liver in 3D Slicer's liver
#: tan, lesions in a fixed palette of saturated hues far from it, ``L<n>`` taking entry ``(n - 1) % 8`` so a
#: lesion keeps its colour on every scan of a follow-up.
LIVER_RGB = (221, 130, 101)
LESION_PALETTE_RGB = (
    (255, 221, 0),  # yellow
    (0, 190, 255),  # cyan
    (255, 0, 170),  # magenta
    (120, 220, 40),  # green
    (150, 90, 255),  # violet
    (0, 90, 255),  # blue
    (255, 40, 40),  # red
    (0, 220, 170),  # teal
)


def segment_rgb(kind: str, tracking_id: str, position: int) -> tuple[int, int, int]:
    """The display colour of a segment: the liver's, or the palette entry of lesion ``L<n>`` (else of its
    0-based ``position`` among the lesions).

    >>> segment_rgb("liver", "liver", 0), segment_rgb("lesion", "L2", 0), segment_rgb("lesion", "L10", 0)
    ((221, 130, 101), (0, 190, 255), (0, 190, 255))
    """
    if kind == "liver":
        return LIVER_RGB
    digits = tracking_id[1:]
    index = int(digits) - 1 if tracking_id[:1] == "L" and digits.isdigit() and int(digits) > 0 else position
    return LESION_PALETTE_RGB[index % len(LESION_PALETTE_RGB)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentInfo:
    """One segment of an exported SEG."""

    segment_number: int
    segment_label: str
    kind: str  # "liver" or "lesion"
    tracking_id: str
    tracking_uid: str
    voxel_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SegExport:
    """What :func:`write_dicom_seg` wrote: the file, its UIDs and its segments (liver first, then L1, L2, ...)."""

    path: Path | None
    sop_instance_uid: str
    series_instance_uid: str
    segments: tuple[SegmentInfo, ...]
    dataset: Any  # highdicom.seg.Segmentation


def segment_map(
    labels: Volume,
    *,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    instances: bool = False,
    connectivity: int = 26,
) -> tuple[NDArray[np.uint16], list[tuple[str, int]]]:
    """Relabel a label map into segment numbers: the liver first (if present), then lesions from the largest.

    Parameters
    ----------
    labels : Volume
        Integer label map.
    liver_label, tumor_labels, instances, connectivity
        As in :func:`hepavol.measurement.measure_scan`.

    Returns
    -------
    segments : ndarray of uint16
        0 = background, 1..n = segment numbers.
    kinds : list of (kind, voxel_count)
        ``kinds[i]`` describes segment ``i + 1``; kind is ``"liver"`` or ``"lesion"``.
    """
    if connectivity not in (6, 18, 26):
        raise InputError(f"Argument 'connectivity' must be 6, 18 or 26, but it is {connectivity}.")
    arr = np.asarray(labels.array)
    if arr.dtype.kind not in "iub":
        raise InputError(f"The segmentation must hold integer labels, but its type is {arr.dtype}.")
    liver = arr == liver_label
    if instances:
        tumor = (arr != 0) & ~liver
    else:
        tumor = np.isin(arr, np.asarray(list(tumor_labels), dtype=arr.dtype))
        if liver_label in tumor_labels:
            raise InputError(f"The liver label {liver_label} is also a tumour label {list(tumor_labels)}.")
    out = np.zeros(arr.shape, dtype=np.uint16)
    kinds: list[tuple[str, int]] = []
    liver_count = int(np.count_nonzero(liver))
    if liver_count:
        out[liver] = 1
        kinds.append(("liver", liver_count))
    if np.any(tumor):
        nz = np.nonzero(tumor)
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in nz)
        crop = tumor[box]
        if instances:
            comp = np.where(crop, arr[box], 0).astype(np.int64)
        else:
            import cc3d

            comp = cc3d.connected_components(crop, connectivity=connectivity).astype(np.int64)  # type: ignore[call-overload]
        flat = comp.ravel()
        ids, first, counts = np.unique(flat, return_index=True, return_counts=True)
        keep = ids != 0
        ids, first, counts = ids[keep], first[keep], counts[keep]
        # largest first; ties by first voxel in array order (as measure_scan numbers lesions)
        order = sorted(range(ids.size), key=lambda i: (-int(counts[i]), int(first[i])))
        lut = np.zeros(int(ids.max()) + 1, dtype=np.uint16)
        start = len(kinds) + 1
        if start + len(order) - 1 > np.iinfo(np.uint16).max:
            raise InputError(f"{len(order)} lesions are too many for one DICOM SEG (at most 65534 segments).")
        for rank, i in enumerate(order):
            lut[int(ids[i])] = start + rank
            kinds.append(("lesion", int(counts[i])))
        sub = out[box]
        sub[crop] = lut[comp[crop]]
    return out, kinds


#: Entropy prefix of a derived FrameOfReferenceUID (never change: it would change every derived UID).
_DERIVED_FOR_SOURCE = "hepavol derived FrameOfReferenceUID"

#: Type 1 attributes a SEG or SR copies or needs from each source image: (keyword, tag, what it is needed for).
_REQUIRED_SOURCE_ATTRIBUTES = (
    ("SOPClassUID", "(0008,0016)", "to reference the image"),
    ("SOPInstanceUID", "(0008,0018)", "to reference the image"),
    ("StudyInstanceUID", "(0020,000D)", "the SEG/SR belongs to the study of its source"),
    ("SeriesInstanceUID", "(0020,000E)", "to reference the source series"),
    ("Modality", "(0008,0060)", "the SR's procedure code (CT or MR)"),
    ("ImagePositionPatient", "(0020,0032)", "the SEG's plane positions"),
    ("ImageOrientationPatient", "(0020,0037)", "the SEG's plane orientation"),
    ("PixelSpacing", "(0028,0030)", "the SEG's pixel measures"),
    ("Rows", "(0028,0010)", "the SEG's frame size"),
    ("Columns", "(0028,0011)", "the SEG's frame size"),
)


def derived_frame_of_reference_uid(study_instance_uid: str, series_instance_uid: str) -> str:
    """The FrameOfReferenceUID hepavol gives to the SEG/SR of a source series that has none.

    Deterministic: derived (``pydicom.uid.generate_uid(entropy_srcs=...)``) from the study and series UIDs, so
    every object hepavol makes from the same series, in any run, shares one frame of reference.

    Examples
    --------
    >>> a = derived_frame_of_reference_uid("1.2.3", "1.2.3.4")
    >>> a == derived_frame_of_reference_uid("1.2.3", "1.2.3.4"), a == derived_frame_of_reference_uid("1.2.3", "1.2.3.5")
    (True, False)
    """
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[_DERIVED_FOR_SOURCE, str(study_instance_uid), str(series_instance_uid)]))


def frame_of_reference_is_derived(dataset: Any) -> bool:
    """Whether ``dataset`` carries the FrameOfReferenceUID hepavol derives for its series (see above)."""
    uid = str(getattr(dataset, "FrameOfReferenceUID", "") or "")
    if not uid or "StudyInstanceUID" not in dataset or "SeriesInstanceUID" not in dataset:
        return False
    return uid == derived_frame_of_reference_uid(str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID))


def _check_source_attributes(datasets: Sequence[Any], files: Sequence[Any], source: str) -> None:
    """InputError naming the first Type 1 attribute missing (or empty) on the source images, with the fix."""
    for keyword, tag, why in _REQUIRED_SOURCE_ATTRIBUTES:
        missing = [i for i, ds in enumerate(datasets) if ds.get(keyword) in (None, "", [])]
        if missing:
            raise InputError(
                f"{keyword} {tag} is missing or empty on {len(missing)} of {len(datasets)} images of the source "
                f"series '{source}' (first: {files[missing[0]]}); a DICOM SEG/SR needs it ({why}). hepavol does "
                f"not invent it: add {keyword} to the images (DCMTK: dcmodify -i '{tag}=VALUE' FILES) "
                "or export the series again from the scanner or PACS."
            )


def load_source_datasets(image: Volume, *, derive_frame_of_reference: bool = True) -> list[Any]:
    """The pydicom datasets (without pixel data) of a single-frame DICOM series, in the volume's slice order.

    A series without FrameOfReferenceUID (0020,0052) (many legacy and research exports) gets, in these
    in-memory datasets only, the UID of :func:`derived_frame_of_reference_uid`, and a warning naming the series
    and the UID; the SEG built on them records it (ImageComments). With ``derive_frame_of_reference=False``
    such a series is refused instead.

    Raises
    ------
    InputError
        If the volume was not read from DICOM, was resampled (``--allow-gaps``), is one multi-frame file, or a
        Type 1 attribute the SEG/SR needs is missing (FrameOfReferenceUID only with
        ``derive_frame_of_reference=False``).
    """
    import warnings

    import pydicom

    meta = image.metadata
    files = meta.get("files") or []
    if meta.get("format") != "dicom" or not files:
        raise InputError(
            f"The source image '{image.source}' was not read from a DICOM series; a DICOM SEG or SR must reference "
            "the DICOM images the segmentation was drawn on. Give the DICOM series folder as SOURCE."
        )
    if meta.get("number_of_frames"):
        raise InputError(
            f"The source '{image.source}' is one multi-frame (enhanced) image; hepavol writes SEG and SR for "
            "single-frame CT/MR series only. Convert the series to single-frame images first."
        )
    if len(files) != image.geometry.shape[0] or not meta.get("sop_instance_uids"):
        raise InputError(
            f"The source series '{image.source}' was resampled onto a regular grid (missing slices, "
            "--allow-gaps), so its slices are not the acquired images a SEG must reference. Export from a "
            "series without gaps."
        )
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    _check_source_attributes(datasets, files, str(image.source))
    without = [i for i, ds in enumerate(datasets) if not str(ds.get("FrameOfReferenceUID", "") or "")]
    if without:
        series = str(datasets[0].SeriesInstanceUID)
        if not derive_frame_of_reference:
            raise InputError(
                f"FrameOfReferenceUID (0020,0052) is missing on {len(without)} of {len(datasets)} images of "
                f"series {series} ('{image.source}', first: {files[without[0]]}); a DICOM SEG must name the "
                "frame of reference of its source. Leave out --no-derive-frame-of-reference to write the SEG/SR "
                "with a frame of reference derived from the study and series UIDs, or add FrameOfReferenceUID "
                "(one UID for the whole series) to the images."
            )
        if len(without) != len(datasets):
            raise InputError(
                f"FrameOfReferenceUID (0020,0052) is missing on {len(without)} of {len(datasets)} images of "
                f"series {series} ('{image.source}', first: {files[without[0]]}) but present on the others: "
                "a series has one frame of reference. Repair the series (the same FrameOfReferenceUID on every "
                "image) or export it again."
            )
        uid = derived_frame_of_reference_uid(str(datasets[0].StudyInstanceUID), series)
        for ds in datasets:
            ds.FrameOfReferenceUID = uid
        warnings.warn(
            f"series {series} ('{image.source}') has no FrameOfReferenceUID (0020,0052); the SEG/SR use the "
            f"frame of reference {uid} derived from its study and series UIDs (the same for every object "
            "hepavol makes from this series). Pass --no-derive-frame-of-reference to refuse instead.",
            stacklevel=2,
        )
    return datasets


def build_segmentation(
    source_datasets: Sequence[Any],
    segments: NDArray[np.uint16],
    kinds: Sequence[tuple[str, int]],
    *,
    tracking_uids: Mapping[str, str] | None = None,
    lesion_ids: Sequence[str] | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 300,
    series_description: str = "hepavol segmentation",
    algorithm_name: str | None = None,
) -> tuple[Any, tuple[SegmentInfo, ...]]:
    """Build a binary highdicom Segmentation from a segment-number map on the source slices.

    Parameters
    ----------
    source_datasets : sequence of pydicom.Dataset
        The source images, ``source_datasets[k]`` being slice ``k`` of ``segments``.
    segments : ndarray of uint16, shape (slices, rows, columns)
        Segment numbers (from :func:`segment_map`).
    kinds : sequence of (kind, voxel_count)
        ``kinds[i]`` describes segment ``i + 1``.
    tracking_uids : mapping of str to str, optional
        TrackingUID to use for a lesion id (``"L1"`` ...); new UIDs for the others.
    lesion_ids : sequence of str, optional
        The lesion ids (TrackingID, segment label ``Lesion <id>``) of the lesion segments in order; ``L1, L2, ...``
        when omitted. A follow-up passes the ids of its tracks.
    series_instance_uid, sop_instance_uid : str, optional
        UIDs to use; new ones otherwise.
    series_number : int
        SeriesNumber of the SEG.
    series_description : str
        SeriesDescription of the SEG.
    algorithm_name : str, optional
        When given, the segments are SEMIAUTOMATIC with this algorithm name; MANUAL otherwise.

    Returns
    -------
    segmentation : highdicom.seg.Segmentation
    infos : tuple of SegmentInfo
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    if segments.shape[0] != len(source_datasets):
        raise InputError(
            f"The segmentation has {segments.shape[0]} slices but the source series {len(source_datasets)}."
        )
    if not kinds:
        raise InputError(
            "The segmentation holds neither the liver label nor any tumour voxel: there is nothing to export. "
            "Check --liver-label / --tumor-label (or --instances)."
        )
    given = dict(tracking_uids or {})
    n_lesions = sum(1 for kind, _ in kinds if kind == "lesion")
    ids = [f"L{k}" for k in range(1, n_lesions + 1)] if lesion_ids is None else [str(i) for i in lesion_ids]
    if len(ids) != n_lesions or len(set(ids)) != len(ids) or "liver" in ids:
        raise InputError(
            f"Argument 'lesion_ids' must hold {n_lesions} distinct ids other than 'liver' (one per lesion "
            f"segment), but it is {ids}."
        )
    descriptions = []
    infos = []
    algo = None
    algo_type = hd.seg.SegmentAlgorithmTypeValues.MANUAL
    if algorithm_name:
        from pydicom.sr.codedict import codes

        algo = hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=codes.cid7162.MorphologicalOperations, version=__version__
        )
        algo_type = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    lesion_no = 0
    liver = _code(*LIVER_TYPE)
    for number, (kind, count) in enumerate(kinds, start=1):
        if kind == "liver":
            label, tid = "Liver", "liver"
            category, prop = _code(*LIVER_CATEGORY), liver
            regions = None
            rgb = segment_rgb("liver", tid, 0)
        else:
            tid = ids[lesion_no]
            rgb = segment_rgb("lesion", tid, lesion_no)
            lesion_no += 1
            label = f"Lesion {tid}"
            category, prop = _code(*LESION_CATEGORY), _code(*LESION_TYPE)
            regions = [liver]
        uid = given.get(tid) or generate_uid()
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=label,
                segmented_property_category=category,
                segmented_property_type=prop,
                algorithm_type=algo_type,
                algorithm_identification=algo,
                tracking_uid=uid,
                tracking_id=tid,
                anatomic_regions=regions,
                display_color=hd.color.CIELabColor.from_rgb(*rgb),
            )
        )
        infos.append(
            SegmentInfo(
                segment_number=number,
                segment_label=label,
                kind=kind,
                tracking_id=tid,
                tracking_uid=uid,
                voxel_count=count,
            )
        )
    seg = hd.seg.Segmentation(
        source_images=list(source_datasets),
        pixel_array=segments,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer="hepavol",
        manufacturer_model_name="hepavol",
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description,
        content_label="HEPAVOL",
        content_description="Liver and liver lesions",
    )
    if frame_of_reference_is_derived(source_datasets[0]):
        seg.ContentDescription = "Liver and liver lesions; frame of reference derived"
        seg.ImageComments = derived_frame_of_reference_note(source_datasets[0])
    return seg, tuple(infos)


def derived_frame_of_reference_note(source: Any) -> str:
    """The sentence a SEG/SR records when its FrameOfReferenceUID was derived (source without one)."""
    return (
        f"The source series {source.SeriesInstanceUID} has no FrameOfReferenceUID (0020,0052); hepavol "
        f"{__version__} wrote this object with the frame of reference {source.FrameOfReferenceUID}, derived from "
        "the StudyInstanceUID and SeriesInstanceUID of the source (pydicom generate_uid with entropy sources), "
        "shared by every hepavol object made from that series. The source images themselves have no frame of "
        "reference: register by the referenced SOP instances and the plane positions."
    )


def write_dicom_seg(
    image: Volume,
    labels: Volume,
    path: str | os.PathLike[str] | None,
    *,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    instances: bool = False,
    connectivity: int = 26,
    tracking_uids: Mapping[str, str] | None = None,
    series_description: str = "hepavol segmentation",
    series_number: int = 300,
    algorithm_name: str | None = None,
    derive_frame_of_reference: bool = True,
    deidentify: str | None = None,
) -> SegExport:
    """Write a label map as a binary DICOM SEG referencing the DICOM series it was drawn on.

    Parameters
    ----------
    image : Volume
        The source series as read by :func:`hepavol.io.read_dicom_series` (single-frame, no resampling).
    labels : Volume
        Integer label map on the grid of ``image`` (``read_segmentation(..., reference=image.geometry)``).
    path : str or os.PathLike or None
        Output file, written atomically; ``None`` builds the object without writing it.
    liver_label, tumor_labels, instances, connectivity
        As in :func:`hepavol.measurement.measure_scan`.
    tracking_uids : mapping of str to str, optional
        TrackingUID per lesion id, to keep a lesion's UID across timepoints.
    series_description, series_number, algorithm_name
        See :func:`build_segmentation`.
    derive_frame_of_reference : bool
        A source series without FrameOfReferenceUID gets a derived one (with a warning) when True, is refused
        when False (:func:`load_source_datasets`).

    Returns
    -------
    SegExport

    Raises
    ------
    InputError
        If the image is not a single-frame DICOM series, the labels are not integers, or nothing is labelled.
    GeometryError
        If the labels are not on the image grid.
    """
    check_same_grid(
        image.geometry,
        labels.geometry,
        reference_name="image",
        other_name="segmentation",
        hint="Read the segmentation with reference=image.geometry (--resample-seg to resample it).",
    )
    sources = load_source_datasets(image, derive_frame_of_reference=derive_frame_of_reference)
    segments, kinds = segment_map(
        labels, liver_label=liver_label, tumor_labels=tumor_labels, instances=instances, connectivity=connectivity
    )
    seg, infos = build_segmentation(
        sources,
        segments,
        kinds,
        tracking_uids=tracking_uids,
        series_number=series_number,
        series_description=series_description,
        algorithm_name=algorithm_name,
    )
    out = None if path is None else write_dataset(seg, path, deidentify=deidentify)
    return SegExport(
        path=out,
        sop_instance_uid=str(seg.SOPInstanceUID),
        series_instance_uid=str(seg.SeriesInstanceUID),
        segments=infos,
        dataset=seg,
    )


def dataset_bytes(ds: Any) -> bytes:
    """A dataset encoded as a DICOM Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_dataset(ds: Any, path: str | os.PathLike[str], *, deidentify: str | None = None) -> Path:
    """Write ``ds`` as a DICOM Part 10 file, atomically; with ``deidentify`` (a pseudonym) de-identified first
    (:func:`hepavol.io.deidentify.deidentify_dataset`, in place). Return the path."""
    out = Path(path)
    if deidentify is not None:
        from hepavol.io.deidentify import deidentify_dataset

        deidentify_dataset(ds, deidentify)
    write_bytes_atomic(out, dataset_bytes(ds))
    return out
