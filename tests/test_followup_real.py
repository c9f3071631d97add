"""A real CT moved by a known rigid transform must track onto itself, and registration must find the transform.

Data: TotalSegmentator example CT (tests/data/totalsegmentator/example_ct_sm.nii.gz, CC BY 4.0, Wasserthal et al.,
Radiology: AI 2023) with its liver (label 5, cut by the field of view). Three lesions (balls of radius 12, 9 and 7
mm, 40 HU below the liver) are painted at the deepest points of the liver.

Baseline: the scan cropped by 3 slices and 6 rows/columns on each side. Follow-up: the whole scan moved by a known
rotation and translation (the patient lying differently) and resampled onto a grid that followed the patient, as
a scanner centred on the patient would; its field of view lies inside the original scan, so every voxel is real
anatomy (a zero-filled border would create a false liver surface). Truth: nothing changed but the position, so
every lesion keeps its identity, RECIST and volumetric responses are SD, and the transform is the known one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hepavol.followup import FollowUpResult, run_followup
from hepavol.geometry import Geometry
from hepavol.io import read_image, read_segmentation, write_image
from hepavol.volume import Volume

DATA = Path(__file__).parent / "data" / "totalsegmentator"
ANGLES_DEG = (2.0, -1.5, 2.5)  # about L, P, S (ITK Euler3D)
TRANSLATION_MM = (30.0, -25.0, 12.0)
CROP = (3, 6, 6)


def _paint(image: Volume, seg: Volume) -> tuple[Volume, Volume]:
    from scipy import ndimage

    liver = seg.array == 5
    depth = ndimage.distance_transform_edt(liver, sampling=seg.geometry.spacing_mm)
    labels = np.where(liver, 1, 0).astype(np.uint8)
    hu = image.array.astype(np.int16).copy()
    liver_hu = float(np.median(hu[liver]))
    lps = seg.geometry.index_to_lps(np.stack(np.indices(seg.shape), axis=-1).reshape(-1, 3)).reshape(*seg.shape, 3)
    centres: list[np.ndarray] = []
    index = np.indices(seg.shape)
    for radius in (12.0, 9.0, 7.0):
        allowed = depth >= radius + 3
        # The ball and 2 voxels around it stay inside the cropped baseline's field of view.
        for axis, (n, crop, spacing) in enumerate(zip(seg.shape, CROP, seg.geometry.spacing_mm)):
            margin = crop + math.ceil(radius / spacing) + 2
            allowed &= (index[axis] >= margin) & (index[axis] < n - margin)
        for c in centres:
            allowed &= np.linalg.norm(lps - c, axis=-1) > 35.0
        pick = np.unravel_index(np.argmax(np.where(allowed, depth, 0)), seg.shape)
        centre = lps[pick]
        centres.append(centre)
        ball = np.linalg.norm(lps - centre, axis=-1) <= radius
        labels[ball] = 2
        hu[ball] = int(liver_hu - 40)
    return image.with_array(hu), seg.with_array(labels)


def _crop(volume: Volume) -> Volume:
    g = volume.geometry
    cz, cy, cx = CROP
    inner = Geometry(
        shape=(g.shape[0] - 2 * cz, g.shape[1] - 2 * cy, g.shape[2] - 2 * cx),
        spacing_mm=g.spacing_mm,
        origin_lps_mm=tuple(float(v) for v in g.index_to_lps(np.array(CROP, dtype=float))),  # type: ignore[arg-type]
        direction=g.direction,
    )
    return Volume(np.ascontiguousarray(volume.array[cz:-cz, cy:-cy, cx:-cx]), inner)


def _truth_transform(baseline: Geometry) -> sitk.Euler3DTransform:
    q = sitk.Euler3DTransform()
    q.SetCenter(tuple(float(v) for v in baseline.index_to_lps(np.array(baseline.shape) / 2.0)))
    q.SetRotation(*(math.radians(a) for a in ANGLES_DEG))
    q.SetTranslation(TRANSLATION_MM)
    return q


def _move(volume: Volume, grid: Geometry, q: sitk.Transform, *, nearest: bool) -> Volume:
    ref = Volume(np.zeros(grid.shape, np.uint8), grid).to_sitk()
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    moved = sitk.Resample(volume.to_sitk(), ref, q.GetInverse(), interp, 0)
    return Volume.from_sitk(moved)


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> tuple[FollowUpResult, Volume, np.ndarray]:
    image = read_image(DATA / "example_ct_sm.nii.gz")
    seg = read_segmentation(DATA / "example_seg.nii.gz", reference=image.geometry)
    image, labels = _paint(image, seg)
    base_image, base_labels = _crop(image), _crop(labels)
    q = _truth_transform(base_image.geometry)
    g = base_image.geometry
    follow_grid = Geometry(
        shape=g.shape,
        spacing_mm=g.spacing_mm,
        origin_lps_mm=tuple(float(a + b) for a, b in zip(g.origin_lps_mm, TRANSLATION_MM)),  # type: ignore[arg-type]
        direction=g.direction,
    )
    fu_image = _move(image, follow_grid, q, nearest=False)
    fu_labels = _move(labels, follow_grid, q, nearest=True)
    folder = tmp_path_factory.mktemp("real")
    for name, vol in (("b_img", base_image), ("b_seg", base_labels), ("f_img", fu_image), ("f_seg", fu_labels)):
        write_image(vol, folder / f"{name}.nii.gz")
    manifest = folder / "manifest.csv"
    manifest.write_text(
        "date,image,seg\n2024-02-01,b_img.nii.gz,b_seg.nii.gz\n2024-04-01,f_img.nii.gz,f_seg.nii.gz\n"
    )
    m = np.eye(4)
    m[:3, :3] = np.array(q.GetMatrix()).reshape(3, 3)
    c = np.array(q.GetCenter())
    m[:3, 3] = c + np.array(q.GetTranslation()) - m[:3, :3] @ c
    return run_followup(manifest), base_labels, m


def test_real_scan_tracks_onto_itself(moved: tuple[FollowUpResult, Volume, np.ndarray]) -> None:
    result, _, _ = moved
    assert [t.keys for t in result.tracking.tracks] == [(("L1",), ("L1",)), (("L2",), ("L2",)), (("L3",), ("L3",))]
    assert result.tracking.events == ()
    assert result.targets == ("L1", "L2")
    tp = result.timepoints[1]
    assert tp.overall_response == "SD"
    assert tp.volumetric_response == "SD"
    assert tp.volume_change_from_baseline_percent is not None
    assert abs(tp.volume_change_from_baseline_percent) < 10.0  # nearest-neighbour resampling of the masks
    for lesion in result.lesions:
        before, after = (p.centroid_mm for p in lesion.points)
        assert before is not None
        assert after is not None
        assert np.linalg.norm(np.subtract(before, after)) < 1.5  # baseline frame; voxels are 3 mm


def test_registration_recovers_the_known_transform(moved: tuple[FollowUpResult, Volume, np.ndarray]) -> None:
    result, base_labels, truth = moved
    reg = result.timepoints[1].registration
    pts = base_labels.geometry.index_to_lps(np.argwhere(base_labels.array > 0)[::10])
    error = np.linalg.norm(reg.to_followup(pts) - (pts @ truth[:3, :3].T + truth[:3, 3]), axis=1)
    assert error.mean() < 1.0  # mm, over the liver
    assert error.max() < 2.0
    np.testing.assert_allclose(reg.translation_mm, truth[:3, 3], atol=2.0)
    # Euler3D angles of the same (ZXY) convention as the truth transform
    np.testing.assert_allclose(reg.rotation_deg, ANGLES_DEG, atol=0.5)
    assert reg.dice_after > 0.95
    assert reg.dice_before < 0.7  # the scanner grid followed the patient only in part
