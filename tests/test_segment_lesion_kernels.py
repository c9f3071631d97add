"""The cropped kernels of ``hepavol.segmentation.lesion`` against the whole-image operations they replace.

References: ``scipy.ndimage`` binary morphology with the same disk, hole filling and labelling, and
``skimage.segmentation.random_walker`` (Grady 2006) on the whole image (independent implementations).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import random_walker

from hepavol.segmentation.lesion import (
    _component_touching,
    _dilate,
    _disk,
    _erode,
    _fill,
    _open,
    _walk_probability,
)


def _blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.8, 3.0)) > 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_morphology_in_boxes_equals_whole_image(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        shape = (int(rng.integers(6, 70)), int(rng.integers(6, 70)))
        mask = _blobs(rng, shape)
        spacing = (float(rng.choice([0.31, 0.75, 1.0])), float(rng.choice([0.31, 0.75, 0.82])))
        radius = float(rng.choice([0.6, 1.5, 2.9, 6.0, 11.3]))  # both the structuring-element and distance paths
        disk = _disk(radius, spacing)
        np.testing.assert_array_equal(_dilate(mask, radius, spacing), ndimage.binary_dilation(mask, disk))
        np.testing.assert_array_equal(_erode(mask, radius, spacing), ndimage.binary_erosion(mask, disk))
        np.testing.assert_array_equal(_open(mask, radius, spacing), ndimage.binary_opening(mask, disk))
        np.testing.assert_array_equal(_fill(mask), ndimage.binary_fill_holes(mask))
        marker = rng.random(shape) < 0.01
        labels, _ = ndimage.label(mask)
        keep = np.setdiff1d(np.unique(labels[marker & mask]), [0])
        np.testing.assert_array_equal(_component_touching(mask, marker), np.isin(labels, keep))


def test_empty_masks_stay_empty() -> None:
    empty = np.zeros((9, 7), dtype=bool)
    for out in (_dilate(empty, 3.0, (1.0, 1.0)), _erode(empty, 3.0, (1.0, 1.0)), _fill(empty)):
        assert out.shape == empty.shape
        assert not out.any()


# skimage warns when the solver's tolerance lets a probability stray a little outside [0, 1] (as in the segmenter)
@pytest.mark.filterwarnings("ignore:The probability range is outside:UserWarning")
@pytest.mark.parametrize("seed", range(4))
def test_random_walk_probability_equals_skimage(seed: int) -> None:
    """A lesion-like disk in noise with markers inside and far outside: the probability of the lesion label on
    the box of the unknown pixels equals skimage's on the whole image (same system, same solver tolerance)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:90, :110]
    inside = (yy - 40) ** 2 + (xx - 55) ** 2 <= 15**2
    data = ndimage.gaussian_filter(np.where(inside, -2.0, 1.0) + rng.normal(0.0, 0.5, inside.shape), 1.0)
    labels = np.zeros(inside.shape, dtype=np.int32)
    labels[(yy - 40) ** 2 + (xx - 55) ** 2 <= 6**2] = 1
    labels[(yy - 40) ** 2 + (xx - 55) ** 2 >= 25**2] = 2
    ours = _walk_probability(data, labels, beta=500.0, tol=1e-6)
    ref = random_walker(data, labels, beta=500.0, mode="cg_j", tol=1e-6, return_full_prob=True)[0]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.array_equal(ours > 0.5, ref > 0.5)
