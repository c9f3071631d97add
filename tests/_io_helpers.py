"""Helpers for the I/O tests: phantoms on grids of several orientations, and comparisons against SimpleITK."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.geometry import Geometry
from hepavol.volume import Volume


def rotation(axis: str, degrees: float) -> NDArray[np.float64]:
    """3×3 rotation about the L (x), P (y) or S (z) axis."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _direction(slice_dir: Any, row_dir: Any, col_dir: Any) -> tuple[tuple[float, ...], ...]:
    d = np.column_stack([slice_dir, row_dir, col_dir]).astype(float)
    return tuple(tuple(float(v) for v in r) for r in d)


#: Direction matrices (columns: slice, row, column axes in LPS). All but "axial-slices-reversed" are right-handed:
#: the slice axis is the DICOM slice normal (column direction x row direction).
ORIENTATIONS: dict[str, tuple[tuple[float, ...], ...]] = {
    # axial, as a CT scanner writes it: columns to patient left, rows to posterior, slices to superior
    "axial": _direction((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    # axial with slices feet-first and rows/columns flipped (right-handed too)
    "axial-flipped": _direction((0, 0, -1), (0, -1, 0), (1, 0, 0)),
    # axial with only the slice axis flipped (left-handed: a DICOM series reads back in reverse slice order)
    "axial-slices-reversed": _direction((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    # coronal: slices to posterior, rows to inferior, columns to left
    "coronal": _direction((0, 1, 0), (0, 0, -1), (1, 0, 0)),
    # sagittal: slices to the right, rows to inferior, columns to posterior
    "sagittal": _direction((-1, 0, 0), (0, 0, -1), (0, 1, 0)),
    # axial rotated 30° in plane (oblique rows/columns)
    "oblique-inplane": _direction(
        rotation("z", 30) @ np.array([0, 0, 1]),
        rotation("z", 30) @ np.array([0, 1, 0]),
        rotation("z", 30) @ np.array([1, 0, 0]),
    ),
    # double oblique: 30° about S then 20° about L
    "double-oblique": _direction(
        rotation("x", 20) @ rotation("z", 30) @ np.array([0, 0, 1]),
        rotation("x", 20) @ rotation("z", 30) @ np.array([0, 1, 0]),
        rotation("x", 20) @ rotation("z", 30) @ np.array([1, 0, 0]),
    ),
}


def is_right_handed(direction: Any) -> bool:
    """True when the slice axis is the DICOM normal (column direction × row direction)."""
    d = np.asarray(direction, dtype=float)
    return bool(np.dot(np.cross(d[:, 2], d[:, 1]), d[:, 0]) > 0)


def phantom(
    orientation: str = "axial",
    *,
    shape: tuple[int, int, int] = (9, 24, 30),
    spacing_mm: tuple[float, float, float] = (2.5, 0.7, 0.9),
    origin_lps_mm: tuple[float, float, float] = (-12.5, 30.25, -101.0),
    seed: int = 0,
) -> Volume:
    """An int16 CT-like phantom (HU) with an asymmetric content so that any flip or transpose shows."""
    rng = np.random.default_rng(seed)
    geometry = Geometry(
        shape=shape, spacing_mm=spacing_mm, origin_lps_mm=origin_lps_mm, direction=ORIENTATIONS[orientation]
    )
    k, j, i = np.indices(shape)
    array = (-1000 + 7 * k + 3 * j + i + rng.integers(0, 50, size=shape)).astype(np.int16)
    array[shape[0] // 3, 2:6, 3:9] = 1500  # an off-centre bright block
    return Volume(array, geometry, "phantom")


def label_phantom(orientation: str = "axial", **kwargs: Any) -> Volume:
    """A label map (uint8) on the phantom grid: label 1 liver-like block, label 2 a small lesion."""
    base = phantom(orientation, **kwargs)
    arr = np.zeros(base.shape, dtype=np.uint8)
    arr[1:-1, 3:18, 4:25] = 1
    arr[3:5, 6:10, 8:12] = 2
    return Volume(arr, base.geometry, "labels")


def sitk_points(image: Any, sitk_indices: NDArray[np.int64]) -> NDArray[np.float64]:
    """SimpleITK physical points (LPS mm) of (x, y, z) = (column, row, slice) indices."""
    return np.array([image.TransformIndexToPhysicalPoint([int(v) for v in idx]) for idx in sitk_indices])


def assert_same_as_sitk(volume: Volume, image: Any, *, atol_mm: float = 1e-4) -> None:
    """Our voxel (s, r, c) must sit where SimpleITK puts its voxel (c, r, s) and hold the same value.

    Checks the eight corners and a few random voxels: ``TransformIndexToPhysicalPoint`` (SimpleITK, independent
    of hepavol's code) against ``Geometry.index_to_lps``, then the voxel values, and the whole arrays when SimpleITK
    orders the axes the same way.
    """
    import SimpleITK as sitk

    assert tuple(reversed(image.GetSize())) == volume.shape, (image.GetSize(), volume.shape)
    s, r, c = volume.shape
    corners = np.array([(a, b, d) for a in (0, s - 1) for b in (0, r - 1) for d in (0, c - 1)])
    rng = np.random.default_rng(1)
    rand = np.column_stack([rng.integers(0, n, 6) for n in volume.shape])
    idx = np.vstack([corners, rand])
    ours = volume.geometry.index_to_lps(idx)
    theirs = sitk_points(image, idx[:, ::-1])
    np.testing.assert_allclose(ours, theirs, atol=atol_mm)
    arr = sitk.GetArrayViewFromImage(image)
    for k, j, i in idx:
        assert arr[k, j, i] == volume.array[k, j, i]
    np.testing.assert_array_equal(arr, volume.array)


def assert_same_volume(a: Volume, b: Volume, *, atol_mm: float = 1e-4) -> None:
    """Identical arrays (values and dtype kind) and geometries within ``atol_mm``."""
    assert a.geometry.differences(b.geometry, atol_mm=atol_mm, direction_atol=1e-6) == [], (
        a.geometry.describe(),
        b.geometry.describe(),
    )
    np.testing.assert_array_equal(a.array, b.array)
