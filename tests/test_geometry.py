"""Geometry core: index <-> LPS mapping, voxel volume, grid comparison, SimpleITK round trip."""

from __future__ import annotations

import numpy as np
import pytest

from hepavol import Geometry, GeometryError, Volume
from hepavol.geometry import check_same_grid, identity_direction


def _rotated_geometry() -> Geometry:
    # Axial slices, in-plane rotation of 30° about S, columns flipped (R->L reversed): a non-trivial frame.
    a = np.deg2rad(30.0)
    col = np.array([np.cos(a), np.sin(a), 0.0]) * -1.0
    row = np.array([-np.sin(a), np.cos(a), 0.0])
    normal = np.cross(col, row)
    d = np.stack([normal, row, col], axis=1)
    return Geometry(shape=(5, 6, 7), spacing_mm=(2.5, 0.7, 0.8), origin_lps_mm=(10.0, -20.0, 30.0), direction=d)


def test_voxel_volume_cube() -> None:
    """10x10x10 voxels at (2.5, 0.7, 0.7) mm is 1225 mm³ (STYLE.md 2.6 hand calculation)."""
    g = Geometry(
        shape=(10, 10, 10),
        spacing_mm=(2.5, 0.7, 0.7),
        origin_lps_mm=(0, 0, 0),
        direction=identity_direction(),
    )
    assert g.voxel_volume_mm3 * 1000 == pytest.approx(1225.0)


def test_index_to_lps_round_trip_and_hand_values() -> None:
    g = _rotated_geometry()
    idx = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [4, 5, 6]], dtype=float)
    pts = g.index_to_lps(idx)
    np.testing.assert_allclose(pts[0], (10.0, -20.0, 30.0))
    # One step along the column axis moves 0.8 mm along the column direction cosine.
    np.testing.assert_allclose(np.linalg.norm(pts[3] - pts[0]), 0.8)
    np.testing.assert_allclose(np.linalg.norm(pts[1] - pts[0]), 2.5)
    np.testing.assert_allclose(g.lps_to_index(pts), idx, atol=1e-12)


def test_affine_round_trip() -> None:
    g = _rotated_geometry()
    g2 = Geometry.from_affine(g.affine, g.shape)
    assert g.differences(g2) == []


def test_identity_orientation_code_is_lps() -> None:
    g = Geometry(shape=(1, 1, 1), spacing_mm=(1, 1, 1), origin_lps_mm=(0, 0, 0), direction=identity_direction())
    assert g.orientation_code == "LPS"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing_mm": (0.0, 1.0, 1.0)}, r"spacing_mm.*positive.*\(0\.0, 1\.0, 1\.0\)"),
        ({"shape": (0, 2, 2)}, r"shape.*positive.*\(0, 2, 2\)"),
        # Slice axis tilted 20° towards the row axis (as a gantry tilt does): unit columns, not orthogonal.
        ({"direction": ((0, 0, 1), (0.34202014, 1, 0), (0.93969262, 0, 0))}, r"orthogonal.*gantry tilt"),
    ],
)
def test_bad_geometry_messages(kwargs: dict, match: str) -> None:
    base = {
        "shape": (2, 2, 2),
        "spacing_mm": (1.0, 1.0, 1.0),
        "origin_lps_mm": (0, 0, 0),
        "direction": identity_direction(),
    }
    base.update(kwargs)
    with pytest.raises(GeometryError, match=match):
        Geometry(**base)


def test_check_same_grid_prints_both_geometries() -> None:
    g = _rotated_geometry()
    other = Geometry(
        shape=g.shape, spacing_mm=(5.0, 0.7, 0.8), origin_lps_mm=g.origin_lps_mm, direction=g.direction
    )
    with pytest.raises(
        GeometryError,
        match=r"differ in spacing(.|\n)*image: shape(.|\n)*segmentation: shape(.|\n)*--resample-seg",
    ):
        check_same_grid(g, other)


def test_sitk_round_trip_keeps_geometry_and_values() -> None:
    g = _rotated_geometry()
    arr = np.arange(np.prod(g.shape), dtype=np.int16).reshape(g.shape)
    vol = Volume(arr, g)
    back = Volume.from_sitk(vol.to_sitk())
    assert back.geometry.differences(g, atol_mm=1e-9, direction_atol=1e-12) == []
    np.testing.assert_array_equal(back.array, arr)
    # SimpleITK's own index->physical mapping agrees with ours (an independent implementation).
    img = vol.to_sitk()
    for s, r, c in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        np.testing.assert_allclose(
            img.TransformIndexToPhysicalPoint((c, r, s)), g.index_to_lps([s, r, c]), atol=1e-9
        )


def test_volume_is_read_only() -> None:
    g = _rotated_geometry()
    vol = Volume(np.zeros(g.shape, np.uint8), g)
    with pytest.raises(ValueError, match="read-only"):
        vol.array[0, 0, 0] = 1
