"""The report's lesion crops (hepavol.followup._crop_image), drawn with NumPy instead of a Matplotlib figure.

References: the geometry of the drawn disc (a circle of known radius in mm on an anisotropic grid must come out
round, with its width in pixels given by its diameter times the picture's pixels per mm), the exact pixel where a
stored voxel lands (voxel i of n covers output pixels [i·N/n, (i+1)·N/n)), and the radiological convention: the
same patient stored with its columns running toward the patient's right or left, or its rows toward anterior or
posterior, gives the same picture.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hepavol.followup._crop_image import LONG_AXIS_RGB, OUTLINE_RGB, crop_picture


def _disc(shape: tuple[int, int], spacing: tuple[float, float], centre: tuple[float, float], r_mm: float):
    rows, cols = np.indices(shape)
    dist = np.hypot((rows - centre[0]) * spacing[0], (cols - centre[1]) * spacing[1])
    image = np.where(dist < r_mm, 40.0, 120.0) + np.random.default_rng(3).normal(0, 5, shape)
    return image, dist < r_mm


def _colour(picture: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(picture == np.array(rgb, np.uint8), axis=2)


def test_anisotropic_disc_comes_out_round_and_to_scale() -> None:
    # rows 1.4 mm, columns 0.7 mm: a 12 mm radius disc is 17 rows by 34 columns of voxels
    spacing = (1.4, 0.7)
    image, mask = _disc((40, 80), spacing, (19.5, 39.5), 12.0)
    picture = crop_picture(
        image, mask, origin_index=(0, 0), spacing_mm=spacing, flip_rows=False, flip_columns=False
    )
    # the crop is 40 x 1.4 = 56 mm by 80 x 0.7 = 56 mm: square, 240 px a side, 240 / 56 px per mm
    assert picture.shape == (240, 240, 3)
    outline = _colour(picture, OUTLINE_RGB)
    rows, cols = np.nonzero(outline)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    px_per_mm = 240 / 56
    # voxel-quantised disc: each extent within one voxel (1.4 mm rows, 0.7 mm columns) of the 24 mm diameter
    assert abs(height - 24 * px_per_mm) <= 1.4 * px_per_mm
    assert abs(width - 24 * px_per_mm) <= 0.7 * px_per_mm
    assert abs(height - width) <= (1.4 + 0.7) * px_per_mm


def test_outline_is_the_boundary_of_the_mask_and_axes_land_on_their_voxels() -> None:
    spacing = (1.0, 1.0)
    image, mask = _disc((48, 48), spacing, (24.0, 24.0), 10.0)
    segment = np.array([[24.0, 14.0], [24.0, 34.0]])  # stored (row, column) of the long axis, crop origin (4, 2)
    picture = crop_picture(
        image[4:, 2:],
        mask[4:, 2:],
        origin_index=(4, 2),
        spacing_mm=spacing,
        flip_rows=False,
        flip_columns=False,
        axes=[(segment, LONG_AXIS_RGB)],
    )
    h, w = 44, 46  # the crop, 1 mm voxels; 240 px on its larger side
    assert picture.shape[:2] == (round(44 * 240 / 46), 240)
    out_h, out_w = picture.shape[:2]
    # every outline pixel is inside the (upsampled) mask with a neighbour outside it, unless a red line covers it
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(int), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(int), w - 1)
    big = mask[4:, 2:][np.ix_(rows, cols)]
    boundary = big & ~ndimage.binary_erosion(big, border_value=0)
    outline = _colour(picture, OUTLINE_RGB)
    red = _colour(picture, LONG_AXIS_RGB)
    assert outline.sum() > 100
    assert np.array_equal(outline, boundary & ~red)
    # the red segment runs from the centre of voxel (24, 14) to that of (24, 34), crop-relative (20, 12) -> (20, 32)
    # (the line is 2 px wide: half a pixel each side, plus one pixel of rounding)
    r, c = np.nonzero(red)
    assert abs(c.min() - 12.5 * out_w / w) <= 1.5
    assert abs(c.max() - 32.5 * out_w / w) <= 1.5
    assert abs(np.median(r) - 20.5 * out_h / h) <= 1.5


@pytest.mark.parametrize(("flip_rows", "flip_columns"), [(True, False), (False, True), (True, True)])
def test_the_same_patient_stored_mirrored_gives_the_same_picture(flip_rows: bool, flip_columns: bool) -> None:
    spacing = (0.8, 0.8)
    image, mask = _disc((50, 60), spacing, (22.0, 35.0), 9.0)
    segment = np.array([[22.0, 25.0], [22.0, 45.0]])
    reference = crop_picture(
        image,
        mask,
        origin_index=(0, 0),
        spacing_mm=spacing,
        flip_rows=False,
        flip_columns=False,
        axes=[(segment, LONG_AXIS_RGB)],
    )
    # the same voxels stored backwards along the flipped axes (a scan whose direction cosines point the other way)
    sl = (
        slice(None, None, -1) if flip_rows else slice(None),
        slice(None, None, -1) if flip_columns else slice(None),
    )
    stored_segment = segment.copy()
    if flip_rows:
        stored_segment[:, 0] = 49 - stored_segment[:, 0]
    if flip_columns:
        stored_segment[:, 1] = 59 - stored_segment[:, 1]
    mirrored = crop_picture(
        image[sl],
        mask[sl],
        origin_index=(0, 0),
        spacing_mm=spacing,
        flip_rows=flip_rows,
        flip_columns=flip_columns,
        axes=[(stored_segment, LONG_AXIS_RGB)],
    )
    red_a, red_b = _colour(reference, LONG_AXIS_RGB), _colour(mirrored, LONG_AXIS_RGB)
    not_red = ~(red_a | red_b)
    assert np.array_equal(reference[not_red], mirrored[not_red])  # grey levels and outline: identical
    # the 2-pixel line may fall one pixel over where a pixel edge sits exactly on it
    dist = ndimage.distance_transform_edt(~red_a)
    assert dist[red_b].max() <= 1.0
    assert abs(int(red_a.sum()) - int(red_b.sum())) <= 0.1 * red_a.sum()
