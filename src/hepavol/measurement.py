"""Measure the lesions, the liver and the tumour burden of one scan from its segmentation.

Definitions (hepavol's, stated once; every figure is in mm, mL or HU, positions in DICOM LPS mm):

Lesions
    The connected components of the tumour label(s) (``connectivity`` 6, 18 or 26), or, with
    ``instances=True``, one lesion per label value other than 0 and the liver label.
Volume
    ``voxel_count × voxel volume``: exact for the mask as drawn.
Diameters: the surface-mesh convention (IBSI; pyradiomics)
    A diameter joins two vertices of the lesion's surface mesh as marching squares (within a slice) or marching
    cubes (in 3D) build it at the 0.5 level of the mask: every vertex is the midpoint between the centre of a
    lesion voxel and the centre of a face neighbour outside the lesion, i.e. the centre of a border face of the
    voxel (the midpoint of a border edge of the pixel in 2D). This is the IBSI definition of the maximum 3D
    diameter (IBSI reference manual, feature "Maximum 3D diameter", L0JK) and pyradiomics' (shape
    ``Maximum3DDiameter``; shape2D ``MaximumDiameter``); the tests compare hepavol with pyradiomics 3.0.1.
    Computed exactly, without building the mesh: the face centre c + ½e of a voxel whose neighbour c + e is in
    the lesion is the midpoint of the face centres c − ½e and (c + e) + ½e, so the face centres of all lesion
    voxels have the same convex hull, hence the same largest distance, as the mesh vertices. On a row of a slice
    from column L to column R, only points at the row's ends can be extreme: (row, L − ½), (row, R + ½),
    (row ± ½, L or R) and (slice ± ½, L or R). For two rows D = max(R_a − L_b, R_b − L_a) columns, n_y rows
    and n_z slices apart (spacings sx, sy, sz), the largest distance goes half a voxel beyond the end voxels
    along exactly one axis, d² = (D·sx)² + (n_y·sy)² + (n_z·sz)² + max((2D + 1)·sx², (2n_y + 1)·sy²,
    (2n_z + 1)·sz²): a pair stepping half a voxel along two different axes is shorter than the mean of the two
    pure steps. Voxelised ellipsoids at 2.5 mm random offsets and rotations come out longer by +1.1 mm (long
    axis, 0.4 pixel) on average, spheres by +1.6 mm, because a maximum over directions selects the largest
    discretisation errors; the earlier voxel-corner convention gave +2.1 mm and +2.7 mm
    (``benchmarks/measure_accuracy.py``).
``long_axis_mm`` (RECIST 1.1 long axis)
    The largest in-plane diameter over all slices of the acquisition plane, i.e. the (row, column) plane of
    the volume (axis 0 is the slice axis), computed exactly with the physical pixel spacing; it equals the
    largest pyradiomics shape2D ``MaximumDiameter`` of the slices. ``slice_index`` is that slice and
    ``long_axis_endpoints_mm`` its two end points (mesh vertices); when several chords have that length (on one
    slice or on several), the one with the longest short axis is taken, so that neither depends on the order the
    slices, rows and columns are stored in. pyradiomics' 3D
    ``Maximum2DDiameterSlice`` can be larger: it also compares the vertices of the faces between two slices,
    which lie midway between them, where no image is read.
``short_axis_mm``
    On the same slice, the longest chord perpendicular to the long axis of the region inside the slice's
    marching-squares contour (pixels touching only at a corner stay apart, as in pyradiomics): for each line
    perpendicular to the long axis (sampled every quarter pixel along it), the distance between its first and
    last crossing of the contour (a gap inside the lesion does not shorten it).
``max_diameter_3d_mm``
    The largest distance between two vertices of the lesion's surface mesh in 3D, computed exactly (support
    functions bound each pair of slices; only pairs that can hold the maximum are computed row end by row end).
``centroid_mm``
    The mean LPS position of the voxel centres.
``mean_hu``, ``sd_hu``
    Mean and sample standard deviation (n − 1) of the image values in the lesion (HU on CT; signal on MR).
``measurable``
    RECIST 1.1: long axis ≥ 10 mm and ≥ 2 × slice thickness (the slice spacing unless the reader recorded a
    thicker ``slice_thickness_mm``).

Scan
    ``liver_volume_ml`` is the whole organ: the liver label plus the tumour voxels of lesions that touch or lie
    inside it (``None`` when the liver label is absent). ``total_tumor_volume_ml`` sums all lesions (a lesion
    outside the liver gives a warning). ``tumor_burden_percent`` = total tumour volume / liver volume × 100.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import InputError
from hepavol.geometry import Geometry, Vec3, check_same_grid
from hepavol.response.load import hepatic_tumor_load_class
from hepavol.volume import Volume

Segment = tuple[Vec3, Vec3]

#: RECIST 1.1 minimum long axis of a measurable (non-nodal) lesion, mm (Eisenhauer et al. 2009, section 3.1).
RECIST_MIN_LONG_AXIS_MM = 10.0

_SUPPORT_DIRECTIONS = 64
_PAIR_BLOCK = 2_000_000  # elements per vectorised block of pairwise distances
_TIE_RTOL = 1e-12  # relative difference under which two squared lengths are the same (a tie)
_MAX_TIED = 256  # longest chords compared for the short axis (beyond that, storage order decides)


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionMeasurement:
    """Size, position and density of one lesion on one scan (mm, mL, HU; positions in DICOM LPS mm)."""

    lesion_id: str
    label: int
    voxel_count: int
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    slice_index: int
    long_axis_endpoints_mm: Segment
    short_axis_endpoints_mm: Segment
    max_diameter_3d_mm: float
    centroid_mm: Vec3
    mean_hu: float | None
    sd_hu: float | None
    measurable: bool
    in_liver: bool | None = None
    touches_border: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with the field names as keys."""
        return {
            "lesion_id": self.lesion_id,
            "label": self.label,
            "volume_ml": self.volume_ml,
            "voxel_count": self.voxel_count,
            "long_axis_mm": self.long_axis_mm,
            "short_axis_mm": self.short_axis_mm,
            "slice_index": self.slice_index,
            "long_axis_endpoints_mm": [list(p) for p in self.long_axis_endpoints_mm],
            "short_axis_endpoints_mm": [list(p) for p in self.short_axis_endpoints_mm],
            "max_diameter_3d_mm": self.max_diameter_3d_mm,
            "centroid_mm": list(self.centroid_mm),
            "mean_hu": self.mean_hu,
            "sd_hu": self.sd_hu,
            "measurable": self.measurable,
            "in_liver": self.in_liver,
            "touches_border": self.touches_border,
        }

    def __repr__(self) -> str:
        return (
            f"LesionMeasurement({self.lesion_id}: {self.volume_ml:.2f} mL, LD {self.long_axis_mm:.1f} mm, "
            f"SA {self.short_axis_mm:.1f} mm, slice {self.slice_index})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanMeasurement:
    """The measurement of one scan: its lesions (largest first), the liver and the tumour burden."""

    geometry: Geometry
    liver_volume_ml: float | None
    total_tumor_volume_ml: float
    tumor_burden_percent: float | None
    hepatic_tumor_load_class: str | None
    lesion_count: int
    lesions: tuple[LesionMeasurement, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with exactly the keys of ``hepavol measure --json``."""
        return {
            "image": self.geometry.to_dict(),
            "liver_volume_ml": self.liver_volume_ml,
            "total_tumor_volume_ml": self.total_tumor_volume_ml,
            "tumor_burden_percent": self.tumor_burden_percent,
            "hepatic_tumor_load_class": self.hepatic_tumor_load_class,
            "lesion_count": self.lesion_count,
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------------------------
# Scan level


def measure_scan(
    seg: Volume,
    image: Volume | None = None,
    *,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    instances: bool = False,
    connectivity: int = 26,
) -> ScanMeasurement:
    """Measure every lesion, the liver and the tumour burden of one segmented scan.

    Parameters
    ----------
    seg : Volume
        Integer label map.
    image : Volume, optional
        The image on the same grid, for ``mean_hu`` / ``sd_hu``.
    liver_label : int
        Label of the liver parenchyma.
    tumor_labels : sequence of int
        Labels whose connected components are lesions (ignored with ``instances=True``).
    instances : bool
        Every label other than 0 and ``liver_label`` is one lesion (an instance map).
    connectivity : {6, 18, 26}
        Voxel connectivity of the components.

    Returns
    -------
    ScanMeasurement

    Raises
    ------
    InputError
        For a non-integer label map, an unknown connectivity, or labels that collide.
    GeometryError
        When ``image`` is not on the grid of ``seg``.

    Examples
    --------
    A 10×10×10 voxel cube at 2.5 × 0.7 × 0.7 mm is 1.225 mL:

    >>> import numpy as np
    >>> from hepavol.geometry import Geometry, identity_direction
    >>> g = Geometry(shape=(12, 12, 12), spacing_mm=(2.5, 0.7, 0.7), origin_lps_mm=(0, 0, 0),
    ...              direction=identity_direction())
    >>> labels = np.zeros(g.shape, np.uint8); labels[1:11, 1:11, 1:11] = 2
    >>> m = measure_scan(Volume(labels, g))
    >>> m.lesion_count, round(m.total_tumor_volume_ml, 6), m.lesions[0].voxel_count
    (1, 1.225, 1000)
    """
    return _measure_scan(
        seg,
        image,
        liver_label=liver_label,
        tumor_labels=tumor_labels,
        instances=instances,
        connectivity=connectivity,
    )[0]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LesionMapCrop:
    """The lesions of a scan as a map inside their bounding box: value n is lesion ``L<n>``, 0 elsewhere.

    ``box`` is the (slice, row, column) region of the scan's grid that ``array`` covers (the tumour bounding
    box grown by one voxel, cut at the grid's faces); every lesion voxel lies inside it.
    """

    array: NDArray[np.int32]
    box: tuple[slice, slice, slice]


def _measure_scan(
    seg: Volume,
    image: Volume | None = None,
    *,
    liver_label: int = 1,
    tumor_labels: Sequence[int] = (2,),
    instances: bool = False,
    connectivity: int = 26,
) -> tuple[ScanMeasurement, LesionMapCrop | None]:
    """:func:`measure_scan` and the lesion map it numbered its lesions on (None without lesions)."""
    if connectivity not in (6, 18, 26):
        raise InputError(f"Argument 'connectivity' must be 6, 18 or 26, but it is {connectivity}.")
    labels = _integer_labels(seg)
    geometry = seg.geometry
    if image is not None:
        check_same_grid(
            seg.geometry,
            image.geometry,
            reference_name="segmentation",
            other_name="image",
            hint="Pass --resample-seg to resample the segmentation onto the image grid (nearest neighbour).",
        )
    tumor_set = _tumor_label_set(labels, liver_label, tumor_labels, instances)
    warnings: list[str] = []
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0

    # The liver count is a full pass over the volume: run it on the second core while the lesions are labelled
    # (numpy releases the GIL in comparisons and counts).
    with ThreadPoolExecutor(max_workers=1) as pool:
        liver_future = pool.submit(_count_label, labels, liver_label)
        box = _tumor_bounding_box(labels, liver_label, tumor_set, instances)
        liver_count = liver_future.result()

    lesions: list[_Lesion] = []
    component_map: NDArray[Any] | None = None
    grown: tuple[slice, slice, slice] | None = None
    if box is not None:
        # Work inside the tumour bounding box grown by one voxel (for the liver-contact test).
        grown_box: tuple[slice, slice, slice] = tuple(  # type: ignore[assignment]
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape, strict=True)
        )
        grown = grown_box
        offset = tuple(s.start for s in grown_box)
        crop_labels = labels[grown_box]
        # The tumour mask is built only inside the box: memory stays proportional to the lesions' extent.
        crop_tumor = _tumor_mask(crop_labels, liver_label, tumor_set, instances)
        if instances:
            component_map = np.where(crop_tumor, crop_labels, 0)
        else:
            component_map = connected_components(crop_tumor, connectivity=connectivity)
        crop_image = None if image is None else image.array[grown_box]
        lesions = _measure_components(
            component_map,
            crop_labels,
            crop_image,
            offset=offset,
            full_shape=labels.shape,
            geometry=geometry,
            liver_label=liver_label if liver_count else None,
            slice_thickness_mm=_slice_thickness_mm(seg, image),
            instances=instances,
        )

    lesions.sort(key=lambda les: (-les.voxel_count, les.first_index))
    results: list[LesionMeasurement] = []
    for number, les in enumerate(lesions, start=1):
        results.append(les.to_measurement(f"L{number}"))
    lesion_map = None
    if lesions and component_map is not None and grown is not None:
        lookup = np.zeros(int(max(les.component for les in lesions)) + 1, np.int32)
        lookup[[les.component for les in lesions]] = np.arange(1, len(lesions) + 1, dtype=np.int32)
        lesion_map = LesionMapCrop(array=lookup[component_map], box=grown)

    tumor_voxels = sum(les.voxel_count for les in lesions)
    total_tumor_ml = tumor_voxels * voxel_ml
    if liver_count == 0:
        liver_ml = None
        if tumor_set or instances:
            warnings.append(
                f"The liver label {liver_label} is absent from the segmentation: liver_volume_ml, "
                "tumor_burden_percent and hepatic_tumor_load_class are null. Pass --liver-label if the liver "
                "has another value."
            )
    else:
        inside = sum(les.voxel_count for les in lesions if les.in_liver)
        liver_ml = (liver_count + inside) * voxel_ml
        outside = [m.lesion_id for m, les in zip(results, lesions) if not les.in_liver]
        if outside:
            warnings.append(
                f"Lesion(s) {', '.join(outside)} do not touch the liver: they count in total_tumor_volume_ml but "
                "not in liver_volume_ml. Check the segmentation if they are liver metastases."
            )
    border = [m.lesion_id for m in results if m.touches_border]
    if border:
        warnings.append(
            f"Lesion(s) {', '.join(border)} touch the edge of the image: they may be cut off by the field of "
            "view, so their size may be underestimated."
        )
    if not instances and not lesions:
        present = sorted(int(v) for v in _present_labels(labels) if v != 0)
        warnings.append(
            f"No voxel has the tumour label(s) {list(tumor_labels)}; labels present: {present}. "
            "Pass --tumor-label N (or --instances for an instance map) if lesions have another value."
        )
    burden = None if liver_ml is None else 100.0 * total_tumor_ml / liver_ml
    load_class = None
    if burden is not None and burden <= 100.0:
        load_class = hepatic_tumor_load_class(burden)
    elif burden is not None:
        warnings.append(
            f"The tumour volume ({total_tumor_ml:.1f} mL) exceeds the liver volume ({liver_ml:.1f} mL) because "
            "lesions lie outside the liver: hepatic_tumor_load_class is null."
        )
    measurement = ScanMeasurement(
        geometry=geometry,
        liver_volume_ml=liver_ml,
        total_tumor_volume_ml=total_tumor_ml,
        tumor_burden_percent=burden,
        hepatic_tumor_load_class=load_class,
        lesion_count=len(results),
        lesions=tuple(results),
        warnings=tuple(warnings),
    )
    return measurement, lesion_map


def connected_components(mask: NDArray[np.bool_], *, connectivity: int = 26) -> NDArray[np.integer[Any]]:
    """Connected components of ``mask`` numbered 1, 2, ... in the order of their first voxel (C order).

    cc3d (fast), or scipy's ``ndimage.label`` where cc3d 4.1 fails: with 26-connectivity on an array with an
    axis of length 1 it raises "maximum length exception" (e.g. shape (1, 1, 5) holding 1, 0, 1, 0, 1; found by
    the property tests), which a single-slice image or a lesion box one voxel thick produces.

    >>> connected_components(np.array([[[1, 0, 1, 0, 1]]], dtype=bool)).tolist()
    [[[1, 0, 2, 0, 3]]]
    """
    if not (connectivity == 26 and 1 in mask.shape):
        import cc3d

        try:
            return cc3d.connected_components(mask, connectivity=connectivity)  # type: ignore[call-overload]
        except RuntimeError:  # pragma: no cover - other cc3d failures, if any: the same answer from scipy
            pass
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    labelled, _ = ndimage.label(mask, structure=structure)
    return labelled


def _integer_labels(seg: Volume) -> NDArray[np.integer[Any]]:
    arr = seg.array
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if arr.dtype == bool:
        return arr.view(np.uint8)
    finite = np.isfinite(arr)
    if not np.all(finite) or not np.array_equal(arr, np.round(arr)):
        bad = arr[~finite | (arr != np.round(arr))]
        raise InputError(
            f"The segmentation {seg.source or ''} is not a label map: it holds non-integer values "
            f"(e.g. {float(bad.flat[0])!r}). Give an integer label map (liver 1, tumour 2) or threshold a "
            "probability map first."
        )
    if arr.min() < 0:
        raise InputError(f"The segmentation {seg.source or ''} has negative labels (minimum {arr.min()}).")
    return arr.astype(np.int32)


def _count_label(labels: NDArray[Any], label: int) -> int:
    count = 0
    for start in range(0, labels.shape[0], 16):  # slabs keep the temporary mask small
        count += int(np.count_nonzero(labels[start : start + 16] == label))
    return count


def _present_labels(labels: NDArray[Any]) -> NDArray[Any]:
    if labels.dtype.itemsize == 1:
        return np.flatnonzero(np.bincount(labels.reshape(-1).view(np.uint8), minlength=256))
    return np.unique(labels)


def _tumor_label_set(
    labels: NDArray[Any], liver_label: int, tumor_labels: Sequence[int], instances: bool
) -> list[int]:
    if instances:
        return []
    tumor = sorted({int(t) for t in tumor_labels})
    if liver_label in tumor:
        raise InputError(
            f"The liver label {liver_label} is also given as a tumour label ({tumor}); they must differ."
        )
    return tumor


def _tumor_mask(
    labels: NDArray[Any], liver_label: int, tumor_set: list[int], instances: bool
) -> NDArray[np.bool_]:
    if instances:
        return (labels != 0) & (labels != liver_label)
    if not tumor_set:
        return np.zeros(labels.shape, dtype=bool)
    mask = labels == tumor_set[0]
    for t in tumor_set[1:]:
        mask |= labels == t
    return mask


def _tumor_bounding_box(
    labels: NDArray[Any], liver_label: int, tumor_set: list[int], instances: bool, *, slab: int = 16
) -> tuple[slice, slice, slice] | None:
    """Bounding box of the tumour voxels, found slab by slab so that no full-size mask is allocated."""
    n = labels.shape[0]
    z_any = np.zeros(n, dtype=bool)
    y_any = np.zeros(labels.shape[1], dtype=bool)
    x_any = np.zeros(labels.shape[2], dtype=bool)
    for start in range(0, n, slab):
        mask = _tumor_mask(labels[start : start + slab], liver_label, tumor_set, instances)
        rows: NDArray[np.bool_] = np.any(mask, axis=2)
        z_any[start : start + slab] = rows.any(axis=1)
        if z_any[start : start + slab].any():
            y_any |= rows.any(axis=0)
            x_any |= mask.any(axis=(0, 1))
    if not z_any.any():
        return None
    z, y, x = (np.flatnonzero(a) for a in (z_any, y_any, x_any))
    return (
        slice(int(z[0]), int(z[-1]) + 1),
        slice(int(y[0]), int(y[-1]) + 1),
        slice(int(x[0]), int(x[-1]) + 1),
    )


def _slice_thickness_mm(seg: Volume, image: Volume | None) -> float:
    spacing = seg.geometry.spacing_mm[0]
    for vol in (image, seg):
        if vol is not None:
            thickness = vol.metadata.get("slice_thickness_mm")
            if thickness:
                return max(float(thickness), spacing) if float(thickness) > 0 else spacing
    return spacing


# ---------------------------------------------------------------------------------------------------------------
# Lesion level


@dataclass(slots=True)
class _Lesion:
    component: int  # its value in the component map
    label: int
    voxel_count: int
    first_index: tuple[int, int, int]
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    slice_index: int
    long_ends: Segment
    short_ends: Segment
    diameter_3d_mm: float
    centroid: Vec3
    mean: float | None
    sd: float | None
    measurable: bool
    in_liver: bool | None
    touches_border: bool

    def to_measurement(self, lesion_id: str) -> LesionMeasurement:
        return LesionMeasurement(
            lesion_id=lesion_id,
            label=self.label,
            voxel_count=self.voxel_count,
            volume_ml=self.volume_ml,
            long_axis_mm=self.long_axis_mm,
            short_axis_mm=self.short_axis_mm,
            slice_index=self.slice_index,
            long_axis_endpoints_mm=self.long_ends,
            short_axis_endpoints_mm=self.short_ends,
            max_diameter_3d_mm=self.diameter_3d_mm,
            centroid_mm=self.centroid,
            mean_hu=self.mean,
            sd_hu=self.sd,
            measurable=self.measurable,
            in_liver=self.in_liver,
            touches_border=self.touches_border,
        )


def _measure_components(
    component_map: NDArray[Any],
    crop_labels: NDArray[Any],
    crop_image: NDArray[Any] | None,
    *,
    offset: tuple[int, int, int],
    full_shape: tuple[int, int, int],
    geometry: Geometry,
    liver_label: int | None,
    slice_thickness_mm: float,
    instances: bool,
) -> list[_Lesion]:
    from scipy import ndimage

    objects = ndimage.find_objects(component_map)
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    min_long_axis = max(RECIST_MIN_LONG_AXIS_MM, 2.0 * slice_thickness_mm)
    lesions = []
    for index, box in enumerate(objects, start=1):
        if box is None:
            continue
        sub = component_map[box] == index
        count = int(np.count_nonzero(sub))
        if count == 0:
            continue
        start = tuple(s.start for s in box)
        origin_index = np.add(offset, start)
        extremes = _row_extremes(sub)
        plane = _inplane_axes(sub, extremes, geometry.spacing_mm)
        z_local, long_mm, short_mm, long_idx, short_idx = plane
        long_ends = _segment_to_lps(long_idx, z_local, origin_index, geometry)
        short_ends = _segment_to_lps(short_idx, z_local, origin_index, geometry)
        centroid_idx = _centroid_index(sub, count) + origin_index
        mean = sd = None
        if crop_image is not None:
            values = crop_image[box][sub].astype(np.float64)
            mean = float(values.mean())
            sd = float(values.std(ddof=1)) if count > 1 else 0.0
        in_liver = None if liver_label is None else _touches_label(crop_labels, box, sub, liver_label)
        stop = origin_index + np.array(sub.shape)
        border = bool(np.any(origin_index == 0) or np.any(stop == np.array(full_shape)))
        first_local = np.unravel_index(int(np.argmax(sub)), sub.shape)  # first voxel in C order
        first = tuple(int(v) for v in origin_index + first_local)
        lesions.append(
            _Lesion(
                component=index,
                label=int(crop_labels[box][first_local]),
                voxel_count=count,
                first_index=first,  # type: ignore[arg-type]
                volume_ml=count * voxel_ml,
                long_axis_mm=long_mm,
                short_axis_mm=short_mm,
                slice_index=int(origin_index[0] + z_local),
                long_ends=long_ends,
                short_ends=short_ends,
                diameter_3d_mm=_max_diameter_3d(extremes, geometry.spacing_mm),
                centroid=tuple(float(v) for v in geometry.index_to_lps(centroid_idx)),  # type: ignore[arg-type]
                mean=mean,
                sd=sd,
                measurable=long_mm >= min_long_axis,
                in_liver=in_liver,
                touches_border=border,
            )
        )
    return lesions


def _centroid_index(sub: NDArray[np.bool_], count: int) -> NDArray[np.float64]:
    pz = sub.sum(axis=(1, 2))
    py = sub.sum(axis=(0, 2))
    px = sub.sum(axis=(0, 1))
    return np.array(
        [
            float(pz @ np.arange(pz.size)) / count,
            float(py @ np.arange(py.size)) / count,
            float(px @ np.arange(px.size)) / count,
        ]
    )


def _touches_label(crop_labels: NDArray[Any], box: tuple[slice, ...], sub: NDArray[np.bool_], label: int) -> bool:
    """Whether the lesion touches (6-neighbourhood) or overlaps voxels of ``label``."""
    grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, crop_labels.shape))
    region = crop_labels[grown] == label
    pad = [(s.start - g.start, g.stop - s.stop) for s, g in zip(box, grown)]
    m = np.pad(sub, pad)
    touch = m.copy()
    touch[1:] |= m[:-1]
    touch[:-1] |= m[1:]
    touch[:, 1:] |= m[:, :-1]
    touch[:, :-1] |= m[:, 1:]
    touch[:, :, 1:] |= m[:, :, :-1]
    touch[:, :, :-1] |= m[:, :, 1:]
    return bool(np.any(region & touch))


def _segment_to_lps(
    segment_idx: NDArray[np.float64], z_local: int, origin_index: NDArray[Any], geometry: Geometry
) -> Segment:
    """Two in-plane (row, column) points of local slice ``z_local`` -> two LPS points."""
    pts = np.column_stack([np.full(2, float(z_local)), segment_idx]) + origin_index
    lps = geometry.index_to_lps(pts)
    return (tuple(float(v) for v in lps[0]), tuple(float(v) for v in lps[1]))  # type: ignore[return-value]


def _row_extremes(sub: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.intp]]:
    """Per (slice, row): whether the row has lesion pixels, and its first and last lesion column."""
    has: NDArray[np.bool_] = np.asarray(sub.any(axis=2))
    left: NDArray[np.intp] = np.asarray(sub.argmax(axis=2))
    right: NDArray[np.intp] = np.asarray(sub.shape[2] - 1 - sub[:, :, ::-1].argmax(axis=2))
    return has, left, right


_Extremes = tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.intp]]


def _inplane_axes(
    sub: NDArray[np.bool_], extremes: _Extremes, spacing_mm: Vec3
) -> tuple[int, float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Long axis (exact, mesh convention) over all slices, then the short axis on its slice.

    Returns the local slice index, the two lengths in mm and the two segments as (row, column) index pairs.
    """
    _, sy, sx = spacing_mm
    has, left, right = extremes
    nz, ny = has.shape
    rows = np.arange(ny)
    # Rows a and b of one slice, n = |a − b| rows apart: their farthest contour vertices are at the right end of
    # one and the left end of the other, D = max(R_a − L_b, R_b − L_a) columns apart, either both half a pixel
    # beyond the end pixels on the rows' lines, or both at the end pixels' columns on the rows' outer edges:
    #   d² = max(((D + 1)·sx)² + (n·sy)², (D·sx)² + ((n + 1)·sy)²)   (module docstring).
    n = np.abs(rows[:, None] - rows[None, :])
    dy2 = (n * sy) ** 2
    dy2_edges = ((n + 1) * sy) ** 2
    best = -1.0
    tied: list[tuple[int, int, int]] = []  # (slice, row a, row b) of every pair at the largest d²
    block = max(1, _PAIR_BLOCK // max(ny * ny, 1))
    for z0 in range(0, nz, block):
        zs = slice(z0, min(nz, z0 + block))
        h, lft, rgt = has[zs], left[zs].astype(np.int64), right[zs].astype(np.int64)
        ab = rgt[:, :, None] - lft[:, None, :]  # R_a - L_b
        dx = np.maximum(ab, np.swapaxes(ab, 1, 2)) * sx
        d2 = np.maximum((dx + sx) ** 2 + dy2[None], dx * dx + dy2_edges[None])
        d2 = np.where(h[:, :, None] & h[:, None, :], d2, -1.0)
        top = float(d2.max())
        if top > best * (1 + _TIE_RTOL):
            best, tied = top, []
        if top >= best * (1 - _TIE_RTOL) and len(tied) < _MAX_TIED:
            hits = np.argwhere(d2 >= best * (1 - _TIE_RTOL))
            tied += [(z0 + int(k), int(a), int(b)) for k, a, b in hits[hits[:, 1] <= hits[:, 2]]]
    # Every chord of that length: a pair of rows can hold two (R_a − L_b = R_b − L_a) and each chord two vertex
    # pairs of the same length. On a tie the short axis decides (the longest one), so the result does not depend
    # on the order in which the slices, rows and columns are stored (flips, transposes).
    chosen: tuple[float, int, NDArray[np.float64], NDArray[np.float64]] | None = None
    for z, a0, b0 in tied[:_MAX_TIED]:
        for a, b in {(a0, b0), (b0, a0)}:  # a holds the right end (column R_a), b the left end (column L_b)
            dx_chord = float(right[z, a] - left[z, b]) * sx
            d_rows = abs(a - b)
            on_lines = (dx_chord + sx) ** 2 + (d_rows * sy) ** 2
            on_edges = dx_chord**2 + ((d_rows + 1) * sy) ** 2
            candidates = []
            if on_lines >= best * (1 - _TIE_RTOL):  # vertices on the rows' lines, half a pixel beyond the ends
                candidates.append(np.array([[a, right[z, a] + 0.5], [b, left[z, b] - 0.5]], dtype=float))
            if on_edges >= best * (1 - _TIE_RTOL):  # vertices at the end pixels' columns, on the outer edges
                ya, yb = (a + 0.5, b - 0.5) if a >= b else (a - 0.5, b + 0.5)
                candidates.append(np.array([[ya, right[z, a]], [yb, left[z, b]]], dtype=float))
            for long_idx in candidates:
                short_mm, short_idx = _short_axis(sub[z], long_idx, sy, sx)
                if chosen is None or short_mm > chosen[0] * (1 + _TIE_RTOL):
                    chosen = (short_mm, z, long_idx, short_idx)
    assert chosen is not None  # the lesion has at least one pixel, so one pair of rows
    short_mm, z, long_idx, short_idx = chosen
    return z, math.sqrt(best), short_mm, long_idx, short_idx


#: Marching squares as in pyradiomics (cshape.c, lineTable2D). A cell joins four pixel centres, indexed by the
#: bits p0 (row 0, col 0) = 1, p1 (0, 1) = 2, p2 (1, 1) = 4, p3 (1, 0) = 8 of those inside; its contour segments
#: join the midpoints of two of its edges, v0 = (0, ½), v1 = (½, 1), v2 = (1, ½), v3 = (½, 0) (row, col from
#: p0). The saddles 5 and 10 have two segments and keep diagonal pixels apart, as pyradiomics and
#: skimage.measure.find_contours do; every other mixed cell has one (repeated in the second column).
_EDGE_MIDPOINTS = ((0.0, 0.5), (0.5, 1.0), (1.0, 0.5), (0.5, 0.0))
_SQUARE_EDGES = (
    ((0, 0), (0, 0)),
    ((3, 0), (3, 0)),
    ((0, 1), (0, 1)),
    ((3, 1), (3, 1)),
    ((1, 2), (1, 2)),
    ((1, 2), (3, 0)),
    ((0, 2), (0, 2)),
    ((3, 2), (3, 2)),
    ((2, 3), (2, 3)),
    ((2, 0), (2, 0)),
    ((0, 1), (2, 3)),
    ((2, 1), (2, 1)),
    ((1, 3), (1, 3)),
    ((1, 0), (1, 0)),
    ((0, 3), (0, 3)),
    ((0, 0), (0, 0)),
)
#: (cell index, segment, end) -> (row, col) offset from p0.
_SQUARE_SEGMENTS = np.array(
    [[[_EDGE_MIDPOINTS[e] for e in seg] for seg in segs] for segs in _SQUARE_EDGES], dtype=np.float64
)


def _contour_segments(mask2d: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Marching-squares contour of a 2D mask at level ½: segments (n, 2 ends, (row, column)) in pixel indices.

    A cell with one segment lists it twice; the duplicate changes no extent.
    """
    ny, nx = mask2d.shape
    m = np.zeros((ny + 2, nx + 2), dtype=np.uint8)
    m[1:-1, 1:-1] = mask2d
    cell = m[:-1, :-1] | (m[:-1, 1:] << 1) | (m[1:, 1:] << 2) | (m[1:, :-1] << 3)
    r, c = np.nonzero((cell - 1) < 14)  # the mixed cells 1..14 (uint8: 0 - 1 wraps to 255)
    origin = np.stack([r, c], axis=1) - 1.0  # cell origin p0 in unpadded pixel indices
    segments = _SQUARE_SEGMENTS[cell[r, c]] + origin[:, None, None, :]
    return segments.reshape(-1, 2, 2)


def _short_axis(
    mask2d: NDArray[np.bool_], long_idx: NDArray[np.float64], sy: float, sx: float
) -> tuple[float, NDArray[np.float64]]:
    """Longest chord of the contour region perpendicular to the long axis (physical spacing sy, sx)."""
    scale = np.array([sy, sx])
    u = (long_idx[1] - long_idx[0]) * scale
    u = u / np.linalg.norm(u)
    v = np.array([-u[1], u[0]])
    # The region inside the contour is closed: on each line its extreme points lie on contour segments.
    proj = (_contour_segments(mask2d) * scale) @ np.column_stack([u, v])  # (segment, end, (along u, along v))
    au, bu = proj[:, 0, 0], proj[:, 1, 0]
    av, bv = proj[:, 0, 1], proj[:, 1, 1]
    step = 0.25 * min(sy, sx)
    tol = 1e-9 * step
    # Each segment is crossed by the sampled perpendicular lines t_k = k·step between its ends' projections.
    k_lo = np.ceil((np.minimum(au, bu) - tol) / step).astype(np.int64)
    k_hi = np.floor((np.maximum(au, bu) + tol) / step).astype(np.int64)
    span = int(np.max(k_hi - k_lo)) + 1 if k_lo.size else 0
    k = k_lo[:, None] + np.arange(max(span, 1))[None, :]
    valid = k <= k_hi[:, None]
    du = (bu - au)[:, None]
    crossing = np.abs(du) > tol
    # Where each line crosses the segment (clipped to it); a segment lying on the line counts whole.
    frac = np.clip((k * step - au[:, None]) / np.where(crossing, du, 1.0), 0.0, 1.0)
    s_cross = av[:, None] + frac * (bv - av)[:, None]
    s_lo = np.where(crossing, s_cross, np.minimum(av, bv)[:, None])
    s_hi = np.where(crossing, s_cross, np.maximum(av, bv)[:, None])
    kk, lo, hi = k[valid], s_lo[valid], s_hi[valid]
    if kk.size == 0:
        return 0.0, long_idx.copy()
    order = np.argsort(kk, kind="stable")
    kk, lo, hi = kk[order], lo[order], hi[order]
    starts = np.flatnonzero(np.r_[True, kk[1:] != kk[:-1]])
    mins = np.minimum.reduceat(lo, starts)
    maxs = np.maximum.reduceat(hi, starts)
    j = int(np.argmax(maxs - mins))
    tk = kk[starts[j]] * step
    ends = np.array([tk * u + mins[j] * v, tk * u + maxs[j] * v]) / scale
    return float(maxs[j] - mins[j]), ends


@functools.lru_cache(maxsize=16)
def _support_directions(
    sy: float, sx: float
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """For K directions θ_k = 2πk/K in the (column, row) plane: cos θ ≥ 0, sx·cos θ, sy·sin θ and 2·g(θ)."""
    theta = np.arange(_SUPPORT_DIRECTIONS) * (2.0 * np.pi / _SUPPORT_DIRECTIONS)
    c, s = np.cos(theta), np.sin(theta)
    return c >= 0, sx * c, sy * s, np.maximum(np.abs(c) * sx, np.abs(s) * sy)


def _max_diameter_3d(extremes: _Extremes, spacing_mm: Vec3) -> float:
    """Largest distance between two surface-mesh vertices of the lesion, in mm (exact).

    The farthest vertices are at row ends (module docstring). Per slice, the in-plane support function h(θ) of
    its row-end pixel centres is sampled in K directions; that of its in-plane vertices (half a pixel beyond a
    pixel centre along a row or a column) is h(θ) + g(θ) with g(θ) = ½·max(|cos θ|·sx, |sin θ|·sy). For two
    slices a and b, n slices apart, the largest distance is the larger of sqrt(E_ab² + (n·sz)²) between their
    in-plane vertices and sqrt(C_ab² + ((n + 1)·sz)²) between the vertices on their outer faces (above and
    below pixel centres); each in-plane width lies between W = max_θ h_a(θ) + h_b(θ + π) (+ 2·g(θ) for E_ab)
    and W / cos(π/K). Only slice pairs whose upper bound reaches the best lower bound are computed exactly, from
    their rows' end points.
    """
    sz, sy, sx = spacing_mm
    has, left, right = extremes
    zi, yi = np.nonzero(has)
    lft = left[zi, yi]
    rgt = right[zi, yi]
    k = _SUPPORT_DIRECTIONS
    cos_pos, c_sx, s_sy, g2 = _support_directions(sy, sx)
    proj = np.where(cos_pos, rgt[:, None], lft[:, None]) * c_sx + yi[:, None] * s_sy
    starts = np.flatnonzero(np.r_[True, zi[1:] != zi[:-1]])
    stops = np.r_[starts[1:], zi.size]
    h = np.maximum.reduceat(proj, starts, axis=0)  # (slices, K), row-end pixel centres
    h_opposite = np.roll(h, -(k // 2), axis=1)  # h(θ + π)
    zs = zi[starts]
    n = zs.size
    width_c = np.empty((n, n))
    width_e = np.empty((n, n))
    block = max(1, _PAIR_BLOCK // max(n * k, 1))
    for a0 in range(0, n, block):
        a = slice(a0, min(n, a0 + block))
        pair = h[a, None, :] + h_opposite[None, :, :]
        width_c[a] = np.max(pair, axis=2)
        width_e[a] = np.max(pair + g2, axis=2)
    dz = np.abs(zs[:, None] - zs[None, :]) * sz
    dz2 = dz * dz
    dz2_faces = (dz + sz) ** 2
    e2 = width_e * width_e
    c2 = width_c * width_c
    best = float(np.max(np.maximum(e2 + dz2, c2 + dz2_faces)))
    slack = 1.0 / math.cos(math.pi / k) ** 2
    upper = np.maximum(e2 * slack + dz2, c2 * slack + dz2_faces)
    lft = lft.astype(np.int64)
    rgt = rgt.astype(np.int64)
    for a, b in np.argwhere(np.triu(upper >= best * (1 - 1e-12))):
        ra = slice(starts[a], stops[a])
        rb = slice(starts[b], stops[b])
        dx = np.maximum(rgt[ra, None] - lft[None, rb], rgt[None, rb] - lft[ra, None]) * sx
        dy = np.abs(yi[ra, None] - yi[None, rb]) * sy
        d2 = dx * dx + dy * dy
        # Half a voxel beyond the end voxels along the one axis that gains the most (module docstring).
        in_plane = float(np.max(d2 + np.maximum(2.0 * sx * dx + sx * sx, 2.0 * sy * dy + sy * sy))) + dz2[a, b]
        across = float(np.max(d2)) + dz2_faces[a, b]
        best = max(best, in_plane, across)
    return math.sqrt(best)


def measurements_table(scan: ScanMeasurement) -> list[dict[str, Any]]:
    """One flat row per lesion (CSV-ready): the lesion fields with end points split into columns."""
    rows = []
    for lesion in scan.lesions:
        d = lesion.to_dict()
        row: dict[str, Any] = {
            k: v for k, v in d.items() if not k.endswith("_endpoints_mm") and k != "centroid_mm"
        }
        for axis_name, pts in (
            ("long_axis", lesion.long_axis_endpoints_mm),
            ("short_axis", lesion.short_axis_endpoints_mm),
        ):
            for end, p in zip(("start", "end"), pts):
                for name, value in zip("xyz", p):
                    row[f"{axis_name}_{end}_{name}_mm"] = value
        for name, value in zip("xyz", lesion.centroid_mm):
            row[f"centroid_{name}_mm"] = value
        rows.append(row)
    return rows


def table_columns() -> list[str]:
    """Column order of :func:`measurements_table` (stable, for CSV headers)."""
    cols = [
        "lesion_id",
        "label",
        "volume_ml",
        "voxel_count",
        "long_axis_mm",
        "short_axis_mm",
        "slice_index",
        "max_diameter_3d_mm",
        "mean_hu",
        "sd_hu",
        "measurable",
        "in_liver",
        "touches_border",
    ]
    cols += [f"centroid_{a}_mm" for a in "xyz"]
    for axis_name in ("long_axis", "short_axis"):
        cols += [f"{axis_name}_{end}_{a}_mm" for end in ("start", "end") for a in "xyz"]
    return cols
