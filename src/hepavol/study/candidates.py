"""Lesion candidates of ``hepavol study segment``: regions of the liver that look like the patient's lesions but are
not segmented, listed for the reader with a confidence, never added to a proposal on their own.

The model is the patient's lesions on this scan (the ones grown from seeds and carried forward): their median
intensity on a lightly smoothed image, and which side of the parenchyma they are on (darker or brighter). A
candidate is a 26-connected region of liver voxels (the liver eroded by ``LIVER_MARGIN_MM``, so its boundary with
fat and vessels outside is not one) that are on the lesions' side of the parenchyma by at least ``EDGE_FRACTION``
of their contrast and by ``MIN_SIGMA`` noise sigmas, at least ``MIN_VOLUME_ML`` large, away from every known lesion
(dilated by ``CLEARANCE_MM``). Its **confidence** (0-1) is the product of how lesion-like its median is (its
contrast over the lesions', capped at 1) and how compact it is (its volume over the volume of the sphere of its
largest extent, so a thin vessel or a partial-volume rim scores low), and the candidates of a scan are listed best
first, at most ``MAX_CANDIDATES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["CLEARANCE_MM", "EDGE_FRACTION", "MAX_CANDIDATES", "MIN_SIGMA", "MIN_VOLUME_ML", "find_candidates"]

EDGE_FRACTION = 0.5
MIN_SIGMA = 3.0
MIN_VOLUME_ML = 0.3
CLEARANCE_MM = 5.0
LIVER_MARGIN_MM = 5.0
MAX_CANDIDATES = 10
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def _ball(radius_mm: float, spacing: Sequence[float]) -> NDArray[np.bool_]:
    r = [max(int(radius_mm // s), 0) for s in spacing]
    zz, yy, xx = np.mgrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    return np.asarray(
        (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= radius_mm**2 + 1e-9
    )


def find_candidates(
    image: Any, liver: NDArray[np.bool_], lesions: Sequence[NDArray[np.bool_]]
) -> list[dict[str, Any]]:
    """The candidates of one scan (module docstring), best first; none without a lesion to model them on."""
    known = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in lesions]) if lesions else None
    if known is None or not known.any() or not liver.any():
        return []
    g = image.geometry
    spacing = g.spacing_mm
    voxel_ml = g.voxel_volume_mm3 / 1000.0
    smooth = ndimage.gaussian_filter(
        np.asarray(image.array, dtype=np.float64), [0.5 * min(spacing) / v for v in spacing]
    )
    inner = ndimage.binary_erosion(liver, structure=_ball(LIVER_MARGIN_MM, spacing))
    parenchyma = smooth[inner & ~ndimage.binary_dilation(known, structure=_ball(CLEARANCE_MM, spacing))]
    if parenchyma.size < 100:
        return []
    centre = float(np.median(parenchyma))
    sigma = 1.4826 * float(np.median(np.abs(parenchyma - centre))) or 1e-6
    signed = smooth - centre
    level = float(np.median(signed[known]))
    side = 1.0 if level >= 0 else -1.0
    contrast = abs(level)
    if contrast < MIN_SIGMA * sigma:
        return []
    like = (side * signed >= max(EDGE_FRACTION * contrast, MIN_SIGMA * sigma)) & inner
    like &= ~ndimage.binary_dilation(known, structure=_ball(CLEARANCE_MM, spacing))
    labelled, n = ndimage.label(like, structure=_STRUCTURE)
    if n == 0:
        return []
    found = []
    sizes = np.bincount(labelled.reshape(-1), minlength=n + 1)
    for k in np.nonzero(sizes[1:] * voxel_ml >= MIN_VOLUME_ML)[0] + 1:
        region = labelled == k
        points = np.argwhere(region)
        mm = points * np.asarray(spacing)
        extent = float(np.linalg.norm(mm.max(axis=0) - mm.min(axis=0))) + min(spacing)
        volume_ml = float(region.sum()) * voxel_ml
        compact = min(volume_ml * 1000.0 / (np.pi / 6.0 * extent**3), 1.0)
        lesion_like = min(abs(float(np.median(signed[region]))) / contrast, 1.0)
        found.append(
            {
                "centre_lps_mm": [round(float(v), 2) for v in g.index_to_lps(points.mean(axis=0))],
                "volume_ml": round(volume_ml, 3),
                "confidence": round(lesion_like * compact, 3),
            }
        )
    found.sort(key=lambda c: -c["confidence"])
    return found[:MAX_CANDIDATES]
