"""Measurement against analytic phantoms and against SimpleITK (an independent implementation).

Reference values:
- Cube and box figures are hand calculations from the voxel spacing (corner convention: a run of n pixels of
  spacing s spans n·s mm, and the diameter of a rectangle is its diagonal).
- Ellipsoid figures are the analytic ones (volume 4/3·π·abc, diameters 2a, 2b, centre); the voxelised shape
  must be within one pixel (voxel) diagonal of them, as the issue requires.
- SimpleITK LabelShapeStatisticsImageFilter (PhysicalSize, Centroid, FeretDiameter) and
  LabelStatisticsImageFilter (Mean, Sigma) on the same arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from hepavol import Geometry, Volume
from hepavol.errors import GeometryError, InputError
from hepavol.geometry import identity_direction
from hepavol.measurement import measure_scan, measurements_table, table_columns


def _geometry(shape, spacing, direction=None, origin=(-100.0, 50.0, 20.0)) -> Geometry:
    return Geometry(
        shape=shape,
        spacing_mm=spacing,
        origin_lps_mm=origin,
        direction=identity_direction() if direction is None else direction,
    )


def _rotation_direction(angle_deg: float, *, flip_col: bool = False, flip_row: bool = False, flip_slice=False):
    """Axial-ish frames: columns along L rotated by angle about S, optional flips of each axis."""
    a = math.radians(angle_deg)
    col = np.array([math.cos(a), math.sin(a), 0.0]) * (-1 if flip_col else 1)
    row = np.array([-math.sin(a), math.cos(a), 0.0]) * (-1 if flip_row else 1)
    normal = np.array([0.0, 0.0, 1.0]) * (-1 if flip_slice else 1)
    return np.stack([normal, row, col], axis=1)


def _ellipsoid(geometry: Geometry, centre_lps, semi_axes_mm, axes_lps) -> np.ndarray:
    """Voxels whose centre lies inside the ellipsoid (semi-axes along the given LPS unit vectors)."""
    idx = np.indices(geometry.shape).reshape(3, -1).T
    pts = geometry.index_to_lps(idx) - np.asarray(centre_lps)
    coords = pts @ np.asarray(axes_lps).T
    inside = np.sum((coords / np.asarray(semi_axes_mm)) ** 2, axis=1) <= 1.0
    return inside.reshape(geometry.shape)


# --------------------------------------------------------------------------------------------------------------
# Hand calculations


def test_cube_volume_and_corner_diameters() -> None:
    """10×10×10 voxels at (2.5, 0.7, 0.7) mm: 1225 mm³; in-plane diagonal 7√2 mm; 3D diagonal √(25²+7²+7²)."""
    g = _geometry((14, 14, 14), (2.5, 0.7, 0.7))
    labels = np.zeros(g.shape, np.uint8)
    labels[2:12, 2:12, 2:12] = 2
    m = measure_scan(Volume(labels, g))
    (lesion,) = m.lesions
    assert lesion.voxel_count == 1000
    assert lesion.volume_ml == pytest.approx(1.225)
    assert m.total_tumor_volume_ml == pytest.approx(1.225)
    assert lesion.long_axis_mm == pytest.approx(7.0 * math.sqrt(2))
    assert lesion.short_axis_mm == pytest.approx(7.0 * math.sqrt(2), abs=0.7 * 0.25 * math.sqrt(2))
    assert lesion.max_diameter_3d_mm == pytest.approx(math.sqrt(25**2 + 7**2 + 7**2))
    # Centre of voxels 2..11 is index 6.5 along every axis.
    np.testing.assert_allclose(lesion.centroid_mm, g.index_to_lps([6.5, 6.5, 6.5]))
    assert lesion.slice_index == 2  # all slices tie: the first one
    # Long-axis end points are opposite corners of the 10×10 pixel square on that slice.
    a, b = (np.asarray(p) for p in lesion.long_axis_endpoints_mm)
    assert np.linalg.norm(a - b) == pytest.approx(lesion.long_axis_mm)
    np.testing.assert_allclose(g.lps_to_index(a)[0], 2.0)
    assert not lesion.measurable  # 9.9 mm < 10 mm (RECIST 1.1)


def test_rectangle_long_and_short_axis() -> None:
    """A 40×8 pixel bar at 0.5 mm: long axis = diagonal √(20²+4²); short = its perpendicular chord."""
    g = _geometry((3, 60, 60), (5.0, 0.5, 0.5))
    labels = np.zeros(g.shape, np.uint8)
    labels[1, 20:28, 10:50] = 2
    (lesion,) = measure_scan(Volume(labels, g)).lesions
    assert lesion.long_axis_mm == pytest.approx(math.hypot(20.0, 4.0))
    # The longest chord perpendicular to the diagonal of a w×h rectangle (w > h) is h·√(1 + (h/w)²)·...:
    # chord through the rectangle along the normal of the diagonal, length h / cos(atan(h/w)) = h·√(w²+h²)/w.
    expected_short = 4.0 * math.hypot(20.0, 4.0) / 20.0
    assert lesion.short_axis_mm == pytest.approx(expected_short, abs=0.25 * 0.5)
    assert lesion.measurable  # 20.4 mm >= 10 mm and >= 2 × 5 mm


def test_measurable_uses_twice_slice_thickness() -> None:
    """RECIST 1.1 §3.1: with 6 mm slices a 11 mm lesion is not measurable (minimum 2 × 6 = 12 mm)."""
    g = _geometry((3, 40, 40), (6.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1, 10:11, 10:21] = 2  # 11 × 1 pixels: long axis √(11² + 1²) = 11.05 mm
    (lesion,) = measure_scan(Volume(labels, g)).lesions
    assert lesion.long_axis_mm == pytest.approx(math.hypot(11, 1))
    assert not lesion.measurable
    labels[1, 10:11, 10:23] = 2  # 13 px: 13.04 mm >= 12 mm
    assert measure_scan(Volume(labels, g)).lesions[0].measurable


# --------------------------------------------------------------------------------------------------------------
# Analytic ellipsoids in several frames


FRAMES = [
    pytest.param(_rotation_direction(0), (2.0, 0.7, 0.8), id="axial-anisotropic"),
    pytest.param(_rotation_direction(30), (2.5, 0.6, 0.6), id="rotated-30"),
    pytest.param(_rotation_direction(-65, flip_col=True), (1.5, 0.8, 0.7), id="rotated-flipped-col"),
    pytest.param(
        _rotation_direction(10, flip_row=True, flip_slice=True), (3.0, 0.75, 0.75), id="flipped-row-slice"
    ),
]


@pytest.mark.parametrize(("direction", "spacing"), FRAMES)
@pytest.mark.parametrize("in_plane_angle", [0.0, 37.0])
def test_ellipsoid_matches_analytic_values(direction, spacing, in_plane_angle: float) -> None:
    g = _geometry((40, 150, 150), spacing, direction)
    centre = g.index_to_lps([19.3, 74.6, 75.2])
    a, b, c = 24.0, 15.0, 12.0  # semi-axes in mm; a and b in the axial plane, c along S
    t = math.radians(in_plane_angle)
    axes = np.array([[math.cos(t), math.sin(t), 0.0], [-math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]])
    labels = _ellipsoid(g, centre, (a, b, c), axes).astype(np.uint8) * 2
    m = measure_scan(Volume(labels, g))
    (lesion,) = m.lesions
    pixel_diagonal = math.hypot(spacing[1], spacing[2])
    voxel_diagonal = math.sqrt(sum(s * s for s in spacing))
    true_volume_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    assert lesion.volume_ml == pytest.approx(true_volume_ml, rel=0.02)
    assert abs(lesion.long_axis_mm - 2 * a) <= pixel_diagonal
    assert abs(lesion.short_axis_mm - 2 * b) <= pixel_diagonal
    assert abs(lesion.max_diameter_3d_mm - 2 * a) <= voxel_diagonal
    assert np.linalg.norm(np.asarray(lesion.centroid_mm) - centre) <= 0.25 * voxel_diagonal
    # The long axis lies on the slice through the centre (within a slice) and along the true major axis.
    assert abs(lesion.slice_index - 19.3) <= 1.0
    p, q = (np.asarray(x) for x in lesion.long_axis_endpoints_mm)
    along = abs(np.dot((q - p) / np.linalg.norm(q - p), axes[0]))
    assert along > math.cos(math.radians(8))
    s1, s2 = (np.asarray(x) for x in lesion.short_axis_endpoints_mm)
    assert abs(np.dot((s2 - s1) / np.linalg.norm(s2 - s1), (q - p) / np.linalg.norm(q - p))) < 1e-9


def test_sphere_volume_within_one_percent() -> None:
    """r = 20 mm at 0.5 mm spacing: within 1 % of 4/3·π·20³ = 33 510 mm³ (STYLE.md 2.6)."""
    g = _geometry((90, 90, 90), (0.5, 0.5, 0.5))
    labels = _ellipsoid(g, g.index_to_lps([44.5, 44.5, 44.5]), (20, 20, 20), np.eye(3)).astype(np.uint8) * 2
    (lesion,) = measure_scan(Volume(labels, g)).lesions
    assert lesion.volume_ml * 1000 == pytest.approx(4 / 3 * math.pi * 20**3, rel=0.01)
    assert abs(lesion.long_axis_mm - 40.0) <= math.hypot(0.5, 0.5)


def test_flips_and_axis_permutation_of_the_array_do_not_change_results() -> None:
    """The same physical object stored with flipped axes gives the same volume, diameters and LPS centroid."""
    g = _geometry((30, 80, 70), (2.0, 0.7, 0.9))
    centre = g.index_to_lps([14.2, 40.1, 33.3])
    labels = _ellipsoid(g, centre, (18, 11, 9), np.eye(3)).astype(np.uint8) * 2
    ref = measure_scan(Volume(labels, g)).lesions[0]
    for axis in range(3):
        flipped = np.flip(labels, axis=axis)
        d = g.direction_matrix.copy()
        d[:, axis] *= -1
        origin = g.index_to_lps([g.shape[i] - 1 if i == axis else 0 for i in range(3)])
        g2 = Geometry(shape=g.shape, spacing_mm=g.spacing_mm, origin_lps_mm=origin, direction=d)
        lesion = measure_scan(Volume(np.ascontiguousarray(flipped), g2)).lesions[0]
        assert lesion.voxel_count == ref.voxel_count
        assert lesion.long_axis_mm == pytest.approx(ref.long_axis_mm)
        assert lesion.short_axis_mm == pytest.approx(ref.short_axis_mm, abs=0.25 * 0.9)
        assert lesion.max_diameter_3d_mm == pytest.approx(ref.max_diameter_3d_mm)
        np.testing.assert_allclose(lesion.centroid_mm, ref.centroid_mm, atol=1e-9)
    # Swapping the row and column axes (a transpose in the plane) keeps the in-plane measurements too.
    swapped = np.ascontiguousarray(np.swapaxes(labels, 1, 2))
    d = g.direction_matrix[:, [0, 2, 1]]
    g3 = Geometry(shape=swapped.shape, spacing_mm=(2.0, 0.9, 0.7), origin_lps_mm=g.origin_lps_mm, direction=d)
    lesion = measure_scan(Volume(swapped, g3)).lesions[0]
    assert lesion.long_axis_mm == pytest.approx(ref.long_axis_mm)
    np.testing.assert_allclose(lesion.centroid_mm, ref.centroid_mm, atol=1e-9)


# --------------------------------------------------------------------------------------------------------------
# Against SimpleITK


def test_against_simpleitk_label_shape_and_intensity_statistics() -> None:
    rng = np.random.default_rng(7)
    d = _rotation_direction(25, flip_col=True)
    g = _geometry((36, 96, 96), (2.5, 0.8, 0.8), d)
    labels = np.zeros(g.shape, np.uint8)
    centres = [[10.2, 30.5, 30.1], [24.7, 60.2, 64.4], [12.0, 70.3, 25.8]]
    semis = [(12, 9, 7), (16, 10, 10), (6, 5, 5)]
    for c, s in zip(centres, semis):
        labels[_ellipsoid(g, g.index_to_lps(c), s, np.eye(3))] = 2
    image_arr = rng.normal(60, 15, g.shape).astype(np.float32)
    image = Volume(image_arr, g)
    m = measure_scan(Volume(labels, g), image)

    cc = sitk.ConnectedComponent(Volume(labels, g).to_sitk() == 2, True)  # fully connected = 26
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.ComputeFeretDiameterOn()
    shape.Execute(cc)
    stats = sitk.LabelStatisticsImageFilter()
    stats.Execute(image.to_sitk(), cc)
    ref = sorted(
        (
            {
                "volume_ml": shape.GetPhysicalSize(k) / 1000,
                "centroid": shape.GetCentroid(k),
                "feret": shape.GetFeretDiameter(k),
                "mean": stats.GetMean(k),
                "sigma": stats.GetSigma(k),
            }
            for k in shape.GetLabels()
        ),
        key=lambda r: -r["volume_ml"],
    )
    assert m.lesion_count == len(ref) == 3
    voxel_diagonal = math.sqrt(2.5**2 + 2 * 0.8**2)
    for lesion, r in zip(m.lesions, ref):
        assert lesion.volume_ml == pytest.approx(r["volume_ml"], rel=1e-9)
        np.testing.assert_allclose(lesion.centroid_mm, r["centroid"], atol=1e-6)
        assert lesion.mean_hu == pytest.approx(r["mean"], rel=1e-6)
        assert lesion.sd_hu == pytest.approx(r["sigma"], rel=1e-6)
        # ITK's Feret diameter joins voxel centres; ours joins voxel corners: larger by less than a voxel diagonal.
        assert r["feret"] <= lesion.max_diameter_3d_mm <= r["feret"] + voxel_diagonal


# --------------------------------------------------------------------------------------------------------------
# Scan level: liver, burden, connectivity, instances, warnings


def test_liver_volume_includes_tumours_inside_and_burden_class() -> None:
    g = _geometry((10, 50, 50), (2.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1:9, 5:45, 5:45] = 1  # 8 × 40 × 40 = 12 800 voxels of 2 mm³ = 25.6 mL
    labels[3:6, 10:20, 10:20] = 2  # 300 voxels inside = 0.6 mL
    labels[3:5, 30:34, 30:33] = 2  # 24 voxels inside = 0.048 mL
    m = measure_scan(Volume(labels, g))
    assert m.liver_volume_ml == pytest.approx(25.6)
    assert m.total_tumor_volume_ml == pytest.approx(0.648)
    assert m.tumor_burden_percent == pytest.approx(100 * 0.648 / 25.6)
    assert m.hepatic_tumor_load_class == "<=10"
    assert [les.voxel_count for les in m.lesions] == [300, 24]
    assert [les.lesion_id for les in m.lesions] == ["L1", "L2"]
    assert all(les.in_liver for les in m.lesions)
    assert m.warnings == ()


def test_burden_class_boundaries() -> None:
    """ENETS classes with inclusive upper bounds: a burden of exactly 25 % is '11-25'."""
    g = _geometry((1, 10, 40), (1.0, 1.0, 1.0))
    labels = np.ones(g.shape, np.uint8)  # 400 voxels
    labels[0, 0:10, 0:10] = 2  # 100 / 400 = 25 %
    m = measure_scan(Volume(labels, g))
    assert m.tumor_burden_percent == pytest.approx(25.0)
    assert m.hepatic_tumor_load_class == "11-25"
    labels[0, 0, 10] = 2  # 101 / 400 = 25.25 %
    assert measure_scan(Volume(labels, g)).hepatic_tumor_load_class == "26-50"


def test_lesion_outside_liver_and_border_warnings() -> None:
    g = _geometry((6, 30, 30), (2.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1:5, 2:12, 2:12] = 1
    labels[2:4, 20:25, 20:25] = 2  # far from the liver
    labels[0:2, 5:8, 5:8] = 2  # inside the liver and touching the image edge (slice 0)
    m = measure_scan(Volume(labels, g))
    outside = [les for les in m.lesions if not les.in_liver]
    assert len(outside) == 1
    assert m.liver_volume_ml == pytest.approx((400 - 9 + 18) * 2 / 1000)
    assert any(f"{outside[0].lesion_id} do not touch the liver" in w for w in m.warnings)
    assert any("touch the edge of the image" in w for w in m.warnings)


def test_no_lesion_is_a_valid_result() -> None:
    g = _geometry((4, 10, 10), (1.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1:3, 2:8, 2:8] = 1
    m = measure_scan(Volume(labels, g))
    assert (m.lesion_count, m.total_tumor_volume_ml, m.tumor_burden_percent) == (0, 0.0, 0.0)
    assert m.hepatic_tumor_load_class == "<=10"
    assert any("No voxel has the tumour label" in w for w in m.warnings)


def test_missing_liver_gives_nulls_and_a_warning() -> None:
    g = _geometry((4, 10, 10), (1.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1:3, 2:5, 2:5] = 2
    m = measure_scan(Volume(labels, g))
    assert m.liver_volume_ml is None
    assert m.tumor_burden_percent is None
    assert m.hepatic_tumor_load_class is None
    assert m.lesions[0].in_liver is None
    assert any("liver label 1 is absent" in w for w in m.warnings)


@pytest.mark.parametrize(("connectivity", "count"), [(6, 3), (18, 2), (26, 1)])
def test_connectivity(connectivity: int, count: int) -> None:
    """Three voxels: b shares an edge with a (18-connected), c only a corner with b (26-connected)."""
    g = _geometry((5, 5, 5), (1.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1, 1, 1] = labels[1, 2, 2] = labels[2, 3, 3] = 2
    assert measure_scan(Volume(labels, g), connectivity=connectivity).lesion_count == count


def test_instances_and_multiple_tumour_labels() -> None:
    g = _geometry((4, 20, 20), (1.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[:, :, :] = 1
    labels[1:3, 2:6, 2:6] = 7
    labels[1:3, 6:8, 2:6] = 8  # touches instance 7: still two lesions as instances
    labels[1:3, 12:15, 12:15] = 3
    inst = measure_scan(Volume(labels, g), instances=True)
    assert sorted(les.label for les in inst.lesions) == [3, 7, 8]
    merged = measure_scan(Volume(labels, g), tumor_labels=(7, 8))
    assert merged.lesion_count == 1
    assert merged.lesions[0].voxel_count == 48


def test_bad_inputs_have_clear_errors() -> None:
    g = _geometry((2, 3, 3), (1.0, 1.0, 1.0))
    probabilities = np.full(g.shape, 0.3, np.float32)
    with pytest.raises(InputError, match=r"not a label map.*non-integer values.*0\.3"):
        measure_scan(Volume(probabilities, g))
    labels = np.zeros(g.shape, np.uint8)
    with pytest.raises(InputError, match=r"liver label 1 is also given as a tumour label"):
        measure_scan(Volume(labels, g), tumor_labels=(1, 2))
    with pytest.raises(InputError, match=r"connectivity.*6, 18 or 26.*but it is 8"):
        measure_scan(Volume(labels, g), connectivity=8)
    other = _geometry((2, 3, 3), (1.0, 1.0, 2.0))
    with pytest.raises(GeometryError, match=r"different grids"):
        measure_scan(Volume(labels, g), Volume(np.zeros(other.shape, np.int16), other))


def test_table_has_units_in_column_names_and_one_row_per_lesion() -> None:
    g = _geometry((4, 20, 20), (1.0, 1.0, 1.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[1:3, 2:6, 2:6] = 2
    labels[1:3, 12:15, 12:15] = 2
    rows = measurements_table(measure_scan(Volume(labels, g)))
    assert len(rows) == 2
    assert set(rows[0]) == set(table_columns())
    assert rows[0]["volume_ml"] == pytest.approx(0.032)


# --------------------------------------------------------------------------------------------------------------
# The fast diameter algorithms against brute force over every voxel corner


def _corner_points(mask: np.ndarray, spacing) -> np.ndarray:
    idx = np.argwhere(mask).astype(float)
    offsets = np.array([[a, b, c] for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)])
    return ((idx[:, None, :] + offsets[None]) * np.asarray(spacing)).reshape(-1, 3)


def _brute_force_diameter(points: np.ndarray) -> float:
    d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()))


@pytest.mark.parametrize("seed", range(12))
def test_diameters_equal_brute_force_on_irregular_blobs(seed: int) -> None:
    """Irregular (non-convex, holey) blobs: long axis and 3D diameter equal the brute-force maximum exactly."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    spacing = (float(rng.uniform(0.5, 5)), float(rng.uniform(0.4, 1.2)), float(rng.uniform(0.4, 1.2)))
    field = ndimage.gaussian_filter(rng.normal(size=(9, 22, 22)), 1.5)
    mask = field > np.quantile(field, 0.75)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    biggest = 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, n + 1))))
    blob = labels == biggest
    g = _geometry(blob.shape, spacing)
    (lesion,) = measure_scan(Volume(blob.astype(np.uint8) * 2, g)).lesions
    assert lesion.max_diameter_3d_mm == pytest.approx(
        _brute_force_diameter(_corner_points(blob, spacing)), rel=1e-12
    )
    in_plane = max(
        _brute_force_diameter(_corner_points(blob[z : z + 1], (0.0, spacing[1], spacing[2])))
        for z in range(blob.shape[0])
        if blob[z].any()
    )
    assert lesion.long_axis_mm == pytest.approx(in_plane, rel=1e-12)
