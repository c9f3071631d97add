"""The follow-up works on crops (issue 20); each crop must give what the whole grid gives.

References come from outside the cropped code paths: scipy's ``ndimage.label`` numbered by size then first voxel
(measure_scan's documented order), SimpleITK's nearest-neighbour resampling of the whole volume, and SimpleITK's
moments (CenteredTransformInitializer) for the centre of mass.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepavol.followup.pipeline import _on_baseline, _voxel_sets
from hepavol.followup.registration import Registration, _prepare, mask_box
from hepavol.geometry import Geometry
from hepavol.measurement import _measure_scan
from hepavol.volume import Volume


def _geometry(shape: tuple[int, int, int], origin: tuple[float, float, float], angle_deg: float) -> Geometry:
    a = np.radians(angle_deg)
    d = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    return Geometry(
        shape=shape,
        spacing_mm=(2.5, 0.8, 0.9),
        origin_lps_mm=origin,
        direction=tuple(tuple(float(v) for v in row) for row in d),  # type: ignore[arg-type]
    )


def _labels(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    labels[4:-4, 10:-10, 12:-12] = 1
    z, y, x = np.indices(shape)
    for _ in range(7):
        c = rng.uniform([5, 15, 15], np.array(shape) - [5, 15, 15])
        r = rng.uniform(2, 7)
        labels[((z - c[0]) * 2.5) ** 2 + ((y - c[1]) * 0.8) ** 2 + ((x - c[2]) * 0.9) ** 2 < (r * 2.2) ** 2] = 2
    return labels


def test_lesion_map_crop_numbers_lesions_as_scipy_labels_sorted() -> None:
    shape = (24, 60, 64)
    labels = _labels(shape, 3)
    seg = Volume(labels, _geometry(shape, (0.0, 0.0, 0.0), 0.0))
    scan, crop = _measure_scan(seg)
    assert crop is not None
    full = np.zeros(shape, np.int32)
    full[crop.box] = crop.array
    ref, n = ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))
    first = [int(np.flatnonzero(ref.ravel() == k)[0]) for k in range(1, n + 1)]
    counts = [int(np.count_nonzero(ref == k)) for k in range(1, n + 1)]
    order = sorted(range(n), key=lambda k: (-counts[k], first[k]))  # largest first, then first voxel (C order)
    expected = np.zeros(shape, np.int32)
    for number, k in enumerate(order, start=1):
        expected[ref == k + 1] = number
    assert np.array_equal(full, expected)
    assert [les.voxel_count for les in scan.lesions] == [counts[k] for k in order]


def test_crop_resampling_equals_whole_grid_resampling() -> None:
    shape_b, shape_f = (24, 60, 64), (26, 58, 66)
    base = _geometry(shape_b, (0.0, 0.0, 0.0), 0.0)
    fu = _geometry(shape_f, (3.1, -4.3, 2.2), 3.0)
    labels = _labels(shape_f, 5)
    seg = Volume(labels, fu)
    scan, crop = _measure_scan(seg)
    assert crop is not None
    full = np.zeros(shape_f, np.int32)
    full[crop.box] = crop.array
    t = sitk.Euler3DTransform()
    t.SetCenter((30.0, 25.0, 10.0))
    t.SetRotation(0.02, -0.03, 0.05)
    t.SetTranslation((2.3, -1.7, 4.1))
    m = np.eye(4)
    a = np.array(t.GetMatrix()).reshape(3, 3)
    c = np.array(t.GetCenter())
    m[:3, :3] = a
    m[:3, 3] = c + np.array(t.GetTranslation()) - a @ c
    reg = Registration(
        kind="rigid",
        matrix=tuple(tuple(float(v) for v in row) for row in m),
        rotation_deg=(0.0, 0.0, 0.0),
        translation_mm=(0.0, 0.0, 0.0),
        dice_before=0.0,
        dice_after=0.0,
    )
    ref_img = Volume(np.zeros(shape_b, np.uint8), base).to_sitk()
    whole = sitk.GetArrayFromImage(
        sitk.Resample(seg.with_array(full).to_sitk(), ref_img, reg.sitk_transform(), sitk.sitkNearestNeighbor, 0)
    )
    moved = _on_baseline(crop, fu, base, reg)
    assert moved is not None
    n = len(scan.lesions)
    got = _voxel_sets(moved[0], n, moved[1], shape_b)
    want = _voxel_sets(whole, n, tuple(slice(0, k) for k in shape_b), shape_b)  # type: ignore[arg-type]
    assert sum(v.size for v in want) > 0
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_centre_of_mass_matches_itk_moments() -> None:
    shape = (24, 60, 64)
    g = _geometry(shape, (3.0, -2.0, 7.0), 4.0)
    mask = Volume(_labels(shape, 9) > 0, g)
    prepared = _prepare(mask)
    assert prepared is not None
    img = sitk.Cast(mask.with_array(mask.array.astype(np.uint8)).to_sitk(), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(
        img, img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    np.testing.assert_allclose(prepared.centre_mm, init.GetCenter(), atol=1e-9)
    box = mask_box(np.asarray(mask.array))
    assert box is not None
    idx = np.argwhere(mask.array)
    assert [(s.start, s.stop) for s in box] == [(int(idx[:, k].min()), int(idx[:, k].max()) + 1) for k in range(3)]
