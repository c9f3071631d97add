"""A scan's voxels as a reader looks at them: axial slices in radiological convention, without resampling.

The browser shows axial slices with the patient's anterior at the top and the patient's right on the screen's
left (radiological convention), slice 0 the most inferior. :class:`DisplayGrid` finds, for each display axis
(superior, posterior, left), the array axis closest to it and whether it runs backwards; the display array is
then a transposed, flipped view of the stored one (no interpolation, every voxel shown as stored). For an oblique
acquisition the display axes are the nearest ones (``oblique_deg`` says how far off), as viewers do for the
acquisition plane.

Clicks and drawings come back as display indices (slice, row, column) and go to the stored grid through
:meth:`DisplayGrid.to_stored_index` and to patient coordinates (LPS mm) through the scan's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hepavol.geometry import Geometry

__all__ = ["DisplayGrid"]

# display axis k runs toward this LPS direction: slice → superior (+z), row → posterior (+y), column → left (+x)
_TOWARD = (2, 1, 0)


@dataclass(frozen=True, slots=True)
class DisplayGrid:
    """How a stored grid maps onto the display grid (see the module docstring).

    ``axes[k]`` is the stored axis shown along display axis ``k``; ``flip[k]`` whether it runs backwards.

    Examples
    --------
    A grid stored feet-first (slice axis toward the feet, column 0 of ``direction``) and with rows toward
    anterior is shown head-up:

    >>> g = Geometry(shape=(3, 4, 5), spacing_mm=(2.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 0.0),
    ...              direction=((0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (-1.0, 0.0, 0.0)))
    >>> grid = DisplayGrid.of(g)
    >>> grid.axes, grid.flip, grid.shape
    ((0, 1, 2), (True, True, False), (3, 4, 5))
    >>> grid.to_stored_index((0, 0, 0))
    (2, 3, 0)
    """

    axes: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    stored_shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]  # along the display axes
    oblique_deg: float

    @classmethod
    def of(cls, geometry: Geometry) -> DisplayGrid:
        d = np.abs(np.asarray(geometry.direction_matrix, dtype=float))  # column j: LPS vector of stored axis j
        signed = np.asarray(geometry.direction_matrix, dtype=float)
        axes: list[int] = []
        flips: list[bool] = []
        worst = 0.0
        for lps in _TOWARD:
            candidates = [j for j in range(3) if j not in axes]
            j = max(candidates, key=lambda c: d[lps, c])
            axes.append(j)
            flips.append(bool(signed[lps, j] < 0))
            worst = max(worst, float(np.degrees(np.arccos(min(1.0, d[lps, j])))))
        spacing = tuple(float(geometry.spacing_mm[a]) for a in axes)
        return cls(
            axes=(axes[0], axes[1], axes[2]),
            flip=(flips[0], flips[1], flips[2]),
            stored_shape=geometry.shape,
            spacing_mm=(spacing[0], spacing[1], spacing[2]),
            oblique_deg=round(worst, 2),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.stored_shape
        return (s[self.axes[0]], s[self.axes[1]], s[self.axes[2]])

    def view(self, array: NDArray[Any]) -> NDArray[Any]:
        """The stored array seen on the display grid (a view: no copy)."""
        out = np.transpose(array, self.axes)
        flips = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return out[flips]

    def to_stored_index(self, display_index: ArrayLike) -> tuple[int, ...]:
        """The stored (slice, row, column) index of a display index (integers)."""
        idx = np.asarray(display_index, dtype=float)
        return tuple(round(v) for v in self._stored(idx))

    def to_stored_continuous(self, display_index: ArrayLike) -> NDArray[np.float64]:
        """The stored continuous index of a display index (fractions kept: a click between voxel centres)."""
        return self._stored(np.asarray(display_index, dtype=float))

    def to_display(self, stored_index: ArrayLike) -> NDArray[np.float64]:
        """The display continuous index of a stored one."""
        s = np.asarray(stored_index, dtype=float)
        out = np.empty(3)
        for k, (a, f) in enumerate(zip(self.axes, self.flip, strict=True)):
            out[k] = (self.stored_shape[a] - 1 - s[a]) if f else s[a]
        return out

    def _stored(self, idx: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(3)
        for k, (a, f) in enumerate(zip(self.axes, self.flip, strict=True)):
            out[a] = (self.stored_shape[a] - 1 - idx[k]) if f else idx[k]
        return out
