"""Liver segmentation (hepavol.segmentation.liver) on the TotalSegmentator example CT and MR.

Reference: label 5 (liver) of the TotalSegmentator example segmentations (Wasserthal et al., Radiology: AI 2023;
Apache-2.0 / CC BY 4.0, see tests/data/README.md). They are model outputs, not manual masks: the overlays were
also checked by eye (benchmarks/segment.py --png writes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _segment_helpers import TS_DIR, dice, load_nifti
from hepavol.errors import InputError
from hepavol.segmentation import segment_liver

LIVER_LABEL = 5  # TotalSegmentator v2 class map: 5 = liver


@pytest.mark.parametrize(
    ("image", "reference", "min_dice"),
    [
        ("example_ct_sm.nii.gz", "example_seg.nii.gz", 0.85),
        ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", 0.80),
    ],
)
def test_liver_automatic_seed(image: str, reference: str, min_dice: float) -> None:
    """Issue 8 targets: Dice >= 0.85 on the CT and >= 0.80 on the MR, no seed given."""
    img = load_nifti(TS_DIR / image)
    ref = np.asarray(load_nifti(TS_DIR / reference).array) == LIVER_LABEL
    result = segment_liver(img)
    assert result.automatic_seed
    assert ref[result.seed_index], "the automatic seed must fall in the reference liver"
    assert dice(result.mask, ref) >= min_dice
    ref_ml = ref.sum() * img.geometry.voxel_volume_mm3 / 1000
    assert result.volume_ml == pytest.approx(ref_ml, rel=0.25)


def test_liver_with_seed_ct() -> None:
    """A click in the right lobe gives the same organ."""
    img = load_nifti(TS_DIR / "example_ct_sm.nii.gz")
    ref = np.asarray(load_nifti(TS_DIR / "example_seg.nii.gz").array) == LIVER_LABEL
    inside = np.argwhere(ref)
    seed_idx = inside[len(inside) // 2]
    result = segment_liver(img, seed_lps_mm=img.geometry.index_to_lps(seed_idx))
    assert not result.automatic_seed
    assert dice(result.mask, ref) >= 0.85


def test_liver_seed_in_air() -> None:
    img = load_nifti(TS_DIR / "example_ct_sm.nii.gz")
    with pytest.raises(InputError, match="outside the body"):
        segment_liver(img, seed_lps_mm=img.geometry.index_to_lps(np.array([10, 1, 1])))


def test_liver_seed_outside_image() -> None:
    img = load_nifti(TS_DIR / "example_ct_sm.nii.gz")
    with pytest.raises(InputError, match=r"liver seed .* lies outside the image"):
        segment_liver(img, seed_lps_mm=(0.0, 0.0, 5000.0))
