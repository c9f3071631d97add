"""The benchmark phantom: a 512×512×300 label map with a large liver (label 1) and 100 lesions (label 2)."""

from __future__ import annotations

import numpy as np

from hepavol.geometry import Geometry, identity_direction
from hepavol.volume import Volume

SHAPE = (300, 512, 512)
SPACING_MM = (1.25, 0.75, 0.75)


def benchmark_phantom(
    *, n_lesions: int = 100, seed: int = 0, liver_fills_fov: bool = False
) -> tuple[Volume, list[dict[str, list[float]]]]:
    """Label map with a liver ellipsoid and ``n_lesions`` ellipsoidal lesions (5–60 mm, lognormal) inside it.

    Returns the volume and the lesions' analytic parameters (centre index, semi-axes in mm).
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    sz, sy, sx = SPACING_MM
    centre = np.array(SHAPE) / 2.0
    if liver_fills_fov:
        labels[:] = 1
        semi = np.array(SHAPE) * SPACING_MM / 2.0
    else:
        semi = np.array([150.0, 120.0, 150.0])  # mm; ~ 11 L box, ~ 5.6 L ellipsoid: a very large liver
        zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
        inside = (
            ((zz - centre[0]) * sz / semi[0]) ** 2
            + ((yy - centre[1]) * sy / semi[1]) ** 2
            + ((xx - centre[2]) * sx / semi[2]) ** 2
        ) <= 1.0
        labels[inside] = 1
    lesions = []
    while len(lesions) < n_lesions:
        d = float(np.clip(rng.lognormal(np.log(15.0), 0.6), 5.0, 60.0))
        axes = d / 2.0 * rng.uniform(0.7, 1.0, size=3)
        c = centre + rng.uniform(-0.6, 0.6, size=3) * semi / SPACING_MM
        r = np.ceil(axes / SPACING_MM).astype(int) + 1
        lo, hi = np.maximum(c.astype(int) - r, 0), np.minimum(c.astype(int) + r + 1, SHAPE)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grids = np.ogrid[box]
        m = sum(((g - ci) * s / a) ** 2 for g, ci, s, a in zip(grids, c, SPACING_MM, axes)) <= 1.0
        guard = tuple(slice(max(b.start - 2, 0), b.stop + 2) for b in box)
        if np.any(labels[guard] == 2):
            continue  # keep lesions apart so that each is one component
        dil = labels[box].copy()
        dil[m] = 2
        labels[box] = dil
        lesions.append({"centre": c.tolist(), "semi_axes_mm": axes.tolist()})
    g = Geometry(shape=SHAPE, spacing_mm=SPACING_MM, origin_lps_mm=(0.0, 0.0, 0.0), direction=identity_direction())
    return Volume(labels, g, "benchmark phantom"), lesions
