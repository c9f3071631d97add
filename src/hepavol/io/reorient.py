"""Exact reorientation: permute and flip array axes so a volume's axes follow a reference grid's axes.

Two files can hold the same voxels in different array orders: a NIfTI written by dcm2niix or TotalSegmentator
often stores the rows of a DICOM series bottom-up, so its direction matrix differs from the DICOM one although
every voxel centre is the same point in LPS. Reorienting such a volume is a lossless transpose/flip (no
interpolation); afterwards the two geometries compare equal.
"""

from __future__ import annotations

import numpy as np

from hepavol.geometry import DIRECTION_ATOL, Geometry
from hepavol.volume import Volume

__all__ = ["reorient_like"]


def reorient_like(volume: Volume, reference: Geometry, *, direction_atol: float = DIRECTION_ATOL) -> Volume:
    """Permute and flip the axes of ``volume`` so that they point along the axes of ``reference``.

    Parameters
    ----------
    volume : Volume
        The volume to reorient.
    reference : Geometry
        The grid whose axis directions the result should have.
    direction_atol : float
        Tolerance on the direction cosines for two axes to count as parallel.

    Returns
    -------
    Volume
        The same voxels (same LPS positions) with axes permuted/flipped to match ``reference``'s directions; the
        input itself when the directions are not a signed permutation of each other (e.g. oblique) or already
        match. The geometry's origin moves to the voxel that becomes index (0, 0, 0).

    Examples
    --------
    >>> import numpy as np
    >>> from hepavol.geometry import Geometry, identity_direction
    >>> g = Geometry(shape=(2, 3, 4), spacing_mm=(3.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 0.0),
    ...              direction=identity_direction())
    >>> flipped = Geometry(shape=(2, 3, 4), spacing_mm=(3.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 3.0),
    ...                    direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)))
    >>> v = Volume(np.arange(24).reshape(2, 3, 4), flipped)
    >>> out = reorient_like(v, g)
    >>> out.geometry.differences(g), int(out.array[0, 0, 0]), int(v.array[1, 0, 0])
    ([], 12, 12)
    """
    d_vol = volume.geometry.direction_matrix
    d_ref = reference.direction_matrix
    m = d_ref.T @ d_vol  # m[a, b]: cosine between reference axis a and volume axis b
    perm = [int(np.argmax(np.abs(m[a]))) for a in range(3)]
    if sorted(perm) != [0, 1, 2]:
        return volume
    signs = [1 if m[a, perm[a]] > 0 else -1 for a in range(3)]
    if any(abs(abs(m[a, perm[a]]) - 1.0) > direction_atol for a in range(3)):
        return volume
    if perm == [0, 1, 2] and signs == [1, 1, 1]:
        return volume
    g = volume.geometry
    arr = np.transpose(volume.array, perm)
    slicer = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in signs)
    arr = arr[slicer]
    first = [0, 0, 0]
    for a in range(3):
        if signs[a] < 0:
            first[perm[a]] = g.shape[perm[a]] - 1
    origin = g.index_to_lps(first)
    direction = np.column_stack([d_vol[:, perm[a]] * signs[a] for a in range(3)])
    geometry = Geometry(
        shape=(g.shape[perm[0]], g.shape[perm[1]], g.shape[perm[2]]),
        spacing_mm=(g.spacing_mm[perm[0]], g.spacing_mm[perm[1]], g.spacing_mm[perm[2]]),
        origin_lps_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=tuple(tuple(float(v) for v in row) for row in direction),  # type: ignore[arg-type]
    )
    meta = dict(volume.metadata)
    meta["reoriented_from"] = volume.geometry.to_dict()
    return Volume(arr, geometry, volume.source, meta)
