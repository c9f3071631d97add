"""Helpers shared by the segmentation tests and ``benchmarks/segment.py``.

The six DeepLesion lesions come as FLARE 2025 "RECIST to 3D" npz files (``imgs`` uint8 windowed 0-255, axes
z, y, x; ``gts`` 0/1 mask; ``spacing``, ``origin`` and ``direction`` in ITK order x, y, z). Source: NIH DeepLesion
(Yan et al., J Med Imaging 2018), distributed in the MedSAM2 repositories (Apache-2.0); see tests/data/README.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from hepavol.volume import Volume

DATA = Path(__file__).parent / "data"
NPZ_DIR = DATA / "deeplesion_flare25_recist" / "npz"
HU_IMAGE = DATA / "deeplesion_flare25_recist" / "000015_01_01_103-115_ct_hu.nii.gz"
HU_MASK = DATA / "deeplesion_flare25_recist" / "000015_01_01_103-115_lesion_mask_from_npz.nii.gz"
TS_DIR = DATA / "totalsegmentator"


def npz_cases() -> list[Path]:
    """The six npz files, sorted by name."""
    return sorted(NPZ_DIR.glob("*.npz"))


def load_npz(path: Path) -> tuple[Volume, Volume]:
    """(image, mask) volumes of one FLARE npz case, with its geometry (ITK x, y, z order in the file)."""
    with np.load(path) as d:
        out = []
        for key in ("imgs", "gts"):
            img = sitk.GetImageFromArray(np.ascontiguousarray(d[key]))
            img.SetSpacing(tuple(float(v) for v in d["spacing"]))
            img.SetOrigin(tuple(float(v) for v in d["origin"]))
            img.SetDirection(tuple(float(v) for v in d["direction"]))
            out.append(Volume.from_sitk(img, source=f"{path.name}:{key}"))
    return out[0], out[1]


def load_nifti(path: Path) -> Volume:
    """A NIfTI file as a Volume (SimpleITK reads NIfTI into LPS)."""
    return Volume.from_sitk(sitk.ReadImage(str(path)), source=str(path))


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Dice similarity coefficient of two boolean masks (1.0 when both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def centroid_lps(mask: Volume) -> NDArray[np.float64]:
    """LPS mm of the centroid of a mask's foreground voxels."""
    idx = np.argwhere(np.asarray(mask.array) > 0).mean(axis=0)
    return mask.geometry.index_to_lps(idx)


def recist_line_lps(mask: Volume) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """End points (LPS mm) of the longest in-plane diameter of the mask on its largest slice.

    This is how the FLARE 2025 RECIST task derives its lines from the 3D masks: the slice with the largest lesion
    area, then the longest distance between two foreground voxel centres on it (brute force over boundary voxels).
    """
    arr = np.asarray(mask.array) > 0
    z = int(np.argmax(arr.sum(axis=(1, 2))))
    sl = arr[z]
    from scipy import ndimage

    boundary = sl & ~ndimage.binary_erosion(sl)
    rc = np.argwhere(boundary).astype(float)
    sp = np.array(mask.geometry.spacing_mm[1:])
    pts = rc * sp
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    a = np.array([z, *rc[i]])
    b = np.array([z, *rc[j]])
    return mask.geometry.index_to_lps(a), mask.geometry.index_to_lps(b)


def leak_clicks(
    result: NDArray[np.bool_], truth: NDArray[np.bool_], mask: Volume, *, every_slice: bool
) -> list[NDArray[np.float64]]:
    """Exclude points (LPS mm) a reader would click in tissue a segmentation leaked into: where the false positive
    region of a slice covers >= 10 % of the lesion's area on it and is >= 2 mm deep, its deepest point (farthest
    from the region's edge). One click on the slice with most false positives, or one on every such slice."""
    from scipy import ndimage

    fp = result & ~truth
    spacing = mask.geometry.spacing_mm[1:]
    slices = range(fp.shape[0]) if every_slice else [int(np.argmax(fp.sum(axis=(1, 2))))]
    clicks = []
    for z in slices:
        if fp[z].sum() < 0.1 * max(int(truth[z].sum()), 1):
            continue
        depth = ndimage.distance_transform_edt(fp[z], sampling=spacing)
        if depth.max() < 2.0:
            continue
        r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
        clicks.append(mask.geometry.index_to_lps(np.array([z, r, c], dtype=float)))
    return clicks


def next_correction(
    result: NDArray[np.bool_], truth: NDArray[np.bool_], spacing_mm: tuple[float, float, float]
) -> tuple[str, tuple[int, int, int]] | None:
    """The standard simulated user of interactive segmentation (as in nnInteractive and SAM-Med3D evaluations):
    the next click goes to the voxel deepest inside (largest distance to its border, in mm) the largest 3D
    error region (26-connected); ``"include"`` when that region is missed lesion, ``"exclude"`` when it is a leak.
    None when the result equals the truth."""
    from scipy import ndimage

    result = np.asarray(result, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    best: tuple[int, str, NDArray[np.bool_]] | None = None
    for kind, err in (("include", truth & ~result), ("exclude", result & ~truth)):
        if not err.any():
            continue
        labels, _ = ndimage.label(err, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), kind, labels == k + 1)
    if best is None:
        return None
    region = best[2]
    box = tuple(slice(max(int(a.min()) - 1, 0), int(a.max()) + 2) for a in np.nonzero(region))
    depth = ndimage.distance_transform_edt(np.pad(region[box], 1), sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
    local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    idx = tuple(int(local[a] + box[a].start) for a in range(3))
    return best[1], (idx[0], idx[1], idx[2])
