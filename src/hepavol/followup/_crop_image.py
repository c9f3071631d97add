"""A lesion's axial crop as an RGB picture: the slice windowed, the outline and the RECIST axes drawn on it.

Drawn with NumPy at the output's resolution (nearest-neighbour pixels, one per output pixel) instead of a
Matplotlib figure per crop: a figure, its axes and its PNG cost about 0.1 s each, and a 10-scan report has 20 of
them. The picture is in radiological display: the patient's right on the left, anterior at the top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["LONG_AXIS_RGB", "OUTLINE_RGB", "SHORT_AXIS_RGB", "crop_picture"]

OUTLINE_RGB = (0, 200, 255)
LONG_AXIS_RGB = (255, 48, 48)
SHORT_AXIS_RGB = (255, 208, 0)


def _line(canvas: NDArray[np.uint8], p: NDArray[np.float64], q: NDArray[np.float64], rgb: Sequence[int]) -> None:
    """A 2-pixel-wide segment from ``p`` to ``q`` (row, column in output pixels), clipped to the canvas."""
    n = int(np.ceil(np.max(np.abs(q - p)))) * 2 + 2
    t = np.linspace(0.0, 1.0, n)[:, None]
    points = p[None, :] * (1.0 - t) + q[None, :] * t
    h, w = canvas.shape[:2]
    for dr, dc in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0), (0.0, -0.5)):
        r = np.floor(points[:, 0] + dr).astype(int)
        c = np.floor(points[:, 1] + dc).astype(int)
        keep = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        canvas[r[keep], c[keep]] = rgb


def crop_picture(
    image: NDArray[np.floating],
    mask: NDArray[np.bool_],
    *,
    origin_index: tuple[int, int],
    spacing_mm: tuple[float, float],
    flip_rows: bool,
    flip_columns: bool,
    axes: Sequence[tuple[NDArray[np.float64], Sequence[int]]] = (),
    size_px: int = 240,
) -> NDArray[np.uint8]:
    """The crop as an (H, W, 3) uint8 picture whose larger side is ``size_px`` and whose pixels are square in mm.

    ``image``/``mask``: the crop of the axial slice (rows, columns of the stored grid) from ``origin_index``
    (its first row and column in the slice); ``spacing_mm``: row and column spacing. ``axes``: segments as
    (2×2 array of stored (row, column) indices of the slice, RGB). ``flip_rows``/``flip_columns``: mirror the
    stored rows/columns so that anterior is up and the patient's right on the left (radiological display).
    Grey levels: 1st to 99th percentile of the crop.
    """
    h, w = image.shape
    sy, sx = spacing_mm
    scale = size_px / max(h * sy, w * sx, 1e-9)  # output pixels per mm
    out_h, out_w = max(round(h * sy * scale), 1), max(round(w * sx * scale), 1)
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(int), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(int), w - 1)
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    grey = np.clip((image - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    grey8 = np.round(grey * 255.0).astype(np.uint8)[np.ix_(rows, cols)]
    canvas = np.repeat(grey8[:, :, None], 3, axis=2)
    big = mask[np.ix_(rows, cols)]
    if big.any():
        canvas[big & ~ndimage.binary_erosion(big, border_value=0)] = OUTLINE_RGB
    for segment, rgb in axes:
        seg = np.asarray(segment, dtype=float) - np.asarray(origin_index, dtype=float)[None, :]
        # stored index (centre of voxel i at i) -> output pixel coordinate (centre of pixel k at k + 0.5)
        px = np.column_stack(((seg[:, 0] + 0.5) * out_h / h, (seg[:, 1] + 0.5) * out_w / w))
        _line(canvas, px[0], px[1], rgb)
    if flip_rows:
        canvas = canvas[::-1]
    if flip_columns:
        canvas = canvas[:, ::-1]
    return np.ascontiguousarray(canvas)
