"""The rigid registration recovers a known pose of an asymmetric liver-like shape (issue 20's own optimiser).

Reference: the transform the follow-up was made with (analytic shape evaluated at the inverse-moved points), and
SimpleITK's Euler3DTransform for the angle convention (``Rz · Rx · Ry``, ITK's ComputeZYX off).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepavol.errors import InputError
from hepavol.followup._rigid_fit import euler_matrix
from hepavol.followup.registration import prepare_baseline, register_to_baseline
from hepavol.geometry import Geometry
from hepavol.volume import Volume

ANGLES_DEG = (6.0, -5.0, 8.0)  # about L, P, S: larger than the simulator's poses (≤ 4°)
TRANSLATION_MM = (22.0, -14.0, 9.0)
CENTRE_MM = (10.0, -5.0, 40.0)


def _shape(points: np.ndarray) -> np.ndarray:
    """A right lobe (big ellipsoid) with a left lobe (smaller, off-centre): no symmetry a fit could confuse."""
    right = np.sum(((points - np.array([-40.0, 0.0, 0.0])) / np.array([70.0, 55.0, 60.0])) ** 2, axis=-1) <= 1
    left = np.sum(((points - np.array([45.0, -20.0, 25.0])) / np.array([45.0, 35.0, 30.0])) ** 2, axis=-1) <= 1
    return right | left


def _mask(geometry: Geometry, body_to_scan: np.ndarray) -> Volume:
    idx = np.stack(np.indices(geometry.shape), axis=-1).reshape(-1, 3)
    lps = geometry.index_to_lps(idx)
    inv = np.linalg.inv(body_to_scan)
    body = lps @ inv[:3, :3].T + inv[:3, 3]
    return Volume(_shape(body).reshape(geometry.shape), geometry)


def _truth() -> np.ndarray:
    t = sitk.Euler3DTransform()
    t.SetCenter(CENTRE_MM)
    t.SetRotation(*np.radians(ANGLES_DEG))
    t.SetTranslation(TRANSLATION_MM)
    m = np.eye(4)
    a = np.array(t.GetMatrix()).reshape(3, 3)
    m[:3, :3] = a
    m[:3, 3] = np.array(CENTRE_MM) + np.array(TRANSLATION_MM) - a @ np.array(CENTRE_MM)
    return m


def test_euler_matrix_is_itks() -> None:
    t = sitk.Euler3DTransform()
    t.SetRotation(0.3, -0.2, 0.5)
    np.testing.assert_allclose(
        euler_matrix(np.array([0.3, -0.2, 0.5])), np.reshape(t.GetMatrix(), (3, 3)), atol=1e-12
    )


def test_a_known_pose_is_recovered_on_anisotropic_grids() -> None:
    base_geo = Geometry(
        shape=(70, 110, 120),
        spacing_mm=(3.0, 1.6, 1.6),
        origin_lps_mm=(-130.0, -100.0, -90.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    )
    # The follow-up grid is shifted and has other voxels (another scanner, another table position).
    fu_geo = Geometry(
        shape=(52, 100, 100),
        spacing_mm=(4.0, 2.0, 2.0),
        origin_lps_mm=(-110.0, -110.0, -75.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    )
    truth = _truth()
    base = _mask(base_geo, np.eye(4))
    fu = _mask(fu_geo, truth)
    reg = register_to_baseline(base, fu)
    pts = base_geo.index_to_lps(np.argwhere(base.array)[::37])
    error = np.linalg.norm(reg.to_followup(pts) - (pts @ truth[:3, :3].T + truth[:3, 3]), axis=1)
    assert error.mean() < 1.0, error.mean()  # mm; voxels are 1.6-4 mm
    assert error.max() < 2.0, error.max()
    assert reg.dice_before < 0.8  # the pose moves the liver by ~28 mm and ~11°
    assert reg.dice_after > 0.95
    assert reg.warnings == ()
    # the baseline prepared once for several follow-ups (what run_followup does) gives the same registration
    prepared = prepare_baseline(base)
    assert register_to_baseline(prepared, fu) == reg
    with pytest.raises(InputError, match=r"prepared baseline was made for a 4.0 mm work grid, not 3.0 mm"):
        register_to_baseline(prepared, fu, work_spacing_mm=3.0)


def test_an_empty_mask_is_a_clear_error() -> None:
    geo = Geometry(
        shape=(10, 10, 10),
        spacing_mm=(1.0, 1.0, 1.0),
        origin_lps_mm=(0.0, 0.0, 0.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    )
    empty = Volume(np.zeros(geo.shape, bool), geo)
    with pytest.raises(InputError, match=r"baseline liver mask .*is empty"):
        register_to_baseline(empty, empty)
