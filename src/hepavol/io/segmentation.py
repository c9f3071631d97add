"""Read a segmentation as an integer label map on an image's grid: label-map files and DICOM SEG.

- Label maps in any format :func:`~hepavol.io.images.read_image` reads (NIfTI, NRRD, MetaImage, DICOM). Voxel
  values must be integers (float files with integral values are accepted and converted); negative labels and
  fractional values are errors.
- DICOM SEG (read with highdicom): each frame is placed by its PlanePositionSequence position, never by frame
  order, so a SEG that covers only some slices of the image lands on the right ones. The label of a voxel is the
  SegmentNumber of the segment covering it; overlapping segments are an error; FRACTIONAL segments are thresholded
  at 0.5 (probability or occupancy) with a warning. The SeriesInstanceUIDs of the images the SEG references are
  kept in ``metadata["referenced_series_instance_uids"]``.

With a ``reference`` geometry (the image's), a label map whose voxels are the image's up to an axis permutation or
flip is reoriented exactly (no interpolation). Any other difference in shape, spacing, origin or direction beyond
:data:`~hepavol.geometry.GRID_ATOL_MM` is a :class:`~hepavol.errors.GeometryError` printing both geometries,
unless ``resample=True`` resamples the label map onto the reference grid by nearest neighbour.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import InputError
from hepavol.geometry import GRID_ATOL_MM, Geometry, check_same_grid
from hepavol.io.dicom_series import _non_image_reason, is_dicom_file, read_dicom_file_header
from hepavol.io.reorient import reorient_like
from hepavol.volume import Volume, resample_like

__all__ = ["align_labels", "read_segmentation"]

_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: Largest in-plane/slice offset (fraction of a voxel) for a SEG frame to sit on a grid position.
FRAME_INDEX_TOL = 0.01


def read_segmentation(
    path: str | os.PathLike[str], *, reference: Geometry | None = None, resample: bool = False
) -> Volume:
    """Read a label map or a DICOM SEG as an integer label volume, optionally on a reference grid.

    Parameters
    ----------
    path : str or os.PathLike
        A label-map image (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``, DICOM) or a DICOM SEG
        file, or a folder holding exactly one DICOM SEG (else the folder is read as a DICOM label-map series).
    reference : Geometry, optional
        The image grid the labels must lie on (normally ``read_image(...).geometry``).
    resample : bool, default False
        When the grids differ, resample the labels onto ``reference`` by nearest neighbour instead of raising
        (``--resample-seg``).

    Returns
    -------
    Volume
        Integer array (``uint8``/``uint16`` for DICOM SEG, the file's integer type otherwise), 0 = background.
        ``metadata`` has ``format``, and for DICOM SEG ``segment_numbers``, ``segment_labels``,
        ``referenced_series_instance_uids``, ``series_instance_uid``, ``segmentation_type``.

    Raises
    ------
    InputError
        If the file does not exist, cannot be read, holds non-integer or negative labels, or a SEG has
        overlapping segments.
    GeometryError
        If ``reference`` is given, the grids differ beyond tolerance and ``resample`` is False (the message
        prints both geometries and suggests ``--resample-seg``).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Segmentation '{p}' does not exist. Check the path.")
    if p.is_dir():
        segs = _seg_files(p)
        if len(segs) > 1:
            listing = "\n".join(f"  {f}" for f in segs)
            raise InputError(
                f"'{p}' holds {len(segs)} DICOM SEG files:\n{listing}\nGive the one to use as --seg FILE."
            )
        if segs:
            p = segs[0]
    if p.is_file() and is_dicom_file(p):
        header = read_dicom_file_header(p)
        assert header is not None
        if header.sop_class_uid == _SEG_SOP_CLASS or header.modality.upper() == "SEG":
            return _read_dicom_seg(p, reference=reference, resample=resample)
        if _non_image_reason(header) is not None:
            raise InputError(
                f"'{p}' is a DICOM {header.modality or 'non-image'} object, not a segmentation. Give a DICOM SEG "
                "or a label-map image (NIfTI, NRRD, MetaImage)."
            )
    from hepavol.io.images import read_image

    volume = read_image(p)
    labels = _as_labels(volume, p)
    return _align(labels, reference, resample=resample, name=f"segmentation '{p}'")


def _seg_files(folder: Path) -> list[Path]:
    """DICOM SEG files under ``folder`` (recursively)."""
    found = []
    for f in sorted(q for q in folder.rglob("*") if q.is_file()):
        header = read_dicom_file_header(f)
        if header is not None and (header.sop_class_uid == _SEG_SOP_CLASS or header.modality.upper() == "SEG"):
            found.append(f)
    return found


def _as_labels(volume: Volume, p: Path) -> Volume:
    arr = volume.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not np.all(finite):
            raise InputError(f"Segmentation '{p}' contains NaN or infinite values; a label map holds integers.")
        frac = arr != np.rint(arr)
        if np.any(frac):
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise InputError(
                f"Segmentation '{p}' is not a label map: it holds non-integer values (e.g. {float(arr[idx]):g} "
                f"at voxel {idx} (slice, row, column); {int(frac.sum())} such voxels). Threshold a probability "
                "map first (e.g. > 0.5) or give the integer label map."
            )
        hi = float(arr.max()) if arr.size else 0.0
        arr = arr.astype(np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.int32)
    elif arr.dtype.kind not in "iu":
        raise InputError(f"Segmentation '{p}' has {arr.dtype} voxels; a label map holds integers.")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InputError(
            f"Segmentation '{p}' has negative labels (minimum {int(arr.min())}); labels must be 0 (background) or "
            "positive integers."
        )
    meta = dict(volume.metadata)
    return Volume(arr, volume.geometry, volume.source, meta)


def align_labels(labels: Volume, reference: Geometry, *, resample: bool = False) -> Volume:
    """A label map read without a reference, put on the image grid as ``read_segmentation(reference=...)`` would
    (reoriented, or resampled with ``resample``; a GeometryError when the grids differ otherwise).

    For a label-map file read while the image is read (the review app reads both at once).
    """
    return _align(labels, reference, resample=resample, name=f"segmentation '{labels.source}'")


def _align(labels: Volume, reference: Geometry | None, *, resample: bool, name: str) -> Volume:
    if reference is None:
        return labels
    labels = reorient_like(labels, reference)
    if not reference.differences(labels.geometry):
        return Volume(labels.array, reference, labels.source, dict(labels.metadata))
    if resample:
        out = resample_like(labels, reference, nearest=True)
        meta = dict(labels.metadata)
        meta["resampled_from"] = labels.geometry.to_dict()
        return Volume(out.array, reference, labels.source, meta)
    check_same_grid(
        reference,
        labels.geometry,
        reference_name="image",
        other_name=name,
        hint="Pass --resample-seg (resample=True) to resample the segmentation onto the image grid "
        "(nearest neighbour).",
    )
    return labels  # pragma: no cover - check_same_grid raised


# ---------------------------------------------------------------------------------------------- DICOM SEG
def _frame_geometry(
    seg: Any, p: Path
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64], tuple[float, float]]:
    """Per-frame positions, the orientation (6 cosines) and the pixel spacing of a SEG."""
    shared = seg.get("SharedFunctionalGroupsSequence")
    shared0 = shared[0] if shared else None
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []

    def find(item: Any, seq: str, attr: str) -> Any:
        if item is not None and seq in item and len(item[seq].value) and attr in item[seq].value[0]:
            return item[seq].value[0][attr].value
        return None

    positions: list[NDArray[np.float64]] = []
    orientation: Any = find(shared0, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing: Any = find(shared0, "PixelMeasuresSequence", "PixelSpacing")
    for i, item in enumerate(per_frame):
        pos = find(item, "PlanePositionSequence", "ImagePositionPatient")
        if pos is None:
            raise InputError(
                f"DICOM SEG '{p}' frame {i + 1} has no PlanePositionSequence/ImagePositionPatient; hepavol places "
                "SEG frames by position and cannot use this SEG (it may be a tiled slide-microscopy SEG)."
            )
        positions.append(np.array([float(v) for v in pos]))
        if orientation is None:
            orientation = find(item, "PlaneOrientationSequence", "ImageOrientationPatient")
        if spacing is None:
            spacing = find(item, "PixelMeasuresSequence", "PixelSpacing")
    if orientation is None or spacing is None:
        raise InputError(
            f"DICOM SEG '{p}' lacks ImageOrientationPatient or PixelSpacing in its functional groups; it cannot "
            "be placed in patient space."
        )
    return positions, np.array([float(v) for v in orientation]), (float(spacing[0]), float(spacing[1]))


def _own_grid(
    positions: list[NDArray[np.float64]],
    orientation: NDArray[np.float64],
    spacing: tuple[float, float],
    shape_rc: tuple[int, int],
    p: Path,
) -> Geometry:
    """The smallest regular grid holding every frame of a SEG (slices between frames are filled with 0)."""
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    along = np.array([float(pos @ normal) for pos in positions])
    uniq = np.unique(np.round(along, 3))
    if len(uniq) == 1:
        step = 1.0
    else:
        gaps = np.diff(uniq)
        step = float(gaps.min())
        k = gaps / step
        if np.any(np.abs(k - np.rint(k)) > FRAME_INDEX_TOL * 10):
            raise InputError(
                f"The frames of DICOM SEG '{p}' are not on a regular slice grid (positions along the normal: "
                f"{np.round(uniq, 3).tolist()} mm). Pass the image it segments so the frames can be placed on "
                "the image grid."
            )
    first = positions[int(np.argmin(along))]
    n = round(float(uniq[-1] - uniq[0]) / step) + 1 if len(uniq) > 1 else 1
    return Geometry(
        shape=(n, shape_rc[0], shape_rc[1]),
        spacing_mm=(step, spacing[0], spacing[1]),
        origin_lps_mm=(float(first[0]), float(first[1]), float(first[2])),
        direction=tuple(tuple(r) for r in np.column_stack([normal, col_cos, row_cos])),  # type: ignore[arg-type]
    )


def _frame_indices(
    grid: Geometry,
    positions: list[NDArray[np.float64]],
    orientation: NDArray[np.float64],
    shape_rc: tuple[int, int],
) -> list[int] | None:
    """Slice index of every frame on ``grid``, or None when a frame does not sit exactly on a whole slice."""
    d = grid.direction_matrix
    if np.max(np.abs(orientation[:3] - d[:, 2])) > 1e-4 or np.max(np.abs(orientation[3:] - d[:, 1])) > 1e-4:
        return None
    if shape_rc != grid.shape[1:]:
        return None
    out = []
    for pos in positions:
        idx = grid.lps_to_index(pos)
        rounded = np.rint(idx)
        err_mm = np.abs(idx - rounded) * np.array(grid.spacing_mm)
        if np.any(err_mm > np.maximum(GRID_ATOL_MM, FRAME_INDEX_TOL * np.array(grid.spacing_mm))):
            return None
        if rounded[1] != 0 or rounded[2] != 0 or not 0 <= rounded[0] < grid.shape[0]:
            return None
        out.append(int(rounded[0]))
    return out


def _read_dicom_seg(p: Path, *, reference: Geometry | None, resample: bool) -> Volume:
    import highdicom as hd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.segread(str(p))
            frames = np.asarray(seg.pixel_array)
    except Exception as exc:
        raise InputError(
            f"DICOM SEG '{p}' cannot be read (highdicom: {exc}). The file is corrupt or invalid."
        ) from exc
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    seg_type = str(getattr(seg.segmentation_type, "value", seg.segmentation_type)).upper()
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != frames.shape[0]:
        raise InputError(
            f"DICOM SEG '{p}' has {frames.shape[0]} frames but {len(per_frame)} per-frame functional group items."
        )
    positions, orientation, spacing = _frame_geometry(seg, p)
    shape_rc = (int(frames.shape[1]), int(frames.shape[2]))
    if seg_type == "FRACTIONAL":
        max_value = float(seg.get("MaximumFractionalValue", 255) or 255)
        frames = frames.astype(np.float32) / max_value >= 0.5
        warnings.warn(
            f"DICOM SEG '{p}' is FRACTIONAL; voxels with a fraction >= 0.5 are counted as inside the segment.",
            UserWarning,
            stacklevel=3,
        )
    numbers: list[int] = []
    shared = seg.get("SharedFunctionalGroupsSequence")
    shared_item = shared[0] if shared else None
    for i, item in enumerate(per_frame):
        if seg_type == "LABELMAP":
            numbers.append(0)
            continue
        try:
            # A single-segment SEG may carry the segment identification in the shared functional groups.
            holder = item if "SegmentIdentificationSequence" in item else shared_item
            numbers.append(int(holder.SegmentIdentificationSequence[0].ReferencedSegmentNumber))  # type: ignore[union-attr]
        except (AttributeError, IndexError) as exc:
            raise InputError(
                f"DICOM SEG '{p}' frame {i + 1} has no SegmentIdentificationSequence/ReferencedSegmentNumber."
            ) from exc
    segment_numbers = [int(n) for n in seg.get_segment_numbers()]
    max_label = max(segment_numbers, default=1)
    dtype = np.uint8 if max_label < 256 else np.uint16

    grid: Geometry | None = None
    indices: list[int] | None = None
    if reference is not None:
        indices = _frame_indices(reference, positions, orientation, shape_rc)
        if indices is not None:
            grid = reference
    if grid is None:
        grid = _own_grid(positions, orientation, spacing, shape_rc, p)
        indices = _frame_indices(grid, positions, orientation, shape_rc)
        if indices is None:  # pragma: no cover - the own grid is built from the frames
            raise InputError(f"DICOM SEG '{p}': frames could not be placed on their own grid.")
    assert indices is not None
    labels = np.zeros(grid.shape, dtype=dtype)
    for f, (k, number) in enumerate(zip(indices, numbers)):
        frame = frames[f]
        if seg_type == "LABELMAP":
            mask = frame > 0
            values = frame[mask].astype(dtype)
        else:
            mask = frame > 0
            values = np.full(int(mask.sum()), number, dtype=dtype)
        if not mask.any():
            continue
        current = labels[k][mask]
        clash = (current != 0) & (current != values)
        if np.any(clash):
            other = int(current[clash][0])
            raise InputError(
                f"DICOM SEG '{p}' has overlapping segments: segments {other} and {int(values[clash][0])} both "
                f"cover {int(clash.sum())} voxel(s) on slice {k} (frame {f + 1}). hepavol needs one label per voxel; "
                "export the segments without overlap, or as separate SEG files."
            )
        labels[k][mask] = values
    try:
        referenced = sorted({str(series) for _study, series, _sop in seg.get_source_image_uids()})
    except Exception:
        referenced = []
    descriptions = {}
    for item in seg.get("SegmentSequence") or []:
        descriptions[int(item.SegmentNumber)] = str(item.get("SegmentLabel", ""))
    meta: dict[str, Any] = {
        "format": "dicom-seg",
        "segmentation_type": seg_type,
        "segment_numbers": segment_numbers,
        "segment_labels": descriptions,
        "series_instance_uid": str(seg.get("SeriesInstanceUID", "")),
        "referenced_series_instance_uids": referenced,
        "frame_of_reference_uid": str(seg.get("FrameOfReferenceUID", "")),
    }
    volume = Volume(labels, grid, str(p), meta)
    return _align(volume, reference, resample=resample, name=f"DICOM SEG '{p}'")
