"""Property tests (Hypothesis) of measurement on random masks (issue 19).

- Volume: every lesion's volume is its voxel count × the voxel volume, and the voxel counts add up to the mask's
  (counted here with numpy); the number of lesions is the number of 26-connected components found by scipy's
  ``ndimage.label`` (an implementation independent of the cc3d library hepavol uses).
- Diameters: long axis ≥ short axis, and the in-plane long axis ≤ the 3D maximum diameter (the in-plane mesh
  vertices are vertices of the 3D mesh).
- Invariance: the same voxels stored with an axis flipped, or with two axes swapped, under the matching direction
  matrix and origin (the same physical object) give the same numbers and the same LPS centroid. Flips and the
  in-plane swap keep the acquisition plane, so every figure is unchanged (the short axis within its quarter-pixel
  sampling); a swap that moves the slice axis changes the acquisition plane, so only the volume, the 3D diameter
  and the centroid must stay.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from hepavol import Geometry, Volume
from hepavol.measurement import ScanMeasurement, measure_scan

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)

spacings = st.tuples(*[st.floats(min_value=0.3, max_value=5.0, allow_nan=False)] * 3)
shapes = st.tuples(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9))


@st.composite
def rotations(draw: st.DrawFn) -> np.ndarray:
    """A random orthonormal direction matrix (QR of a random matrix; proper or improper)."""
    m = draw(hnp.arrays(np.float64, (3, 3), elements=st.floats(-1, 1, allow_nan=False)))
    q, r = np.linalg.qr(m + np.eye(3) * 1e-3)
    q = q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
    if not np.allclose(q.T @ q, np.eye(3), atol=1e-9):  # pragma: no cover - degenerate draw
        return np.eye(3)
    return q


@st.composite
def masks(draw: st.DrawFn) -> tuple[np.ndarray, Geometry]:
    shape = draw(shapes)
    mask = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
    geometry = Geometry(
        shape=shape,
        spacing_mm=draw(spacings),
        origin_lps_mm=tuple(draw(st.floats(-200, 200, allow_nan=False)) for _ in range(3)),
        direction=tuple(map(tuple, draw(rotations()))),
    )
    return mask, geometry


def _measure(mask: np.ndarray, geometry: Geometry) -> ScanMeasurement:
    return measure_scan(Volume(np.ascontiguousarray(mask.astype(np.uint8) * 2), geometry))


def _by_voxels(m: ScanMeasurement) -> list:  # type: ignore[type-arg]
    """Lesions keyed by what does not depend on storage order (voxel count, then centroid)."""
    return sorted(m.lesions, key=lambda les: (les.voxel_count, *np.round(les.centroid_mm, 6)))


@SETTINGS
@given(masks())
def test_volume_is_voxel_count_times_voxel_volume(case: tuple[np.ndarray, Geometry]) -> None:
    mask, g = case
    m = _measure(mask, g)
    voxel_ml = g.spacing_mm[0] * g.spacing_mm[1] * g.spacing_mm[2] / 1000.0
    _, n_components = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert m.lesion_count == n_components
    assert sum(les.voxel_count for les in m.lesions) == int(np.count_nonzero(mask))
    assert m.total_tumor_volume_ml == pytest.approx(np.count_nonzero(mask) * voxel_ml, rel=1e-12)
    for les in m.lesions:
        assert les.volume_ml == pytest.approx(les.voxel_count * voxel_ml, rel=1e-12)
        assert les.long_axis_mm >= les.short_axis_mm - 1e-9
        assert les.long_axis_mm <= les.max_diameter_3d_mm + 1e-9
        assert les.short_axis_mm > 0


def _flipped(mask: np.ndarray, g: Geometry, axis: int) -> tuple[np.ndarray, Geometry]:
    d = g.direction_matrix.copy()
    d[:, axis] *= -1
    origin = g.index_to_lps([g.shape[i] - 1 if i == axis else 0 for i in range(3)])
    return np.flip(mask, axis=axis), Geometry(
        shape=g.shape, spacing_mm=g.spacing_mm, origin_lps_mm=tuple(origin), direction=tuple(map(tuple, d))
    )


def _swapped(mask: np.ndarray, g: Geometry, a: int, b: int) -> tuple[np.ndarray, Geometry]:
    order = [0, 1, 2]
    order[a], order[b] = order[b], order[a]
    d = g.direction_matrix[:, order]
    return np.swapaxes(mask, a, b), Geometry(
        shape=tuple(g.shape[i] for i in order),
        spacing_mm=tuple(g.spacing_mm[i] for i in order),
        origin_lps_mm=g.origin_lps_mm,
        direction=tuple(map(tuple, d)),
    )


def _same(a: ScanMeasurement, b: ScanMeasurement, *, in_plane: bool, short_tol_mm: float) -> None:
    assert a.lesion_count == b.lesion_count
    assert b.total_tumor_volume_ml == pytest.approx(a.total_tumor_volume_ml, rel=1e-12)
    for x, y in zip(_by_voxels(a), _by_voxels(b), strict=True):
        assert y.voxel_count == x.voxel_count
        np.testing.assert_allclose(y.centroid_mm, x.centroid_mm, atol=1e-6)
        assert y.max_diameter_3d_mm == pytest.approx(x.max_diameter_3d_mm, rel=1e-9)
        if in_plane:
            assert y.long_axis_mm == pytest.approx(x.long_axis_mm, rel=1e-9)
            assert y.short_axis_mm == pytest.approx(x.short_axis_mm, abs=short_tol_mm)


@SETTINGS
@given(masks(), st.integers(0, 2))
def test_flips_with_the_matching_direction_change_nothing(case: tuple[np.ndarray, Geometry], axis: int) -> None:
    mask, g = case
    ref = _measure(mask, g)
    # The short axis is sampled every quarter pixel along the long axis: a flip moves the samples.
    _same(ref, _measure(*_flipped(mask, g, axis)), in_plane=True, short_tol_mm=0.25 * max(g.spacing_mm[1:]))


@SETTINGS
@given(masks(), st.sampled_from([(1, 2), (0, 1), (0, 2)]))
def test_axis_permutations_with_the_matching_direction(
    case: tuple[np.ndarray, Geometry], axes: tuple[int, int]
) -> None:
    mask, g = case
    ref = _measure(mask, g)
    in_plane = axes == (1, 2)
    _same(ref, _measure(*_swapped(mask, g, *axes)), in_plane=in_plane, short_tol_mm=0.25 * max(g.spacing_mm[1:]))
