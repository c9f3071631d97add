"""Semi-automatic segmentation by classical image analysis (no model weights): lesions and the liver.

- :func:`segment_lesion`: one lesion in 3D from a click or a RECIST line.
- :func:`segment_liver`: the whole liver (tumours included), with or without a seed; CT and MR.
- :func:`compose_label_map`: liver 1 and lesions 2..n as instances in one label map.
- :func:`write_preview`: a PNG overlay of a slice for checking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from hepavol.segmentation.lesion import LesionSegmentation, point_to_index, segment_lesion
from hepavol.segmentation.liver import LiverSegmentation, segment_liver
from hepavol.segmentation.preview import render_preview, write_preview

__all__ = [
    "LesionSegmentation",
    "LiverSegmentation",
    "compose_label_map",
    "point_to_index",
    "render_preview",
    "segment_lesion",
    "segment_liver",
    "write_preview",
]


def compose_label_map(
    shape: tuple[int, int, int],
    *,
    liver: NDArray[np.bool_] | None = None,
    lesions: Sequence[NDArray[np.bool_]] = (),
    base: NDArray[np.integer] | None = None,
) -> NDArray[np.uint16]:
    """Label map with the liver as 1 and each lesion as its own label (2, 3, ... after the largest in ``base``).

    Lesions are painted in order; where two overlap, the voxel stays with the earlier one. The liver never
    overwrites a lesion.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 1, 4), bool); a[0, 0, :2] = True
    >>> b = np.zeros((1, 1, 4), bool); b[0, 0, 1:3] = True
    >>> compose_label_map((1, 1, 4), lesions=[a, b]).tolist()
    [[[2, 2, 3, 0]]]
    """
    out = np.zeros(shape, dtype=np.uint16) if base is None else np.asarray(base, dtype=np.uint16).copy()
    if liver is not None:
        out[liver & (out == 0)] = 1
    start = max(int(out.max()) + 1, 2)
    for i, lesion in enumerate(lesions):
        out[lesion & (out <= 1)] = start + i
    return out
