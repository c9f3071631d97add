"""A PNG overlay of a label map on one slice of its image, for checking a segmentation by eye."""

from __future__ import annotations

import io
import os

import numpy as np
from numpy.typing import NDArray

from hepavol._atomic import write_bytes_atomic
from hepavol.errors import InputError
from hepavol.volume import Volume

#: Contour colours: liver (label 1) green, lesions cycle through these.
LIVER_COLOUR = "#33cc33"
LESION_COLOURS = ("#ff3030", "#ffb000", "#30a0ff", "#ff40ff", "#00e0e0", "#ffff40")


def render_preview(image: Volume, labels: NDArray[np.integer], *, slice_index: int, title: str = "") -> bytes:
    """PNG bytes of slice ``slice_index`` of ``image`` (grey, 1-99 percentile window) with label contours.

    Parameters
    ----------
    image : Volume
        The image.
    labels : ndarray of int, shape = image shape
        Label map on the image grid (1 liver, 2.. lesions).
    slice_index : int
        Index along the slice axis (axis 0) to show.
    title : str
        Text above the image.

    Raises
    ------
    InputError
        If the slice index is outside the image or the label map has another shape.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    arr = np.asarray(image.array)
    if labels.shape != arr.shape:
        raise InputError(f"The label map has shape {labels.shape} but the image has {arr.shape}.")
    if not 0 <= slice_index < arr.shape[0]:
        raise InputError(f"Slice {slice_index} is outside the image (0..{arr.shape[0] - 1}).")
    sl = arr[slice_index].astype(float)
    lo, hi = np.percentile(sl, [1, 99])
    sy, sx = image.geometry.spacing_mm[1:]
    height, width = sl.shape[0] * sy, sl.shape[1] * sx
    fig = Figure(figsize=(6, 6 * height / max(width, 1e-9) + 0.4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.94))
    ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, extent=(0, width, height, 0))
    lab = labels[slice_index]
    for value in np.unique(lab[lab > 0]):
        colour = LIVER_COLOUR if value == 1 else LESION_COLOURS[(int(value) - 2) % len(LESION_COLOURS)]
        yy = (np.arange(lab.shape[0]) + 0.5) * sy
        xx = (np.arange(lab.shape[1]) + 0.5) * sx
        ax.contour(xx, yy, (lab == value).astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
    ax.set_axis_off()
    fig.suptitle(title or f"slice {slice_index}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_preview(
    image: Volume,
    labels: NDArray[np.integer],
    path: str | os.PathLike[str],
    *,
    slice_index: int,
    title: str = "",
) -> None:
    """Write :func:`render_preview` to ``path`` atomically."""
    write_bytes_atomic(path, render_preview(image, labels, slice_index=slice_index, title=title))
